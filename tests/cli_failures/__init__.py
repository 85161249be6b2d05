"""The CLI's failure surface, as data: one table of bad invocations per area, run by tests/test_cli_failures.py.

Each `Case` is a command line that must fail cleanly: exit 2, exactly one line on stderr that starts with
`paloma <command>` and names the problem (`expect` is a substring of it), no traceback, and no file created
or changed anywhere under the case's folder or the shared world (model, data).

Command lines are templates: `{tmp}` is the case's own empty folder, `{model}` a tiny transformers model with
its tokenizer, `{data}` a small Paloma-layout release (source `c4_en`, domain-less, and `m2d2_s2orc` with
domains, test and val splits). `setup(tmp)` may prepare extra inputs in `{tmp}` before the snapshot is taken;
what it creates must stay as it was after the command.

Each area keeps its own module (`eval.py`, `decon.py`, ...) listing `CASES`, so the table grows with the
commands without one file that everyone edits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Case:
    """One bad invocation and the substring its one-line error must contain."""

    id: str
    argv: tuple[str, ...]
    expect: str
    setup: Callable[[Path], None] | None = None
