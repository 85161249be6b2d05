"""`paloma baselines`: the shipped recipes (`show`), their parameter arithmetic (`params`), tokenizing a corpus
for training (`tokenize`), and checkpoint `export`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from paloma.commands.args import positive_int
from paloma.errors import PalomaError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("baselines", help="the shipped training recipes, tokenizing, checkpoint export")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    params = actions.add_parser("params", help="parameter counts, tokens and FLOPs of each config")
    params.add_argument("configs", nargs="*", help="config names or files (default: all shipped configs)")
    params.add_argument("--json", action="store_true", help="print JSON instead of a table")
    params.set_defaults(func=run_params)
    show = actions.add_parser("show", help="print one config, fully resolved, as JSON")
    show.add_argument("config", help="a shipped config name or a YAML file")
    show.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a field")
    show.set_defaults(func=run_show)
    register_tokenize(actions)
    export = actions.add_parser("export", help="export a checkpoint of a run in transformers format")
    export.add_argument("checkpoint", help="a checkpoint folder (RUN/checkpoints/step-N) or a run folder (its latest)")
    export.add_argument("--output", required=True, help="folder to write (replaced if it exists)")
    export.set_defaults(func=run_export)


def register_tokenize(actions: argparse._SubParsersAction) -> None:
    from paloma_baselines.config import add_config_arguments

    tokenize = actions.add_parser(
        "tokenize",
        help="tokenize a config's corpus into OLMo token files (a datatrove pipeline), before training",
        description="Tokenize the config's corpus into OLMo's token-file format with datatrove's local "
        "executor; rerunning the same command resumes, task by task.",
    )
    add_config_arguments(tokenize)
    tokenize.add_argument("--output", help="folder to write (default: data.tokens of the config)")
    tokenize.add_argument("--corpus", help="override data.corpus: a hub dataset id or local JSONL/Parquet files")
    tokenize.add_argument(
        "--decon", metavar="INDEX", help="override data.decontamination_index: drop contaminated documents"
    )
    tokenize.add_argument("--tasks", type=positive_int, default=1, help="shards of the corpus (by file; default 1)")
    tokenize.add_argument("--workers", type=positive_int, default=1, help="tasks run at once (default 1)")
    tokenize.add_argument("--limit", type=positive_int, help="read at most this many documents per task (trials)")
    tokenize.add_argument("--overwrite", action="store_true", help="start over in a folder of an earlier tokenize")
    tokenize.add_argument("--quiet", action="store_true", help="no task logs on stderr (they stay in OUTPUT/logs)")
    tokenize.set_defaults(func=run_tokenize)


def run_params(args: argparse.Namespace) -> int:
    from paloma_baselines.params import config_rows, main

    if args.json:
        print(json.dumps(config_rows(args.configs or None), indent=1))
        return 0
    return main(args.configs)


def run_show(args: argparse.Namespace) -> int:
    from paloma_baselines.config import load_config

    config = load_config(args.config, args.set)
    print(json.dumps({**config.to_dict(), "fingerprint": config.fingerprint()}, indent=1))
    return 0


def run_tokenize(args: argparse.Namespace) -> int:
    from paloma_baselines.tokens import tokenize

    result = tokenize(
        args.config, args.output, overrides=args.set, corpus=args.corpus, tokenizer=args.tokenizer,
        decontamination_index=args.decon, tasks=args.tasks, workers=args.workers, limit=args.limit,
        overwrite=args.overwrite, quiet=args.quiet,
    )  # fmt: skip
    rate = result.tokens / max(result.seconds, 1e-9)
    print(
        f"tokenized {result.documents_read:,} documents ({result.documents_removed:,} removed as contaminated) into "
        f"{result.tokens:,} tokens, {result.files} files, in {result.seconds:.1f}s ({rate:,.0f} tokens/s): "
        f"{result.output_dir}"
    )
    return 0


def run_export(args: argparse.Namespace) -> int:
    from paloma.io import check_output_dir
    from paloma_baselines.export import export_checkpoint

    checkpoint = Path(args.checkpoint)
    if not checkpoint.is_dir():
        raise PalomaError(f"{checkpoint}: no such checkpoint or run folder")
    # A run folder's export may go inside it (as the trainer's own model/ does), never into its checkpoints.
    check_output_dir(args.output, [checkpoint / "checkpoints" if (checkpoint / "checkpoints").is_dir() else checkpoint])
    path = export_checkpoint(checkpoint, args.output)
    print(f"exported {args.checkpoint} to {path}")
    return 0
