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
    cost_label: str = ""
    fit_label: str = ""


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


# Chart geometry in viewBox units. Text is sized by the stylesheet: 13 units on wide screens, 20 on phones
# (the chart is then drawn about 0.57 times its size, so labels stay ≥ 11 px); tick labels are thinned for the
# larger size, so they never collide at either.
WIDTH, HEIGHT, MARGIN = 600, 400, (16, 24, 64, 92)
LABEL_CHAR_WIDTH, LABEL_HEIGHT = 12.5, 26  # at the phone size
MIN_LABELS = 4


def _nice_linear(lo: float, hi: float, count: int) -> list[float]:
    """Round values (steps of 1, 2, 2.5 or 5 × 10^k) in [lo, hi], at least `count` of them where possible."""
    span = hi - lo
    for exponent in range(math.floor(math.log10(span)) + 1, math.floor(math.log10(span)) - 3, -1):
        for mantissa in (5, 2.5, 2, 1):
            step = mantissa * 10.0**exponent
            ticks = [k * step for k in range(math.ceil(lo / step), math.floor(hi / step) + 1)]
            if len(ticks) >= count:
                return [float(f"{t:.12g}") for t in ticks]
    return [lo, hi]


def _log_candidates(lo: float, hi: float) -> list[list[float]]:
    """Tick sets for a log axis, coarse to fine: 1·10^k, 1-2-5, 1-2-3-5, every integer multiple, then round
    linear values for ranges too narrow for any of those."""
    a, b = math.floor(math.log10(lo)), math.ceil(math.log10(hi))
    sets = []
    for steps in ((1,), (1, 2, 5), (1, 2, 3, 5), range(1, 10)):
        sets.append([m * 10.0**e for e in range(a, b + 1) for m in steps if lo <= m * 10.0**e <= hi])
    sets += [_nice_linear(lo, hi, count) for count in (MIN_LABELS, 6)]
    return sets


def _log_ticks(lo: float, hi: float) -> tuple[float, float, list[list[float]]]:
    """Padded axis limits (at least a factor of 1.6 wide) and candidate tick sets."""
    lo, hi = lo / 1.25, hi * 1.25
    return lo, hi, _log_candidates(lo, hi)


def _spaced(ticks: list[Tick], min_gap: float) -> list[Tick]:
    """Keep every grid line but blank the labels that would crowd the previous label (80M 90M 100M …)."""
    out, last = [], None
    for tick in ticks:
        crowded = last is not None and abs(tick.pos - last) < min_gap
        out.append(replace(tick, label="") if crowded else tick)
        last = last if crowded else tick.pos
    return out


def _labelled(ticks: list[Tick]) -> int:
    return sum(1 for t in ticks if t.label)


def _choose_ticks(candidates: list[list[float]], place, fmt, gap) -> list[Tick]:
    """The coarsest tick set that keeps at least MIN_LABELS readable labels (else the one with the most)."""
    best: list[Tick] = []
    for values in candidates:
        ticks = [Tick(place(v), fmt(v)) for v in values]
        spaced = _spaced(ticks, max((gap(t) for t in ticks), default=0))
        if _labelled(spaced) >= MIN_LABELS:
            return spaced
        if _labelled(spaced) > _labelled(best):
            best = spaced
    return best


def _linear_ticks(lo: float, hi: float) -> tuple[float, float, list[list[float]]]:
    span = hi - lo or abs(hi) or 1.0
    lo, hi = lo - span * 0.08, hi + span * 0.08
    return lo, hi, [_nice_linear(lo, hi, count) for count in (MIN_LABELS, 6)]


def make_chart(points: list[Point], x_label: str, y_label: str, fmt_x, fmt_y, log_y: bool = False) -> Chart | None:
    """Place points on a log-x chart (fit axis log too when `log_y`) and mark the frontier."""
    usable = [p for p in points if p.cost > 0 and math.isfinite(p.fit) and (p.fit > 0 or not log_y)]
    if not usable:
        return None
    width, height, margin = WIDTH, HEIGHT, MARGIN
    top, right, bottom, left = margin
    x_lo, x_hi, x_candidates = _log_ticks(min(p.cost for p in usable), max(p.cost for p in usable))
    fits = [p.fit for p in usable]
    if log_y:
        y_lo, y_hi, y_candidates = _log_ticks(min(fits), max(fits))
    else:
        y_lo, y_hi, y_candidates = _linear_ticks(min(fits), max(fits))

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
    dots.sort(key=lambda d: (d[3], d[0]))  # frontier members drawn last, on top; then left to right (tab order)
    x_ticks = _choose_ticks(
        [[v for v in c if x_lo <= v <= x_hi] for c in x_candidates], sx, fmt_x,
        lambda t: LABEL_CHAR_WIDTH * len(t.label) + 10,
    )  # fmt: skip
    y_ticks = _choose_ticks(
        [[v for v in c if y_lo <= v <= y_hi] for c in y_candidates], sy, fmt_y, lambda t: LABEL_HEIGHT
    )
    return Chart(
        width=width,
        height=height,
        margin=margin,
        x_label=x_label,
        y_label=y_label,
        x_ticks=x_ticks,
        y_ticks=y_ticks,
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
