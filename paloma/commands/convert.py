"""`paloma convert`: write a legacy checkpoint once as a standard `transformers` model (no remote code)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "convert",
        help="convert a legacy checkpoint to a standard transformers model",
        description="Convert a checkpoint of a legacy format into the exact representation baselines exports use "
        "(loadable with AutoModelForCausalLM, no remote code). `paloma eval` does the same on load, into a cache.",
    )
    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    olmo = formats.add_parser(
        "hf-olmo",
        help="AI2's older OLMo format (model_type hf_olmo), e.g. the released Paloma baselines",
        description="Convert an hf_olmo checkpoint (a local folder, or a hub id such as "
        "allenai/paloma-1b-baseline-c4) into a new folder.",
    )
    olmo.add_argument("source", help="checkpoint folder or hub id")
    olmo.add_argument("destination", type=Path, help="new folder for the converted model")
    olmo.add_argument("--revision", help="hub revision of the source")
    olmo.add_argument("--token", help="hub token (default: $HF_TOKEN)")
    olmo.set_defaults(func=run_hf_olmo)


def run_hf_olmo(args: argparse.Namespace) -> int:
    from paloma.errors import PalomaError
    from paloma.eval import hf_olmo
    from paloma.eval.model import ModelOptions, hub_snapshot
    from paloma.io import check_output_dir

    source = Path(args.source)
    check_output_dir(args.destination, [source] if source.exists() else [])
    if args.destination.exists() and any(args.destination.iterdir()):
        raise PalomaError(f"{args.destination}: exists and is not empty; choose a new folder")
    if not source.exists():
        if args.source.count("/") != 1:
            raise PalomaError(f"{args.source}: no such folder, and not a hub id (org/name)")
        source = hub_snapshot(args.source, ModelOptions(revision=args.revision, token=args.token))
    hf_olmo.convert(source, args.destination)
    print(f"converted {args.source} (hf_olmo) → {args.destination}: load it with AutoModelForCausalLM or "
          f"`paloma eval --model {args.destination}`")  # fmt: skip
    return 0
