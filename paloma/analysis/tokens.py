"""Which token types carry the loss (paloma.md §3, paper App. B).

From per-type counts and summed NLL (paloma.eval.token_stats): sort the types that occur by frequency and ask
what share of all loss the most frequent ones carry (in the paper, about 5% of types carry about half of
it); and, against a second run over the same tokens, which types account for most of the difference.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from paloma.errors import PalomaError
from paloma.eval.token_stats import TokenStats

FRACTIONS = (0.01, 0.05, 0.10, 0.25, 0.50)


def frequency_order(count: np.ndarray) -> np.ndarray:
    """Ids of the types that occur, most frequent first (ties: lower id first)."""
    seen = np.flatnonzero(count > 0)
    return seen[np.lexsort((seen, -count[seen]))]


def loss_concentration(count: np.ndarray, nll: np.ndarray, fractions: Sequence[float] = FRACTIONS) -> list[dict]:
    """For each fraction f: the ceil(f · types seen) most frequent types, and their share of tokens and loss."""
    order = frequency_order(count)
    total_nll, total_count = float(nll.sum()), int(count.sum())
    cum_nll, cum_count = np.cumsum(nll[order]), np.cumsum(count[order])
    out = []
    for f in fractions:
        k = max(1, math.ceil(f * len(order))) if len(order) else 0
        out.append(
            {
                "fraction_of_types": f,
                "types": k,
                "token_share": float(cum_count[k - 1]) / total_count if k else math.nan,
                "loss_share": float(cum_nll[k - 1]) / total_nll if k and total_nll else math.nan,
            }
        )
    return out


def frequent_types(
    count: np.ndarray, nll: np.ndarray, top: int, decode: Callable[[int], str] | None = None
) -> list[dict]:
    """The `top` most frequent types with their count, mean loss and share of all loss."""
    total = float(nll.sum())
    return [
        {
            "id": int(v),
            "token": decode(int(v)) if decode else None,
            "count": int(count[v]),
            "mean_loss": float(nll[v] / count[v]),
            "loss_share": float(nll[v]) / total if total else math.nan,
        }
        for v in frequency_order(count)[:top]
    ]


def type_differences(
    a: tuple[np.ndarray, np.ndarray],
    b: tuple[np.ndarray, np.ndarray],
    top: int,
    min_count: int = 1,
    decode: Callable[[int], str] | None = None,
) -> dict:
    """Types where B beats A most (largest drop in summed loss) and where A beats B most.

    Both runs must have scored the same tokens (identical counts), so each type's summed-loss difference is
    its exact contribution to the difference in total loss.
    """
    (count_a, nll_a), (count_b, nll_b) = a, b
    if count_a.shape != count_b.shape:
        raise PalomaError(f"vocabularies differ in size ({len(count_a)} vs {len(count_b)}); types cannot be paired")
    if not np.array_equal(count_a, count_b):
        changed = int((count_a != count_b).sum())
        raise PalomaError(f"the runs scored different tokens ({changed} types have different counts)")
    delta = nll_b - nll_a
    eligible = np.flatnonzero(count_a >= min_count)
    order = eligible[np.lexsort((eligible, delta[eligible]))]

    def row(v: int) -> dict:
        return {
            "id": int(v),
            "token": decode(int(v)) if decode else None,
            "count": int(count_a[v]),
            "mean_loss_a": float(nll_a[v] / count_a[v]),
            "mean_loss_b": float(nll_b[v] / count_b[v]),
            "loss_change": float(delta[v]),
            "share_of_total_change": float(delta[v] / delta.sum()) if delta.sum() else math.nan,
        }

    return {
        "total_loss_change": float(delta.sum()),
        "b_better": [row(v) for v in order[:top] if delta[v] < 0],
        "a_better": [row(v) for v in order[::-1][:top] if delta[v] > 0],
    }


def select(stats: TokenStats, source: str | None = None, domain: str | None = None) -> list[tuple[str, str]]:
    """Domain keys of one source, one `source/domain`, or all; errors name what was not found."""
    keys = list(stats.domains)
    if domain:
        wanted = tuple(domain.split("/", 1)) if "/" in domain else None
        keys = [k for k in keys if k == wanted]
        if not keys:
            raise PalomaError(f"--domain {domain!r}: no such source/domain in the token statistics")
    elif source:
        keys = [k for k in keys if k[0] == source]
        if not keys:
            raise PalomaError(f"--source {source!r}: no such source in the token statistics")
    return keys


def token_report(
    stats: TokenStats,
    keys: Sequence[tuple[str, str]],
    top: int = 20,
    against: TokenStats | None = None,
    min_count: int = 1,
    decode: Callable[[int], str] | None = None,
) -> dict:
    """Loss concentration over the selected domains, per source, the most frequent types, and a comparison."""
    count, nll = stats.total(keys)
    sources = sorted({k[0] for k in keys})
    report = {
        "domains": len(keys),
        "tokens": int(count.sum()),
        "types_seen": int((count > 0).sum()),
        "vocab_size": stats.vocab_size,
        "concentration": loss_concentration(count, nll),
        "by_source": {
            s: loss_concentration(*stats.total([k for k in keys if k[0] == s]), fractions=(0.05,))[0] for s in sources
        },
        "frequent_types": frequent_types(count, nll, top, decode),
    }
    if against is not None:
        missing = [k for k in keys if k not in against.domains]
        if missing:
            raise PalomaError(f"the other run has no token statistics for {missing[0][0]}/{missing[0][1]}")
        if against.vocab_size != stats.vocab_size:
            raise PalomaError(f"vocabularies differ in size ({stats.vocab_size} vs {against.vocab_size})")
        report["comparison"] = type_differences((count, nll), against.total(keys), top, min_count, decode)
    return report
