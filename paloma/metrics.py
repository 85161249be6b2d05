"""Metrics of Paloma (paloma.md §3), as pure functions of per-document records.

Everything here takes plain data (per-document records, or per-domain sums) and returns plain data, so a
finished run can be re-aggregated without the model, and a submission's aggregates can be recomputed from
its per-domain sums. Log-likelihoods are natural logs; `nll_sum` is positive (the negated sum).

- domain (micro over its documents): ppl = exp(nll/tokens); bpb = nll/(bytes·ln 2); byte, char and word
  perplexity = exp(nll/count). 2^bpb equals byte perplexity.
- source: macro = arithmetic mean of domain values, each domain weighted equally (the paper's headline);
  micro = token-weighted over the whole source; word and byte perplexity over the whole source (as
  lm-evaluation-harness reports them per task).
- suite: macro over sources of their macro values; "ordinary perplexity" = token-weighted over all data
  of the included sources, leaving out fringe sources and code domains (paper Fig. 1); micro over all.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields

import numpy as np

from paloma.registry import Registry

LN2 = math.log(2.0)


@dataclass
class DomainSums:
    """Additive totals of one domain: everything a metric needs, and all a submission must carry."""

    nll_sum: float = 0.0
    tokens: int = 0
    bytes: int = 0
    chars: int = 0
    words: int = 0
    documents: int = 0
    empty_documents: int = 0

    def add_record(self, record: Mapping) -> None:
        self.nll_sum += float(record["nll_sum"])
        self.tokens += int(record["tokens"])
        self.bytes += int(record["bytes"])
        self.chars += int(record.get("chars", 0))
        self.words += int(record.get("words", 0))
        self.documents += 1
        self.empty_documents += int(record["tokens"]) == 0

    def __iadd__(self, other: DomainSums) -> DomainSums:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))
        return self

    def as_dict(self) -> dict:
        """A shallow copy of the fields (dataclasses.asdict deep-copies and dominates big aggregations)."""
        return dict(vars(self))

    @classmethod
    def from_dict(cls, raw: Mapping) -> DomainSums:
        return cls(**{f.name: raw.get(f.name, 0) for f in fields(cls)})


def _exp_ratio(nll: float, count: float) -> float:
    return math.exp(nll / count) if count > 0 else float("nan")


def perplexity(nll_sum: float, tokens: float) -> float:
    """exp(Σ nll / Σ tokens); NaN when nothing was scored."""
    return _exp_ratio(nll_sum, tokens)


def bits_per_byte(nll_sum: float, n_bytes: float) -> float:
    """Σ nll / (Σ UTF-8 bytes · ln 2); NaN when there are no bytes."""
    return nll_sum / (n_bytes * LN2) if n_bytes > 0 else float("nan")


def domain_metrics(sums: DomainSums) -> dict:
    """All per-domain numbers: the sums, then ppl, bpb and byte/char/word perplexity."""
    return {
        **sums.as_dict(),
        "ppl": perplexity(sums.nll_sum, sums.tokens),
        "bpb": bits_per_byte(sums.nll_sum, sums.bytes),
        "byte_ppl": _exp_ratio(sums.nll_sum, sums.bytes),
        "char_ppl": _exp_ratio(sums.nll_sum, sums.chars),
        "word_ppl": _exp_ratio(sums.nll_sum, sums.words),
    }


def sum_records(records: Iterable[Mapping]) -> dict[tuple[str, str], DomainSums]:
    """Per-(source, domain) totals of per-document records."""
    totals: dict[tuple[str, str], DomainSums] = {}
    for record in records:
        key = (record["source"], record["domain"])
        totals.setdefault(key, DomainSums()).add_record(record)
    return totals


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else float("nan")


def _total(sums: Iterable[DomainSums]) -> DomainSums:
    total = DomainSums()
    for s in sums:
        total += s
    return total


def source_metrics(domains: Mapping[str, DomainSums], registry: Registry | None, source: str) -> dict:
    """One source: its domains' metrics, macro (domains weighted equally) and micro (token-weighted)."""
    per_domain = {d: domain_metrics(s) for d, s in sorted(domains.items())}
    scored = [m for m in per_domain.values() if m["tokens"] > 0]
    total = _total(domains.values())
    entry = registry.get(source) if registry else None
    known_domains = set(entry.domains) if entry else set()
    return {
        "domains": per_domain,
        "macro_ppl": _mean([m["ppl"] for m in scored]),
        "macro_bpb": _mean([m["bpb"] for m in scored]),
        "micro_ppl": perplexity(total.nll_sum, total.tokens),
        "micro_bpb": bits_per_byte(total.nll_sum, total.bytes),
        # word and byte perplexity over all the source's documents: what lm-evaluation-harness reports per
        # paloma_* task (its weighted_perplexity: Σ log-likelihood / Σ count); its bits_per_byte is micro_bpb
        "word_ppl": _exp_ratio(total.nll_sum, total.words),
        "byte_ppl": _exp_ratio(total.nll_sum, total.bytes),
        **total.as_dict(),
        "in_registry": entry is not None,
        "unknown_domains": sorted(d for d in domains if entry is not None and not entry.accepts_domain(d)),
        "missing_domains": [
            d for d in (entry.domains if entry else ()) if d not in domains and not _undivided(entry, domains)
        ],
        "registry_domains": len(known_domains) if entry else None,
    }


