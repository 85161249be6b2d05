"""Jinja2 environment and the small formatting helpers every page shares.

Autoescaping is on for every template, so any value from a submission is text, never markup. Data that
pages hand to our script is embedded as JSON with `<`, `>`, `&` and line separators escaped, so it cannot
close its <script> element either.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from paloma.resources import data_dir

_JSON_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def safe_json(data: Any) -> str:
    """JSON that is also safe inside an HTML <script> element or a .js file (NaN → null)."""
    text = json.dumps(_finite(data), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return re.sub("[<>&\u2028\u2029]", lambda m: _JSON_ESCAPES[m.group()], text)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def round_sig(value: float | None, digits: int = 6) -> float | None:
    """Shorter numbers for embedded data; six significant digits exceed what any page shows."""
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def fmt_metric(value: float | None, metric: str = "ppl") -> str:
    if value is None or not math.isfinite(value):
        return "–"
    if metric == "bpb":
        return f"{value:.4f}"
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 100 else f"{value:.2f}"


def fmt_count(value: float | None) -> str:
    """1.2B, 350M, 12.5k: the way papers quote parameters and tokens."""
    if value is None or not math.isfinite(value):
        return "–"
    for unit, scale in (("e", 1e18), ("P", 1e15), ("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            if unit == "e":
                return f"{value:.2e}".replace("e+", "e")
            shown = value / scale
            return f"{shown:.3g}{unit}"
    return f"{value:.0f}"


def fmt_int(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def sort_key(value: float | None) -> str:
    """A number for the `data-v` attribute that table sorting reads: short, and empty when missing."""
    return "" if value is None or not math.isfinite(value) else f"{value:.7g}"


def safe_url(url: str | None) -> str:
    """Only http(s) URLs become links (validation already refuses others; this is the second lock)."""
    return url if url and re.match(r"^https?://", url) else "#"


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...), @SUM(...)); tab and
# carriage return are on OWASP's list too.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A text cell that a spreadsheet would run as a formula gets a leading apostrophe (OWASP's advice).

    Numbers are written by us and are never negative; only text from submissions is changed.
    """
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def make_environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(data_dir("site") / "templates")),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(metric=fmt_metric, count=fmt_count, int=fmt_int, safe_url=safe_url, sortkey=sort_key)
    env.filters["json"] = lambda data: Markup(safe_json(data))
    return env
