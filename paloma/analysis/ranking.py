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

from paloma.analysis.runs import Documents, DomainKey, Run
from paloma.errors import PalomaError
from paloma.intervals import resampled_sums, resampled_weights
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
    missing = [e.name for e in entries if key not in e.documents]
    if missing:
        raise PalomaError(f"domain {key[0]}/{key[1]} is in the results of {missing[0]} but not in its records")
    docs = [e.documents[key] for e in entries]
    for entry, d in zip(entries[1:], docs[1:], strict=True):
        if not np.array_equal(d.ids, docs[0].ids):
            raise PalomaError(
                f"domain {key[0]}/{key[1]}: {entry.name} and {entries[0].name} scored different documents; "
                "paired resampling needs the same documents"
            )
    return np.column_stack([c for d in docs for c in (d.nll, d.tokens)] + [docs[0].bytes])


def _per_domain_value(nll: np.ndarray, tokens: np.ndarray, n_bytes: np.ndarray, metric: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.exp(nll / tokens) if metric == "macro_ppl" else nll / (n_bytes * LN2)


def _domain_matrices(entries: Sequence[Entry], keys: Sequence[DomainKey]) -> tuple[np.ndarray, ...]:
    """Fixed per-domain sums as (domains, entries) matrices: nll, tokens, and bytes (domains, 1)."""
    nll = np.array([[e.sums[k].nll_sum for e in entries] for k in keys], dtype=np.float64)
    tokens = np.array([[e.sums[k].tokens for e in entries] for k in keys], dtype=np.float64)
    n_bytes = np.array([[entries[0].sums[k].bytes] for k in keys], dtype=np.float64)
    return nll, tokens, n_bytes


def _fixed_source_replicates(
    weights: np.ndarray, nll: np.ndarray, tokens: np.ndarray, n_bytes: np.ndarray, counted: np.ndarray, metric: str
) -> tuple[np.ndarray, ...]:
    """One source's contribution when its domains' sums are fixed: (macro share, nll, tokens, bytes)."""
    macro = weights @ _per_domain_value(nll, tokens, n_bytes, metric) / weights.shape[1]
    w = weights * counted
    return macro, w @ nll, w @ tokens, w @ n_bytes


def domain_replicates(
    sources: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], metric: str, replicates: int, seed: int = 0
) -> np.ndarray:
    """A macro metric's replicates when only domains are resampled, from per-source (domains, entries)
    matrices (nll, tokens, bytes): the fast path for leaderboards whose submissions carry only sums."""
    if metric not in ("macro_ppl", "macro_bpb"):
        raise PalomaError(f"domain_replicates supports macro_ppl and macro_bpb, not {metric!r}")
    rng = np.random.default_rng(seed)
    macro = 0.0
    for nll, tokens, n_bytes in sources:
        weights = resampled_weights(len(nll), replicates, rng).astype(float)
        macro = macro + weights @ _per_domain_value(nll, tokens, n_bytes, metric) / len(nll)
    return macro / len(sources)


def metric_replicates(
    entries: Sequence[Entry],
    keys: Sequence[DomainKey],
    metric: str,
    replicates: int,
    rng: np.random.Generator | None,
    resample_documents: bool,
    registry: Registry | None = None,
) -> np.ndarray:
    """The metric of every entry in every replicate: (replicates, entries). rng None means no resampling.

    Without document resampling each domain's sums are fixed, and a source's replicates are one product of
    its domain multiplicities with its (domains, entries) matrix, which keeps large leaderboards fast.
    """
    by_source: dict[str, list[DomainKey]] = {}
    for key in keys:
        by_source.setdefault(key[0], []).append(key)
    shape = (replicates, len(entries))
    macro, nll, tokens, n_bytes = np.zeros(shape), np.zeros(shape), np.zeros(shape), np.zeros((replicates, 1))
    for source_keys in by_source.values():
        m = len(source_keys)
        weights = np.ones((replicates, m)) if rng is None else resampled_weights(m, replicates, rng).astype(float)
        counted = np.array([metric == "micro_bpb" or not excluded_from_ordinary(registry, *k) for k in source_keys])
        if rng is not None and resample_documents:
            for j, key in enumerate(source_keys):
                sums = resampled_sums(_domain_columns(entries, key), replicates, rng)
                d_nll, d_tok, d_bytes = sums[:, 0:-1:2], sums[:, 1:-1:2], sums[:, -1:]
                w = weights[:, j : j + 1]
                macro += w * _per_domain_value(d_nll, d_tok, d_bytes, metric) / m
                if counted[j]:
                    nll, tokens, n_bytes = nll + w * d_nll, tokens + w * d_tok, n_bytes + w * d_bytes
        else:
            d_nll, d_tok, d_bytes = _domain_matrices(entries, source_keys)
            part = _fixed_source_replicates(weights, d_nll, d_tok, d_bytes, counted, metric)
            macro, nll, tokens, n_bytes = macro + part[0], nll + part[1], tokens + part[2], n_bytes + part[3]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if metric in ("macro_ppl", "macro_bpb"):
            return macro / len(by_source)
        if metric == "ordinary_ppl":
            return np.exp(nll / tokens)
        return nll / (n_bytes * LN2)


