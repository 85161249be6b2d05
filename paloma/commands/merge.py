"""`paloma merge A B [C…]`: write the weighted parameter average of same-architecture checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from paloma.commands.args import float_in
from paloma.errors import PalomaError

non_negative_float = float_in(0.0, float("inf"))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "merge",
        help="average the parameters of checkpoints of one architecture into a transformers model",
        description="Write the weighted parameter average of transformers checkpoints (same architecture and "
        "tokenizer vocabulary) as a new model folder with safetensors weights, the tokenizer and merge.json. "
        "To evaluate a merge without writing it, give `paloma eval --model` a recipe file "
        "(YAML/JSON: models: [{path, weight}]).",
    )
    parser.add_argument("models", nargs="+", help="model folders (or hub ids available offline)")
    parser.add_argument(
        "--weights", type=non_negative_float, nargs="+", help="one weight per model (default equal; normalised)"
    )
    parser.add_argument("--output", type=Path, required=True, help="new folder for the merged model")
    parser.add_argument(
        "--dtype", choices=["float32", "float64", "bfloat16", "float16"], help="load and save in this dtype"
    )
    parser.add_argument("--trust-remote-code", action="store_true", help="allow models with custom code")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from paloma.analysis.merge import check_model_paths, make_recipe, merge
    from paloma.io import check_output_dir

    if len(args.models) < 2:
        raise PalomaError("give at least two models to merge")
    recipe = make_recipe(args.models, args.weights)
    check_output_dir(args.output, recipe.paths)
    check_model_paths(recipe.paths)
    dtype = getattr(torch, args.dtype) if args.dtype else None
    output = merge(recipe, args.output, dtype=dtype, trust_remote_code=args.trust_remote_code)
    shares = ", ".join(f"{p} × {w:.4g}" for p, w in zip(recipe.paths, recipe.weights, strict=True))
    print(f"merged {shares}\nwrote {output} (model, tokenizer, merge.json)")
    return 0
