"""Draw ladder fits as SVG: one small panel per target, loss against parameters (log scale).

Each panel shows the ladder's observed losses as dots, coloured by tokens per parameter (D/N), the fitted
law as one curve per D/N ratio, and the predicted target model as a ring. The y range comes from the data
(observed losses and the prediction, with a margin), never from the extrapolated curve, so the points stay
readable; curves are clipped to the panel. Every element goes through `paloma.svg`, which escapes all text
and attribute values: run names, targets and units may come from a stranger's submission.

`ladder_panels` gives one self-contained SVG per panel (the site lays them out in a responsive grid and
writes the legend as HTML); `ladder_svg` puts them together with the legend inside the drawing, for
`ladder.svg`. Presentation attributes are used instead of a <style> element, so the same SVG works under
the site's Content-Security-Policy. Only `fits`, `points`, `predict`, `law`, `observed`, `target`,
`loo_mean_abs_rel_error`, `prediction`, `parameters` and `unit` are read; other fields are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paloma import svg
from paloma.analysis.ladder.fit import FITS_CSV_COLUMNS, ScalingLaw, fits_csv_rows
from paloma.analysis.output import write_csv
from paloma.io import atomic_write, write_json

PANEL_W, PANEL_H, COLUMNS = 300, 220, 3
MARGIN = {"left": 52, "right": 12, "top": 30, "bottom": 36}
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")
FONT = {"font_family": "system-ui, sans-serif"}
Y_MARGIN = 0.12  # of the data's range, above and below


def _ratio(point: dict) -> float:
    return float(f"{point['d'] / point['n']:.2g}")


def _ratio_groups(points: Sequence[dict]) -> list[float]:
    """Distinct tokens-per-parameter ratios, rounded to two significant digits."""
    return sorted({_ratio(p) for p in points})


def _nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    step = 10 ** math.floor(math.log10((hi - lo) / count or 1.0))
    step *= min((m for m in (1, 2, 5, 10) if (hi - lo) / (step * m) <= count), default=10)
    return [float(t) for t in np.arange(math.ceil(lo / step) * step, hi + step / 2, step) if lo <= t <= hi]


def y_range(fit: dict) -> tuple[float, float]:
    """From the observed losses and the prediction, with a margin: the extrapolated curve may leave it."""
    values = [float(v) for v in fit["observed"]]
    if fit.get("prediction") and math.isfinite(fit["prediction"].get("loss", math.nan)):
        values.append(float(fit["prediction"]["loss"]))
    lo, hi = min(values), max(values)
    pad = (hi - lo) * Y_MARGIN or abs(hi) * 0.05 or 0.1
    return lo - pad, hi + pad


def _x_range(points: Sequence[dict], predict: dict | None) -> tuple[float, float]:
    n_values = [p["n"] for p in points] + ([predict["n"]] if predict else [])
    return math.log10(min(n_values)) - 0.15, math.log10(max(n_values)) + 0.15


def _clipped_runs(xy: list[tuple[float, float, bool]]) -> list[str]:
    """Polyline point lists of the curve's stretches inside the panel (a curve leaving the range is cut)."""
    runs, current = [], []
    for x, y, inside in xy:
        if inside:
            current.append(f"{x:.1f},{y:.1f}")
        elif current:
            runs.append(" ".join(current))
            current = []
    if current:
        runs.append(" ".join(current))
    return [r for r in runs if " " in r]


def _panel(fit: dict, points: Sequence[dict], ratios: list[float], predict: dict | None, x_label: str) -> str:
    law = ScalingLaw(**fit["law"])
    x_lo, x_hi = _x_range(points, predict)
    y_lo, y_hi = y_range(fit)
    width = PANEL_W - MARGIN["left"] - MARGIN["right"]
    height = PANEL_H - MARGIN["top"] - MARGIN["bottom"]

    def x(n: float) -> float:
        return MARGIN["left"] + (math.log10(n) - x_lo) / (x_hi - x_lo) * width

    def y(v: float) -> float:
        return MARGIN["top"] + (y_hi - v) / (y_hi - y_lo) * height

    parts = [
        svg.element("rect", x=MARGIN["left"], y=MARGIN["top"], width=width, height=height, fill="none", stroke="#bbb"),
        svg.text(MARGIN["left"], 18, fit["target"].split(":", 1)[-1], font_size=13, font_weight="bold", **FONT),
    ]
    if fit.get("loo_mean_abs_rel_error") is not None and math.isfinite(fit["loo_mean_abs_rel_error"]):
        note = f"LOO {100 * fit['loo_mean_abs_rel_error']:.2f}%"
        parts.append(
            svg.text(PANEL_W - MARGIN["right"], 18, note, font_size=11, fill="#555", text_anchor="end", **FONT)
        )
    for decade in range(math.ceil(x_lo), math.floor(x_hi) + 1):
        parts.append(svg.text(x(10**decade), PANEL_H - 20, f"1e{decade}", font_size=11, fill="#555",
                              text_anchor="middle", **FONT))  # fmt: skip
    parts.append(svg.text(MARGIN["left"] + width / 2, PANEL_H - 4, x_label, font_size=11, fill="#555",
                          text_anchor="middle", **FONT))  # fmt: skip
    for tick in _nice_ticks(y_lo, y_hi):
        parts.append(svg.text(MARGIN["left"] - 4, y(tick) + 4, f"{tick:g}", font_size=11, fill="#555",
                              text_anchor="end", **FONT))  # fmt: skip
    grid = np.logspace(x_lo, x_hi, 80)
    curves = [(r, COLOURS[i % len(COLOURS)], None) for i, r in enumerate(ratios)]
    if predict:
        curves.append((predict["d"] / predict["n"], "#000", "4 3"))
    for ratio, colour, dash in curves:
        values = law(grid, ratio * grid)
        xy = [(x(n), y(v), bool(np.isfinite(v)) and y_lo <= v <= y_hi) for n, v in zip(grid, values, strict=True)]
        for run in _clipped_runs(xy):
            parts.append(svg.element("polyline", svg.title(f"fitted law at D/N = {ratio:g}"), points=run,
                                     fill="none", stroke=colour, stroke_dasharray=dash))  # fmt: skip
    for point, observed in zip(points, fit["observed"], strict=True):
        colour = COLOURS[ratios.index(_ratio(point)) % len(COLOURS)]
        label = f"{point['name']}: N={point['n']:.3g}, D={point['d']:.3g}, loss {observed:.4f}"
        parts.append(svg.element("circle", svg.title(label), cx=x(point["n"]), cy=y(observed), r=3.5, fill=colour))
    if predict and fit.get("prediction"):
        value = fit["prediction"]["loss"]
        label = f"predicted: N={predict['n']:.3g}, D={predict['d']:.3g}, loss {value:.4f}"
        parts.append(svg.element("circle", svg.title(label), cx=x(predict["n"]), cy=y(value), r=5.5, fill="none",
                                 stroke="#000", stroke_width=2))  # fmt: skip
    return "".join(parts)


