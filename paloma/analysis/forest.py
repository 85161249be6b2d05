"""A forest plot of a comparison: the difference in bits per byte (B − A) of every row with its interval.

Rows, top to bottom: the overall mean over sources, the purpose groups (with a registry), then each source
followed by its domains. A filled dot has an interval; a hollow one has none (too few effective documents,
or a source that cannot be resampled), and is never coloured as significant. Green: B significantly
better (the interval lies below zero); red: significantly worse. Every label comes from run, source and
domain names, so the picture is built with `paloma.svg`, which escapes them.
"""

from __future__ import annotations

import math

from paloma import svg

WIDTH, ROW, TOP, BOTTOM = 860, 15, 46, 34
LABEL_RIGHT, PLOT_LEFT, PLOT_RIGHT = 292, 302, 700
COLOURS = {"better": "#1a7f37", "worse": "#cf222e", "neither": "#57606a"}


def _rows(comparison: dict) -> list[dict]:
    """(label, value, interval, indent, bold) for every row, in drawing order."""
    summary = comparison["summary"]
    rows = [_row("ALL (sources equal)", summary["macro_bpb_diff"], summary["macro_bpb_ci"], 0, True)]
    for group in comparison["groups"]:
        rows.append(_row(f"group: {group['group']}", group["macro_bpb_diff"], group["macro_bpb_ci"], 0, True))
    domains: dict[str, list[dict]] = {}
    for row in comparison["domains"]:
        domains.setdefault(row["source"], []).append(row)
    for source in comparison["sources"]:
        rows.append(_row(source["source"], source["macro_bpb_diff"], source["macro_bpb_ci"], 0, True))
        rows += [_row(d["domain"], d["bpb_diff"], d["bpb_ci"], 1, False) for d in domains.get(source["source"], [])]
    return rows


def _row(label: str, value: float, interval: list[float] | None, indent: int, bold: bool) -> dict:
    return {"label": label, "value": value, "interval": interval, "indent": indent, "bold": bold}


def _verdict(row: dict) -> str:
    lo, hi = row["interval"] or (math.nan, math.nan)
    return "better" if hi < 0 else "worse" if lo > 0 else "neither"


def _scale(rows: list[dict]) -> tuple[float, float]:
    values = [0.0] + [v for r in rows for v in (r["value"], *(r["interval"] or ())) if math.isfinite(v)]
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.05 or 1e-3
    return lo - pad, hi + pad


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    step = 10 ** math.floor(math.log10((hi - lo) / count))
    step *= next(m for m in (1, 2, 5, 10) if (hi - lo) / (step * m) <= count)
    first = math.ceil(lo / step)
    return [k * step for k in range(first, math.floor(hi / step) + 1)]


def forest_svg(comparison: dict) -> str:
    """The forest plot of a `compare_runs` result, as a standalone SVG document."""
    rows = _rows(comparison)
    lo, hi = _scale(rows)
    height = TOP + ROW * len(rows) + BOTTOM

    def x(value: float) -> float:
        return PLOT_LEFT + (value - lo) / (hi - lo) * (PLOT_RIGHT - PLOT_LEFT)

    parts = [
        svg.element("style", text=".l{font-size:11px}.b{font-weight:bold}.t{font-size:10px;fill:#57606a}"),
        svg.text(8, 16, f"Δ bits per byte, B − A (lower: B better). A = {comparison['a']['name']}", class_="l b"),
        svg.text(8, 31, f"B = {comparison['b']['name']}; hollow: no interval (too few documents)", class_="t"),
    ]
    bottom = TOP + ROW * len(rows)
    for tick in _ticks(lo, hi):
        parts.append(svg.element("line", x1=x(tick), x2=x(tick), y1=TOP - 4, y2=bottom, stroke="#eaeef2"))
        parts.append(svg.text(x(tick), bottom + 14, f"{tick:.3g}", class_="t", text_anchor="middle"))
    parts.append(svg.element("line", x1=x(0), x2=x(0), y1=TOP - 4, y2=bottom, stroke="#8c959f"))
    for i, row in enumerate(rows):
        parts += _draw_row(row, TOP + ROW * i + ROW / 2, x)
    return svg.document(WIDTH, height, *parts, font_family="sans-serif")


def _draw_row(row: dict, y: float, x) -> list[str]:
    colour = COLOURS[_verdict(row)]
    label = ("  " * row["indent"]) + row["label"]
    out = [svg.text(LABEL_RIGHT, y + 4, label, class_="l b" if row["bold"] else "l", text_anchor="end")]
    numbers = f"{row['value']:+.4g}"
    if row["interval"]:
        lo, hi = row["interval"]
        numbers += f" [{lo:+.4g}, {hi:+.4g}]"
        out.append(svg.element("line", x1=x(lo), x2=x(hi), y1=y, y2=y, stroke=colour, stroke_width=1.5))
    fill = colour if row["interval"] else "#fff"
    tooltip = svg.title(f"{row['label']}: {numbers}")
    out.append(svg.element("circle", tooltip, cx=x(row["value"]), cy=y, r=3.5, fill=fill, stroke=colour))
    out.append(svg.text(PLOT_RIGHT + 10, y + 4, numbers, class_="t"))
    return out
