"""Formatting helpers shared by the analysis commands' text output."""

from __future__ import annotations

import math
from collections.abc import Sequence


def interval(ci: Sequence[float] | None, digits: int = 3) -> str:
    """`[lo, hi]` for a table cell, `-` when there is no interval."""
    if not ci or ci[0] is None:
        return "-"
    return f"[{ci[0]:+.{digits}g}, {ci[1]:+.{digits}g}]"


def percent(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:+.2f}%"