def _x_label(ladder: dict) -> str:
    counted = {"non_embedding": "non-embedding", "total": "total"}.get(ladder.get("parameters"), "")
    return f"{counted} parameters N (log)".strip()


def legend_items(ladder: dict) -> list[tuple[str, str]]:
    """(colour, label) of each mark: the D/N ratios, then the prediction ring when there is one."""
    items = [(COLOURS[i % len(COLOURS)], f"● D/N = {r:g}") for i, r in enumerate(_ratio_groups(ladder["points"]))]
    if ladder.get("predict"):
        items.append(("#000", "○ prediction (dashed: its D/N)"))
    return items


def _chosen_fits(ladder: dict, targets: Sequence[str] | None, max_panels: int) -> list[dict]:
    return [f for f in ladder["fits"] if targets is None or f["target"] in targets][:max_panels]


def ladder_panels(ladder: dict, targets: Sequence[str] | None = None, max_panels: int = 12) -> list[str]:
    """One standalone SVG per fitted target (with a viewBox, so each scales to its container)."""
    points, predict, ratios = ladder["points"], ladder.get("predict"), _ratio_groups(ladder["points"])
    label = f"{_x_label(ladder)}; y: {ladder.get('unit', 'loss')}"
    return [
        svg.document(
            PANEL_W,
            PANEL_H,
            svg.title(f"{fit['target']}: {label}"),
            _panel(fit, points, ratios, predict, _x_label(ladder)),
            role="img",
        )
        for fit in _chosen_fits(ladder, targets, max_panels)
    ]


def _legend_rows(items: list[tuple[str, str]], width: float) -> list[list[tuple[str, str, float]]]:
    """Legend entries placed in rows that fit the drawing's width (about 6.5 units per character at 12)."""
    rows: list[list[tuple[str, str, float]]] = [[]]
    x = 8.0
    for colour, label in items:
        size = 6.5 * len(label) + 16
        if rows[-1] and x + size > width - 8:
            rows.append([])
            x = 8.0
        rows[-1].append((colour, label, x))
        x += size
    return rows


def ladder_svg(ladder: dict, targets: Sequence[str] | None = None, max_panels: int = 12) -> str:
    """An SVG of the fits in `ladder` (the output of `fit_ladder`), suite and sources first, legend inside."""
    fits = _chosen_fits(ladder, targets, max_panels)
    points, predict, ratios = ladder["points"], ladder.get("predict"), _ratio_groups(ladder["points"])
    rows = max(1, math.ceil(len(fits) / COLUMNS))
    columns = min(COLUMNS, max(1, len(fits)))
    width = columns * PANEL_W
    items = [*legend_items(ladder), ("#555", f"y: {ladder.get('unit', 'loss')}")]
    legend = _legend_rows(items, width)
    height = rows * PANEL_H + 22 * len(legend) + 8
    parts = []
    for i, fit in enumerate(fits):
        dx, dy = (i % COLUMNS) * PANEL_W, (i // COLUMNS) * PANEL_H
        parts.append(svg.element("g", _panel(fit, points, ratios, predict, _x_label(ladder)),
                                 transform=f"translate({dx},{dy})"))  # fmt: skip
    for r, row in enumerate(legend):
        for colour, label, x in row:
            parts.append(svg.text(x, rows * PANEL_H + 18 + 22 * r, label, font_size=12, fill=colour, **FONT))
    # a standalone file: a viewBox to scale, and a natural size for viewers that need one
    return svg.element("svg", *parts, xmlns="http://www.w3.org/2000/svg", viewBox=f"0 0 {width} {height}",
                       width=width, height=height)  # fmt: skip


def write_ladder_outputs(ladder: dict, folder: str | Path) -> list[Path]:
    """Write fits.json, fits.csv and ladder.svg for a `fit_runs` result (used by the CLI and the demo)."""
    folder = Path(folder)
    write_json(folder / "fits.json", ladder)
    write_csv(folder / "fits.csv", FITS_CSV_COLUMNS, fits_csv_rows(ladder))
    with atomic_write(folder / "ladder.svg") as handle:
        handle.write(ladder_svg(ladder))
    return [folder / "fits.json", folder / "fits.csv", folder / "ladder.svg"]
