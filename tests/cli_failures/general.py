"""Failure cases of the top-level parser and the small commands (domains, demo)."""

from __future__ import annotations

from pathlib import Path

from cli_failures import Case


def _file(name: str) -> callable:
    def setup(tmp: Path) -> None:
        (tmp / name).write_text("not a folder\n")

    return setup


CASES = [
    Case("unknown-command", ("frobnicate",), "invalid choice: 'frobnicate'"),
    Case("unknown-option", ("domains", "--bogus"), "unrecognized arguments: --bogus"),
    Case("domains-unknown-release", ("domains", "--release", "nope"), "no registry named 'nope'"),
    Case("domains-unknown-source", ("domains", "--source", "nope"), "unknown source 'nope'"),
    Case("demo-output-is-a-file", ("demo", "--output", "{tmp}/f"), "is a file", _file("f")),
    Case("demo-output-under-a-file", ("demo", "--output", "{tmp}/f/demo"), "is not a folder", _file("f")),
    Case("demo-output-under-dev-null", ("demo", "--output", "/dev/null/x"), "is not a folder"),
]
