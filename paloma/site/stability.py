"""Rank stability beside each leaderboard rank: how often a model and the next would swap places.

A submission carries per-domain sums, not documents, so the leaderboard resamples domains: each replicate
redraws every source's domains with replacement (paloma.analysis.ranking), recomputes the suite's macro
value for every final model, and ranks them. For the leaderboard's default view of each source group and
metric (final models; for perplexity, those with the fixed vocabulary) every model gets the 95% interval
of its rank and the share of replicates in which the model ranked just below it comes out ahead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from paloma.analysis.ranking import domain_replicates, order_stability
from paloma.site.entries import Entry, comparable

REPLICATES = 1000
LEVEL = 0.95


def _source_matrices(pool: Sequence[Entry], source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(domains, models) matrices of nll, tokens and bytes over the domains every model in the pool scored."""
    tables = [e.sources.get(source, {}).get("domains", {}) for e in pool]
    names = [d for d in tables[0] if all(t.get(d, {}).get("tokens", 0) > 0 for t in tables)]
    if not names:
        return None
    nll = np.array([[t[d]["nll_sum"] for t in tables] for d in names], dtype=np.float64)
    tokens = np.array([[t[d]["tokens"] for t in tables] for d in names], dtype=np.float64)
    n_bytes = np.array([[tables[0][d]["bytes"]] for d in names], dtype=np.float64)
    return nll, tokens, n_bytes


def group_stability(
    entries: Sequence[Entry], group: str, sources: Sequence[str], metric: str, replicates: int = REPLICATES
) -> dict[str, list]:
    """{model name: [rank low, rank high, flip with the next model or None]} for one group and metric."""
    pool = [e for e in entries if e.submission.is_final and comparable(e, metric)]
    pool = [e for e in pool if math.isfinite(e.fit(metric, group))]
    if len(pool) < 2:
        return {}
    pool.sort(key=lambda e: e.fit(metric, group))  # the leaderboard's order
    matrices = [m for m in (_source_matrices(pool, s) for s in sources) if m is not None]
    if not matrices:
        return {}
    reps = domain_replicates(matrices, f"macro_{metric}", replicates, seed=0)
    rows = order_stability(reps, list(range(len(pool))), LEVEL)
    return {
        e.name: [*r["rank_interval"], None if r["flip_with_next"] is None else round(r["flip_with_next"], 3)]
        for e, r in zip(pool, rows, strict=True)
    }


def leaderboard_stability(
    entries: Sequence[Entry], groups: Mapping[str, Sequence[str]], replicates: int = REPLICATES
) -> dict[str, dict[str, list]]:
    """{"<group>/<metric>": {model: [rank low, rank high, flip with next]}} for every group and metric."""
    return {
        f"{group}/{metric}": group_stability(entries, group, sources, metric, replicates)
        for group, sources in groups.items()
        for metric in ("bpb", "ppl")
    }
