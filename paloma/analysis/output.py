"""Writing analysis results as files: CSV tables (JSON goes through paloma.io.write_json)."""

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
