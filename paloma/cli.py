"""The `paloma` command: a thin dispatcher over subcommand modules in `paloma.commands`.

Each subcommand module defines `register(subparsers)`, which adds its parser and sets `func` to a
function taking the parsed arguments and returning an exit code. The work itself lives in library
functions that are usable from Python as well.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn

from paloma import __version__
from paloma.errors import PalomaError

# Each subcommand and the module that registers it, in the order `paloma --help` lists them.
COMMANDS = {
    "demo": "paloma.commands.demo",
    "domains": "paloma.commands.domains",
    "eval": "paloma.commands.eval",
    "aggregate": "paloma.commands.eval",
    "convert": "paloma.commands.convert",
    "decon": "paloma.commands.decon",
    "train": "paloma.commands.train",
    "baselines": "paloma.commands.baselines",
    "submit": "paloma.commands.submit",
    "submissions": "paloma.commands.submissions",
    "site": "paloma.commands.site",
    "release": "paloma.commands.release",
    "compare": "paloma.commands.compare",
    "ladder": "paloma.commands.ladder",
    "merge": "paloma.commands.merge",
    "tokens": "paloma.commands.tokens",
    "reweight": "paloma.commands.reweight",
    "rank-stability": "paloma.commands.rank_stability",
}
COMMAND_MODULES = list(dict.fromkeys(COMMANDS.values()))


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line (`paloma CMD: error: ...`, exit 2) and no usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {' '.join(message.split())}\n")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI, or with `command` only that subcommand's module: a run imports what it uses (the site's
    and the analyses' scipy, for one, cost `paloma eval` 1.5 s of start-up)."""
    parser = OneLineParser(
        prog="paloma",
        description="Paloma-style evaluation of language-model fit, per domain.",
    )
    parser.add_argument("--version", action="version", version=f"paloma {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in [COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(argv[0] if argv else None)
    args, extras = parser.parse_known_args(argv)
    if extras:  # reported by the subcommand that was given them, so the line names it
        _deepest_parser(parser, args).error(f"unrecognized arguments: {' '.join(extras)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
        return code
    except BrokenPipeError:  # the reader went away (`paloma ... | head`): end quietly, as Python's docs advise
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except PalomaError as err:
        print(f"paloma {args.command}: error: {one_line(str(err))}", file=sys.stderr)
        return 2
    except OSError as err:  # not a directory, permission, disk full: the user's environment, not a bug
        print(f"paloma {args.command}: error: {describe_os_error(err)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"paloma {args.command}: interrupted", file=sys.stderr)
        return 130


def _deepest_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub)parser that handled the last chosen subcommand."""
    while True:
        actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        chosen = getattr(args, actions[0].dest, None) if actions else None
        if chosen is None or chosen not in actions[0].choices:
            return parser
        parser = actions[0].choices[chosen]


def one_line(message: str) -> str:
    return " ".join(message.split())


def describe_os_error(err: OSError) -> str:
    """`PATH: what went wrong` (both paths for a failed rename or copy)."""
    what = err.strerror or type(err).__name__
    where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    return one_line(f"{where}: {what}" if where else f"{what} ({err})")


if __name__ == "__main__":
    sys.exit(main())
