"""`paloma baselines`: the shipped recipes (`show`), their parameter arithmetic (`params`), checkpoint `export`."""

from __future__ import annotations

import argparse
import json


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("baselines", help="the shipped training recipes and their parameter counts")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    params = actions.add_parser("params", help="parameter counts, tokens and FLOPs of each config")
    params.add_argument("configs", nargs="*", help="config names or files (default: all shipped configs)")
    params.add_argument("--json", action="store_true", help="print JSON instead of a table")
    params.set_defaults(func=run_params)
    show = actions.add_parser("show", help="print one config, fully resolved, as JSON")
    show.add_argument("config", help="a shipped config name or a YAML file")
    show.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override a field")
    show.set_defaults(func=run_show)
    export = actions.add_parser("export", help="export a checkpoint of a run in transformers format")
    export.add_argument("checkpoint", help="a checkpoint folder (RUN/checkpoints/step-N) or a run folder (its latest)")
    export.add_argument("--output", required=True, help="folder to write (replaced if it exists)")
    export.set_defaults(func=run_export)


def run_params(args: argparse.Namespace) -> int:
    from baselines.params import config_rows, main

    if args.json:
        print(json.dumps(config_rows(args.configs or None), indent=1))
        return 0
    return main(args.configs)


def run_show(args: argparse.Namespace) -> int:
    from baselines.config import load_config

    config = load_config(args.config, args.set)
    print(json.dumps({**config.to_dict(), "fingerprint": config.fingerprint()}, indent=1))
    return 0


def run_export(args: argparse.Namespace) -> int:
    from baselines.export import export_checkpoint

    path = export_checkpoint(args.checkpoint, args.output)
    print(f"exported {args.checkpoint} to {path}")
    return 0
