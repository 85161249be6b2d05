"""Argument types shared by the subcommands: ranges are checked by argparse, before any work starts.

Each returns a function for `add_argument(type=...)`; a bad value ends in argparse's one-line
`paloma CMD: error: argument --flag: ...` and exit 2.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An integer ≥ `minimum` (e.g. `--max-length`, `--limit`, `--workers` ≥ 1; `--bootstrap` ≥ 0)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be ≥ {minimum}, got {value}")
        return value

    parse.__name__ = f"integer ≥ {minimum}"
    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def float_in(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Callable[[str], float]:
    """A finite float in [low, high] (open ends where asked); NaN and infinities are refused."""
    lo_sign, hi_sign = ("<" if low_open else "≤"), ("<" if high_open else "≤")

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if not math.isfinite(value) or too_low or too_high:
            bounds = (
                f"{low:g} {lo_sign} x {hi_sign} {high:g}"
                if math.isfinite(high)
                else f"x {'>' if low_open else '≥'} {low:g}"
            )
            raise argparse.ArgumentTypeError(f"must be a finite number with {bounds}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


positive_float = float_in(0.0, math.inf, low_open=True)
fraction = float_in(0.0, 1.0, low_open=True)