def _undivided(entry, domains: Mapping[str, DomainSums]) -> bool:
    """A source sampled as one (Manosphere) may report a single domain named after itself."""
    return entry.undivided_allowed and set(domains) == {entry.name}


def excluded_from_ordinary(registry: Registry | None, source: str, domain: str) -> bool:
    """Fringe sources and code domains are left out of the paper's ordinary perplexity."""
    entry = registry.get(source) if registry else None
    return entry is not None and (entry.fringe or entry.is_code_domain(domain))


def suite_metrics(
    by_domain: Mapping[tuple[str, str], DomainSums], sources: Mapping[str, dict], registry: Registry | None
) -> dict:
    """Suite-level numbers: macro over sources, ordinary (token-weighted, no fringe, no code), micro."""
    ordinary = _total(s for (src, dom), s in by_domain.items() if not excluded_from_ordinary(registry, src, dom))
    everything = _total(by_domain.values())
    scored_sources = [m for m in sources.values() if m["tokens"] > 0]
    return {
        "sources": len(sources),
        "domains": sum(len(m["domains"]) for m in sources.values()),
        "macro_ppl": _mean([m["macro_ppl"] for m in scored_sources]),
        "macro_bpb": _mean([m["macro_bpb"] for m in scored_sources]),
        "ordinary_ppl": perplexity(ordinary.nll_sum, ordinary.tokens),
        "ordinary_bpb": bits_per_byte(ordinary.nll_sum, ordinary.bytes),
        "ordinary_tokens": ordinary.tokens,
        "micro_ppl": perplexity(everything.nll_sum, everything.tokens),
        "micro_bpb": bits_per_byte(everything.nll_sum, everything.bytes),
        **everything.as_dict(),
    }


def aggregate(by_domain: Mapping[tuple[str, str], DomainSums], registry: Registry | None = None) -> dict:
    """Per-domain sums → {"sources": {source: {..., "domains": {...}}}, "suite": {...}}."""
    grouped: dict[str, dict[str, DomainSums]] = {}
    for (source, domain), sums in by_domain.items():
        grouped.setdefault(source, {})[domain] = sums
    order = [s.name for s in registry.sources] if registry else []
    names = [s for s in order if s in grouped] + sorted(s for s in grouped if s not in order)
    sources = {name: source_metrics(grouped[name], registry, name) for name in names}
    return {"sources": sources, "suite": suite_metrics(by_domain, sources, registry)}


def aggregate_records(records: Iterable[Mapping], registry: Registry | None = None) -> dict:
    """Per-document records → aggregate (see `aggregate`)."""
    return aggregate(sum_records(records), registry)


def sums_and_columns(
    records: Iterable[Mapping], with_columns: bool
) -> tuple[dict[tuple[str, str], DomainSums], dict[tuple[str, str], np.ndarray]]:
    """Per-domain sums and (when asked) bootstrap columns, in one pass over a stream of records."""
    totals: dict[tuple[str, str], DomainSums] = {}
    columns: dict[tuple[str, str], array] = {}
    for record in records:
        key = (record["source"], record["domain"])
        totals.setdefault(key, DomainSums()).add_record(record)
        if with_columns:
            columns.setdefault(key, array("d")).extend((record["nll_sum"], record["tokens"], record["bytes"]))
    arrays = {key: np.frombuffer(values, dtype=np.float64).reshape(-1, 3) for key, values in columns.items()}
    return totals, arrays
