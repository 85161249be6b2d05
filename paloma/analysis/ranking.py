"""Ranking stability: how often two leaderboard entries would swap places on a resampled benchmark.

A leaderboard orders submissions by one number, but that number depends on which documents and which
domains happened to be in the benchmark. Each bootstrap replicate redraws, for every source, its domains
(with replacement, so a source keeps its number of domains) and, inside every domain, its documents; the
same draws apply to every submission, so the comparison is paired. The flip rate of a pair is the share of
replicates in which their order is the reverse of the observed one.

Submissions without per-document records (only per-domain sums) can still be resampled over domains; the
result then says so, because document-level noise is left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from paloma.analysis.bootstrap import resampled_sums, resampled_weights
from paloma.analysis.runs import Documents, DomainKey, Run
from paloma.errors import PalomaError
from paloma.metrics import LN2, DomainSums, excluded_from_ordinary
from paloma.registry import Registry

METRICS = ("macro_ppl", "macro_bpb", "ordinary_ppl", "micro_bpb")


@dataclass(frozen=True)
class Entry:
    """One leaderboard entry: per-domain sums, and per-document arrays when the submission has them."""

    name: str
    sums: Mapping[DomainKey, DomainSums]
    documents: Mapping[DomainKey, Documents] | None = None

    @classmethod
    def from_run(cls, run: Run, name: str | None = None) -> Entry:
        return cls(name or run.name, run.domain_sums, run.documents() if run.has_records else None)


def _domain_columns(entries: Sequence[Entry], key: DomainKey) -> np.ndarray:
    """(documents, 2S + 1) columns: every entry's nll and tokens, then bytes; documents paired by id."""
    docs = [e.documents[key] for e in entries]
    for entry, d in zip(entries[1:], docs[1:], strict=True):
        if not np.array_equal(d.ids, docs[0].ids):
            raise PalomaError(
                f"domain {key[0]}/{key[1]}: {entry.name} and {entries[0].name} scored different documents; "
                "paired resampling needs the same documents"
            )
    return np.column_stack([c for d in docs for c in (d.nll, d.tokens)] + [docs[0].bytes])


def _fixed_sums(entries: Sequence[Entry], key: DomainKey, replicates: int) -> np.ndarray:
    row = [v for e in entries for v in (e.sums[key].nll_sum, e.sums[key].tokens)] + [entries[0].sums[key].bytes]
    return np.broadcast_to(np.array(row, dtype=np.float64), (replicates, len(row)))


def metric_replicates(
    entries: Sequence[Entry],
    keys: Sequence[DomainKey],
    metric: str,
    replicates: int,
    rng: np.random.Generator | None,
    resample_documents: bool,
    registry: Registry | None = None,
) -> np.ndarray:
    """The metric of every entry in every replicate: (replicates, entries). rng None means no resampling."""
    n_entries = len(entries)
    by_source: dict[str, list[DomainKey]] = {}
    for key in keys:
        by_source.setdefault(key[0], []).append(key)
    macro = np.zeros((replicates, n_entries))
    nll = np.zeros((replicates, n_entries))
    tokens = np.zeros((replicates, n_entries))
    n_bytes = np.zeros((replicates, 1))
    for source_keys in by_source.values():
        if rng is None:
            weights = np.ones((replicates, len(source_keys)))
        else:
            weights = resampled_weights(len(source_keys), replicates, rng).astype(np.float64)
        source_sum = np.zeros((replicates, n_entries))
        for j, key in enumerate(source_keys):
            if rng is not None and resample_documents:
                sums = resampled_sums(_domain_columns(entries, key), replicates, rng)
            else:
                sums = _fixed_sums(entries, key, replicates)
            d_nll, d_tok, d_bytes = sums[:, 0:-1:2], sums[:, 1:-1:2], sums[:, -1:]
            w = weights[:, j : j + 1]
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                per_domain = np.exp(d_nll / d_tok) if metric == "macro_ppl" else d_nll / (d_bytes * LN2)
            source_sum += w * per_domain
            if metric == "micro_bpb" or not excluded_from_ordinary(registry, *key):
                nll += w * d_nll
                tokens += w * d_tok
                n_bytes += w * d_bytes
        macro += source_sum / len(source_keys)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if metric in ("macro_ppl", "macro_bpb"):
            return macro / len(by_source)
        if metric == "ordinary_ppl":
            return np.exp(nll / tokens)
        return nll / (n_bytes * LN2)


def rank_stability(
    entries: Sequence[Entry],
    metric: str = "macro_ppl",
    replicates: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    registry: Registry | None = None,
) -> dict:
    """Observed ranking (lower is better) with, per entry, its rank interval and how often it keeps its
    rank, and for every pair the share of replicates in which their order flips."""
    if metric not in METRICS:
        raise PalomaError(f"unknown metric {metric!r} (choose from {', '.join(METRICS)})")
    if len(entries) < 2:
        raise PalomaError("ranking stability needs at least two submissions")
    if len({e.name for e in entries}) != len(entries):
        raise PalomaError("submission names must be unique")
    keys = [k for k in entries[0].sums if all(k in e.sums and e.sums[k].tokens > 0 for e in entries)]
    if not keys:
        raise PalomaError("the submissions share no scored domain")
    with_documents = all(e.documents is not None for e in entries)
    observed = metric_replicates(entries, keys, metric, 1, None, False, registry)[0]
    reps = metric_replicates(entries, keys, metric, replicates, np.random.default_rng(seed), with_documents, registry)
    order = np.argsort(observed, kind="stable")
    ranks = np.argsort(np.argsort(reps, axis=1, kind="stable"), axis=1) + 1
    tail = (1 - level) / 2 * 100
    ranking = []
    for position, i in enumerate(order, start=1):
        lo = int(np.percentile(ranks[:, i], tail, method="lower"))
        hi = int(np.percentile(ranks[:, i], 100 - tail, method="higher"))
        nxt = order[position] if position < len(order) else None
        ranking.append(
            {
                "name": entries[i].name,
                "rank": position,
                "value": float(observed[i]),
                "rank_interval": [lo, hi],
                "rank_kept": float(np.mean(ranks[:, i] == position)),
                "flip_with_next": float(np.mean(reps[:, nxt] < reps[:, i])) if nxt is not None else None,
            }
        )
    pairs = [
        {"better": entries[i].name, "worse": entries[j].name, "flip_rate": float(np.mean(reps[:, j] < reps[:, i]))}
        for a, i in enumerate(order)
        for j in order[a + 1 :]
    ]
    return {
        "metric": metric,
        "replicates": replicates,
        "seed": seed,
        "level": level,
        "resampled": "documents within domains, and domains within sources"
        if with_documents
        else "domains within sources only (some submissions have no per-document records)",
        "domains": len(keys),
        "sources": len({k[0] for k in keys}),
        "ranking": ranking,
        "pairs": pairs,
    }
