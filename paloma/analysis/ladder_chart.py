"""Draw ladder fits as a standalone SVG: one small panel per target, loss against parameters (log scale).

Each panel shows the ladder's observed losses as dots, coloured by tokens per parameter (D/N), the fitted
law as one curve per D/N ratio, and the predicted target model as a ring. The SVG is written by this module
(no plotting library), so the CLI, the demo and the site produce the same picture without a network.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paloma.analysis.ladder import FITS_CSV_COLUMNS, ScalingLaw, fits_csv_rows
from paloma.analysis.output import write_csv
from paloma.io import atomic_write, write_json

PANEL_W, PANEL_H, COLUMNS = 300, 210, 3
MARGIN = {"left": 52, "right": 12, "top": 28, "bottom": 34}
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


def _ratio_groups(points: Sequence[dict]) -> list[float]:
    """Distinct tokens-per-parameter ratios, rounded to two significant digits."""
    return sorted({float(f"{p['d'] / p['n']:.2g}") for p in points})


def _nice_ticks(lo: float, hi: float, count: int = 4) -> list[float]:
    step = 10 ** math.floor(math.log10((hi - lo) / count or 1.0))
    step *= min((m for m in (1, 2, 5, 10) if (hi - lo) / (step * m) <= count), default=10)
    return [t for t in np.arange(math.ceil(lo / step) * step, hi + step / 2, step) if lo <= t <= hi]


def _panel(fit: dict, points: Sequence[dict], ratios: list[float], predict: dict | None) -> list[str]:
    law = ScalingLaw(**fit["law"])
    n_values = [p["n"] for p in points] + ([predict["n"]] if predict else [])
    x_lo, x_hi = math.log10(min(n_values)) - 0.15, math.log10(max(n_values)) + 0.15
    grid = np.logspace(x_lo, x_hi, 60)
    curves = [(r, law(grid, r * grid)) for r in ratios]
    if predict:
        curves.append((predict["d"] / predict["n"], law(grid, predict["d"] / predict["n"] * grid)))
    y_values = [*fit["observed"], *(float(v) for _, c in curves for v in (c.min(), c.max()))]
    y_lo, y_hi = min(y_values), max(y_values)
    pad = (y_hi - y_lo) * 0.08 or 0.1
    y_lo, y_hi = y_lo - pad, y_hi + pad
    width = PANEL_W - MARGIN["left"] - MARGIN["right"]
    height = PANEL_H - MARGIN["top"] - MARGIN["bottom"]

    def x(n: float) -> float:
        return MARGIN["left"] + (math.log10(n) - x_lo) / (x_hi - x_lo) * width

    def y(v: float) -> float:
        return MARGIN["top"] + (y_hi - v) / (y_hi - y_lo) * height

    out = [f'<rect x="{MARGIN["left"]}" y="{MARGIN["top"]}" width="{width}" height="{height}" class="frame"/>']
    title = fit["target"].split(":", 1)[-1]
    quality = f"LOO {100 * fit['loo_mean_abs_rel_error']:.2f}%" if fit.get("loo") else ""
    out.append(f'<text x="{MARGIN["left"]}" y="16" class="title">{html.escape(title)}</text>')
    out.append(f'<text x="{PANEL_W - MARGIN["right"]}" y="16" class="note" text-anchor="end">{quality}</text>')
    for decade in range(math.ceil(x_lo), math.floor(x_hi) + 1):
        out.append(
            f'<text x="{x(10**decade):.1f}" y="{PANEL_H - 18}" class="tick" text-anchor="middle">1e{decade}</text>'
        )
    for tick in _nice_ticks(y_lo, y_hi):
        out.append(
            f'<text x="{MARGIN["left"] - 4}" y="{y(tick) + 3:.1f}" class="tick" text-anchor="end">{tick:g}</text>'
        )
    for i, (ratio, values) in enumerate(curves):
        colour = COLOURS[i % len(COLOURS)] if i < len(ratios) else "#000"
        path = " ".join(f"{x(n):.1f},{y(v):.1f}" for n, v in zip(grid, values, strict=True) if y_lo <= v <= y_hi)
        dash = ' stroke-dasharray="4 3"' if i >= len(ratios) else ""
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}"{dash}><title>D/N={ratio:g}</title></polyline>'
        )
    for p, observed in zip(points, fit["observed"], strict=True):
        colour = COLOURS[ratios.index(float(f"{p['d'] / p['n']:.2g}")) % len(COLOURS)]
        label = html.escape(f"{p['name']}: N={p['n']:.3g}, D={p['d']:.3g}, loss {observed:.4f}")
        out.append(
            f'<circle cx="{x(p["n"]):.1f}" cy="{y(observed):.1f}" r="3" fill="{colour}"><title>{label}</title></circle>'
        )
    if predict and "prediction" in fit:
        value = fit["prediction"]["loss"]
        label = html.escape(f"predicted: N={predict['n']:.3g}, D={predict['d']:.3g}, loss {value:.4f}")
        out.append(
            f'<circle cx="{x(predict["n"]):.1f}" cy="{y(value):.1f}" r="5" fill="none" stroke="#000" '
            f'stroke-width="2"><title>{label}</title></circle>'
        )
    return out


def ladder_svg(ladder: dict, targets: Sequence[str] | None = None, max_panels: int = 12) -> str:
    """An SVG of the fits in `ladder` (the output of `fit_ladder`), suite and sources first."""
    fits = [f for f in ladder["fits"] if targets is None or f["target"] in targets][:max_panels]
    points, predict = ladder["points"], ladder.get("predict")
    ratios = _ratio_groups(points)
    rows = max(1, math.ceil(len(fits) / COLUMNS))
    columns = min(COLUMNS, max(1, len(fits)))
    legend_h = 24
    width, height = columns * PANEL_W, rows * PANEL_H + legend_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        'font-family="sans-serif">',
        "<style>.frame{fill:none;stroke:#bbb}.title{font-size:12px;font-weight:bold}.note,.tick{font-size:10px;"
        "fill:#555}.legend{font-size:11px}</style>",
    ]
    for i, fit in enumerate(fits):
        dx, dy = (i % COLUMNS) * PANEL_W, (i // COLUMNS) * PANEL_H
        parts += [f'<g transform="translate({dx},{dy})">', *_panel(fit, points, ratios, predict), "</g>"]
    legend = [f'<tspan fill="{COLOURS[i % len(COLOURS)]}">● D/N={r:g}</tspan>' for i, r in enumerate(ratios)]
    if predict:
        legend.append("<tspan>○ prediction (dashed: its D/N)</tspan>")
    x_label = f"{ladder.get('parameters', 'non_embedding').replace('_', '-')} parameters N (log)"
    y_label = html.escape(ladder.get("unit", "loss"))
    parts.append(f'<text x="8" y="{height - 8}" class="legend">{" ".join(legend)} — x: {x_label}, y: {y_label}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def write_ladder_outputs(ladder: dict, folder: str | Path) -> list[Path]:
    """Write fits.json, fits.csv and ladder.svg for a `fit_runs` result (used by the CLI and the demo)."""
    folder = Path(folder)
    write_json(folder / "fits.json", ladder)
    write_csv(folder / "fits.csv", FITS_CSV_COLUMNS, fits_csv_rows(ladder))
    with atomic_write(folder / "ladder.svg") as handle:
        handle.write(ladder_svg(ladder))
    return [folder / "fits.json", folder / "fits.csv", folder / "ladder.svg"]