def shared_ranks(values: np.ndarray) -> np.ndarray:
    """Competition ranks along the last axis (lower is better): 1 + how many values are strictly lower, so
    exact ties share the better rank ("1, 1, 3") instead of being ordered by their position."""
    values = np.asarray(values, dtype=np.float64)
    return (values[..., None, :] < values[..., :, None]).sum(axis=-1) + 1


def order_stability(
    reps: np.ndarray, order: Sequence[int], level: float = 0.95, observed: np.ndarray | None = None
) -> list[dict]:
    """For entries in the displayed `order` (indices into the columns of `reps`, best first): rank interval,
    share of replicates keeping the observed rank, and share in which the next entry comes out ahead.

    Ranks are shared by exact ties (`shared_ranks`) in every replicate and, given the `observed` values, in
    the observed order. Where an entry and the next are tied as observed, which one is "ahead" is undefined:
    `tied_with_next` is true and `flip_with_next` None.
    """
    ordered = reps[:, list(order)]
    observed = np.arange(1, len(order) + 1) if observed is None else shared_ranks(np.asarray(observed)[list(order)])
    ranks = shared_ranks(ordered)
    tail = (1 - level) / 2 * 100
    low = np.percentile(ranks, tail, axis=0, method="lower").astype(int)
    high = np.percentile(ranks, 100 - tail, axis=0, method="higher").astype(int)
    kept = np.mean(ranks == observed, axis=0)
    flips = np.mean(ordered[:, 1:] < ordered[:, :-1], axis=0)
    tied = [k < len(order) - 1 and observed[k] == observed[k + 1] for k in range(len(order))]
    return [
        {
            "rank": int(observed[k]),
            "rank_interval": [int(low[k]), int(high[k])],
            "rank_kept": float(kept[k]),
            "flip_with_next": float(flips[k]) if k < len(order) - 1 and not tied[k] else None,
            "tied_with_next": bool(tied[k]),
        }
        for k in range(len(order))
    ]


def _pair(entries: Sequence[Entry], reps: np.ndarray, observed: np.ndarray, i: int, j: int) -> dict:
    """Entry i observed ahead of (or tied with) entry j: how often the order flips; None for a tie."""
    tied = bool(observed[i] == observed[j])
    flips = None if tied else float(np.mean(reps[:, j] < reps[:, i]))
    return {"better": entries[i].name, "worse": entries[j].name, "tied": tied, "flip_rate": flips}


def check_same_data(entries: Sequence[Entry], keys: Sequence[DomainKey]) -> None:
    """Refuse entries that scored different data in a shared domain: ranks of different texts mean nothing.

    Documents and UTF-8 bytes depend on the text only, never on the tokenizer, so they must agree exactly.
    """
    for key in keys:
        first = entries[0].sums[key]
        for entry in entries[1:]:
            other = entry.sums[key]
            if (other.documents, other.bytes) != (first.documents, first.bytes):
                raise PalomaError(
                    f"domain {key[0]}/{key[1]}: {entry.name} and {entries[0].name} scored different documents "
                    f"({other.documents} of {other.bytes} bytes against {first.documents} of {first.bytes}); "
                    "ranks of different data are not comparable"
                )


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
    check_same_data(entries, keys)
    with_documents = all(e.documents is not None for e in entries)
    observed = metric_replicates(entries, keys, metric, 1, None, False, registry)[0]
    reps = metric_replicates(entries, keys, metric, replicates, np.random.default_rng(seed), with_documents, registry)
    order = [int(i) for i in np.argsort(observed, kind="stable")]
    ranking = [
        {"name": entries[i].name, "value": float(observed[i]), **row}
        for i, row in zip(order, order_stability(reps, order, level, observed), strict=True)
    ]
    pairs = [_pair(entries, reps, observed, i, j) for a, i in enumerate(order) for j in order[a + 1 :]]
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
