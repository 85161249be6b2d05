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
from dataclasses import dataclass

import numpy as np

from paloma.analysis.ranking import domain_replicates, order_stability
from paloma.site.entries import Entry, comparable

REPLICATES = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class SourceTable:
    """One source's per-domain sums of every final model: (domains, models) matrices; 0 tokens = not scored."""

    nll: np.ndarray
    tokens: np.ndarray
    bytes: np.ndarray

    @classmethod
    def of(cls, finals: Sequence[Entry], source: str) -> SourceTable:
        tables = [e.sources.get(source, {}).get("domains", {}) for e in finals]
        names = sorted({d for t in tables for d in t})
        shape = (len(names), len(finals))
        nll, tokens, n_bytes = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        for j, table in enumerate(tables):
            for i, name in enumerate(names):
                row = table.get(name)
                if row is not None:
                    nll[i, j], tokens[i, j], n_bytes[i, j] = row["nll_sum"], row["tokens"], row["bytes"]
        return cls(nll, tokens, n_bytes)

    def pool(self, columns: list[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """The matrices for some models, over the domains all of them scored (None when there are none)."""
        scored = (self.tokens[:, columns] > 0).all(axis=1)
        if not scored.any():
            return None
        # bytes are the same data for every model; take them from the first model of the pool
        return self.nll[scored][:, columns], self.tokens[scored][:, columns], self.bytes[scored][:, columns[:1]]


def group_stability(
    finals: Sequence[Entry],
    tables: Mapping[str, SourceTable],
    group: str,
    sources: Sequence[str],
    metric: str,
    replicates: int = REPLICATES,
) -> dict[str, list]:
    """{model name: [rank low, rank high, flip with the next model or None]} for one group and metric."""
    columns = [j for j, e in enumerate(finals) if comparable(e, metric) and math.isfinite(e.fit(metric, group))]
    if len(columns) < 2:
        return {}
    columns.sort(key=lambda j: finals[j].fit(metric, group))  # the leaderboard's order
    matrices = [m for m in (tables[s].pool(columns) for s in sources if s in tables) if m is not None]
    if not matrices:
        return {}
    reps = domain_replicates(matrices, f"macro_{metric}", replicates, seed=0)
    rows = order_stability(reps, list(range(len(columns))), LEVEL)
    return {
        finals[j].name: [*r["rank_interval"], None if r["flip_with_next"] is None else round(r["flip_with_next"], 3)]
        for j, r in zip(columns, rows, strict=True)
    }


def leaderboard_stability(
    entries: Sequence[Entry], groups: Mapping[str, Sequence[str]], replicates: int = REPLICATES
) -> dict[str, dict[str, list]]:
    """{"<group>/<metric>": {model: [rank low, rank high, flip with next]}} for every group and metric."""
    finals = [e for e in entries if e.submission.is_final]
    tables = {s: SourceTable.of(finals, s) for s in {s for members in groups.values() for s in members}}
    return {
        f"{group}/{metric}": group_stability(finals, tables, group, sources, metric, replicates)
        for group, sources in groups.items()
        for metric in ("bpb", "ppl")
    }
