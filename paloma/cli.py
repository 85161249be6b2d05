"""The `paloma` command: a thin dispatcher over subcommand modules in `paloma.commands`.

Each subcommand module defines `register(subparsers)`, which adds its parser and sets `func` to a
function taking the parsed arguments and returning an exit code. The work itself lives in library
functions that are usable from Python as well.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from paloma import __version__
from paloma.errors import PalomaError

# Subcommand modules, in the order `paloma --help` lists them.
COMMAND_MODULES = [
    "paloma.commands.demo",
    "paloma.commands.domains",
    "paloma.commands.eval",
    "paloma.commands.decon",
    "paloma.commands.train",
    "paloma.commands.baselines",
    "paloma.commands.submit",
    "paloma.commands.submissions",
    "paloma.commands.site",
    "paloma.commands.compare",
    "paloma.commands.ladder",
    "paloma.commands.merge",
    "paloma.commands.tokens",
    "paloma.commands.reweight",
    "paloma.commands.rank_stability",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paloma",
        description="Paloma-style evaluation of language-model fit, per domain.",
    )
    parser.add_argument("--version", action="version", version=f"paloma {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except PalomaError as err:
        print(f"paloma {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"paloma {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
