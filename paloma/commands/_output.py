"""Small output helpers shared by the analysis commands: CSV files and number formatting."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path

from paloma.io import atomic_write


def write_csv(path: str | Path, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Write a CSV atomically; NaN and None become empty cells."""
    with atomic_write(path) as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(headers)
        writer.writerows([[_csv_cell(v) for v in row] for row in rows])


def _csv_cell(value: object) -> object:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return value


def interval(ci: Sequence[float] | None, digits: int = 3) -> str:
    """`[lo, hi]` for a table cell, `-` when there is no interval."""
    if not ci or ci[0] is None:
        return "-"
    return f"[{ci[0]:+.{digits}g}, {ci[1]:+.{digits}g}]"


def percent(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:+.2f}%"
