"""Pareto frontiers of fit against cost, and their charts as inline SVG (no network, no chart library).

Both fit (bits per byte or perplexity) and cost (parameters, training tokens, compute) are better when lower.
A point is on the frontier when no other point is at least as good on both and strictly better on one: equal
points are all on the frontier (neither dominates the other), and a single point is its own frontier.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace


def pareto_frontier(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated (cost, fit) points, ordered by cost then fit.

    Sweep by increasing cost (ties: better fit first); a point is kept when its fit beats every cheaper
    point's, or equals the fit of the previous kept point at the same cost (an exact tie).
    """
    order = sorted((i for i, p in enumerate(points) if all(map(math.isfinite, p))), key=lambda i: points[i])
    frontier: list[int] = []
    best_fit = math.inf
    for i in order:
        cost, fit = points[i]
        if fit < best_fit:
            frontier.append(i)
            best_fit = fit
        elif fit == best_fit and frontier and points[frontier[-1]] == (cost, fit):
            frontier.append(i)
    return frontier


@dataclass(frozen=True)
class Point:
    """One model in a chart: where it goes, and what its tooltip says."""

    cost: float
    fit: float
    label: str
    href: str
    detail: str


@dataclass(frozen=True)
class Tick:
    pos: float
    label: str


@dataclass(frozen=True)
class Chart:
    """Everything a template needs to draw one scatter chart with log axes and its frontier."""

    width: int
    height: int
    margin: tuple[int, int, int, int]  # top, right, bottom, left
    x_label: str
    y_label: str
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    dots: list[tuple[float, float, Point, bool]]  # x, y, point, on the frontier
    frontier_path: str
    frontier: list[Point]


def _log_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    """Padded axis limits and ticks at 1, 2, 5 × 10^k (every integer multiple when the range is narrow)."""
    lo, hi = lo / 1.25, hi * 1.25
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    span = math.log10(hi) - math.log10(lo)
    steps = range(1, 10) if span <= 1.2 else (1, 2, 3, 5) if span <= 2.5 else (1, 2, 5) if span <= 4 else (1,)
    ticks = [m * 10.0**e for e in range(a, b + 1) for m in steps if lo <= m * 10.0**e <= hi]
    return lo, hi, ticks


def _spaced(ticks: list[Tick], min_gap: float) -> list[Tick]:
    """Keep every grid line but blank the labels that would crowd the previous label (80M 90M 100M …)."""
    out, last = [], None
    for tick in ticks:
        crowded = last is not None and abs(tick.pos - last) < min_gap
        out.append(replace(tick, label="") if crowded else tick)
        last = last if crowded else tick.pos
    return out


def _linear_ticks(lo: float, hi: float) -> tuple[float, float, list[float]]:
    span = hi - lo or abs(hi) or 1.0
    lo, hi = lo - span * 0.08, hi + span * 0.08
    step = 10 ** math.floor(math.log10((hi - lo) / 4))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (m * step) <= 6:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return lo, hi, [first + k * step for k in range(int((hi - first) / step) + 1)]


def make_chart(points: list[Point], x_label: str, y_label: str, fmt_x, fmt_y, log_y: bool = False) -> Chart | None:
    """Place points on a log-x chart (fit axis log too when `log_y`) and mark the frontier."""
    usable = [p for p in points if p.cost > 0 and math.isfinite(p.fit) and (p.fit > 0 or not log_y)]
    if not usable:
        return None
    width, height, margin = 720, 440, (16, 24, 56, 84)
    top, right, bottom, left = margin
    x_lo, x_hi, x_ticks = _log_ticks(min(p.cost for p in usable), max(p.cost for p in usable))
    fits = [p.fit for p in usable]
    if log_y:
        y_lo, y_hi, y_ticks = _log_ticks(min(fits), max(fits))
    else:
        y_lo, y_hi, y_ticks = _linear_ticks(min(fits), max(fits))

    def sx(v: float) -> float:
        t = (math.log10(v) - math.log10(x_lo)) / (math.log10(x_hi) - math.log10(x_lo))
        return round(left + t * (width - left - right), 1)

    def sy(v: float) -> float:
        f = math.log10 if log_y else (lambda z: z)
        t = (f(v) - f(y_lo)) / (f(y_hi) - f(y_lo))
        return round(height - bottom - t * (height - top - bottom), 1)

    on_front = set(pareto_frontier([(p.cost, p.fit) for p in usable]))
    frontier = sorted((usable[i] for i in on_front), key=lambda p: (p.cost, p.fit))
    path = _step_path([(sx(p.cost), sy(p.fit)) for p in frontier], width - right)
    dots = [(sx(p.cost), sy(p.fit), p, i in on_front) for i, p in enumerate(usable)]
    dots.sort(key=lambda d: d[3])  # frontier members drawn last, on top
    return Chart(
        width=width,
        height=height,
        margin=margin,
        x_label=x_label,
        y_label=y_label,
        x_ticks=_spaced([Tick(sx(v), fmt_x(v)) for v in x_ticks if x_lo <= v <= x_hi], min_gap=48),
        y_ticks=_spaced([Tick(sy(v), fmt_y(v)) for v in y_ticks if y_lo <= v <= y_hi], min_gap=16),
        dots=dots,
        frontier_path=path,
        frontier=frontier,
    )


def _step_path(xy: list[tuple[float, float]], x_end: float) -> str:
    """The frontier as a staircase: what the best model at each cost level achieves."""
    if not xy:
        return ""
    parts = [f"M{xy[0][0]},{xy[0][1]}"]
    for (x0, y0), (x1, y1) in itertools.pairwise(xy):
        parts.append(f"H{x1}V{y1}" if (x1, y1) != (x0, y0) else "")
    parts.append(f"H{x_end}")
    return "".join(parts)
