"""Aggregates of a submission, recomputed from its per-domain sums with `paloma.metrics` (one formula source)."""

from __future__ import annotations

import math

from paloma import metrics
from paloma.registry import Registry
from paloma.submissions.schema import Submission


def domain_sums(submission: Submission, sources: set[str] | None = None) -> dict[tuple[str, str], metrics.DomainSums]:
    """The submission's sums as `paloma.metrics.DomainSums`, optionally for some sources only."""
    return {
        (source, domain): metrics.DomainSums(
            nll_sum=s.nll_sum,
            tokens=s.tokens,
            bytes=s.bytes,
            chars=s.chars or 0,
            words=s.words or 0,
            documents=s.documents,
            empty_documents=s.empty_documents,
        )
        for source, domains in submission.results.items()
        if sources is None or source in sources
        for domain, s in domains.items()
    }


def recompute(submission: Submission, registry: Registry | None, sources: set[str] | None = None) -> dict:
    """`paloma.metrics.aggregate` over the submission's sums (all sources, or the given ones)."""
    return metrics.aggregate(domain_sums(submission, sources), registry)


def same_number(claimed: float | None, recomputed: float, rel_tol: float = 1e-9) -> bool:
    """Claimed values are JSON numbers or null (NaN); compare with a tolerance for float round-off."""
    if claimed is None or not math.isfinite(recomputed):
        return claimed is None and not math.isfinite(recomputed)
    return math.isclose(claimed, recomputed, rel_tol=rel_tol, abs_tol=1e-12)
