"""Compare two runs domain by domain: which domains a change helps or hurts, and whether it is real.

Differences are B − A (A is the baseline). Intervals come from a paired bootstrap over documents: within
each domain, documents are drawn with replacement and the *same* draws score both runs, so shared document
difficulty cancels out. The interval is studentized (bootstrap-t): each replicate carries its own
delta-method standard error, computed from the same draws.

**How many documents an interval needs.** A domain's loss is a ratio of sums over its documents, so its
precision depends on how evenly the documents share the bytes: the effective number of documents is
(Σ bytes)² / Σ bytes² (Kish), which equals the count when all are the same length and is far lower with
heavy-tailed lengths. Below MIN_EFFECTIVE_DOCUMENTS no resampling of whole documents is trustworthy (one
document gives a zero-width interval, measured coverage at 5 documents is about 80%), so such a domain gets
no interval and is never called significant; per-token or per-window losses, which would allow resampling
blocks of tokens inside long documents, are not in the records. Measured coverage is in docs/analysis.md.

**Sources and the suite.** A source's value is the mean over its domains (macro, as the leaderboard); when
every domain has an interval, the source's replicates are the means of its domains' (documents resampled
in every domain). When some do not, a source with at least MIN_DOMAINS domains resamples its *domains*
instead (the variance between domain estimates includes each domain's own noise, so this is conservative
for the fixed domains); with fewer, the source has no interval. The overall row is the mean over sources,
as the leaderboard ranks (and with a registry, the same per purpose group of sources); it has an interval
when every source in it has one.

A domain counts as a win for the run with the lower bits per byte (the same decision as perplexity when
both runs scored the same tokens, and still meaningful when they did not); a win is significant when the
interval of the bpb difference excludes zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from paloma.analysis.runs import Documents, DomainKey, Run
from paloma.errors import PalomaError
from paloma.intervals import (
    MIN_DOMAINS,
    MIN_EFFECTIVE_DOCUMENTS,
    Estimate,
    delta_sd,
    effective_documents,
    macro_estimate,
    mean_of,
    resampled_moments,
)
from paloma.metrics import LN2, DomainSums, bits_per_byte, perplexity
from paloma.protocol import differences as differing_fields
from paloma.registry import GROUPS, Registry

METRICS = ("ppl", "bpb")
_COLUMNS = ("nll_a", "tok_a", "nll_b", "tok_b", "bytes")  # per-document columns, in this order


@dataclass(frozen=True)
class BootstrapConfig:
    """How many paired resamples, the interval's level, and the seed (so a comparison is reproducible)."""

    replicates: int = 1000
    level: float = 0.95
    seed: int = 0


def check_protocols(run_a: Run, run_b: Run, force: bool) -> dict:
    """Refuse runs evaluated under different protocols (unless forced), saying which fields differ."""
    fp_a, fp_b = run_a.protocol.get("fingerprint"), run_b.protocol.get("fingerprint")
    differences = {k: list(v) for k, v in differing_fields(run_a.protocol, run_b.protocol).items()}
    same = fp_a == fp_b if fp_a and fp_b else not differences
    if not same and not force:
        fields = "; ".join(f"{k}: {v[0]!r} vs {v[1]!r}" for k, v in differences.items()) or "fingerprints differ"
        raise PalomaError(
            f"the runs used different evaluation protocols ({fields}); their numbers are not comparable. "
            "Pass --force to compare anyway (bits per byte stays comparable across tokenizers, perplexity does not)"
        )
    tokenizers = [run_a.protocol.get("tokenizer_hash"), run_b.protocol.get("tokenizer_hash")]
    return {
        "same": same,
        "fingerprint_a": fp_a,
        "fingerprint_b": fp_b,
        "differences": differences,
        "forced": force,
        "same_tokenizer": tokenizers[0] == tokenizers[1] if all(tokenizers) else None,
    }


def paired_columns(key: DomainKey, docs_a: Documents, docs_b: Documents) -> np.ndarray:
    """Per-document columns [nll_a, tokens_a, nll_b, tokens_b, bytes] of one domain, aligned by id."""
    if len(docs_a) != len(docs_b) or not np.array_equal(docs_a.ids, docs_b.ids):
        only_a = len(np.setdiff1d(docs_a.ids, docs_b.ids))
        only_b = len(np.setdiff1d(docs_b.ids, docs_a.ids))
        raise PalomaError(
            f"domain {key[0]}/{key[1]}: the runs scored different documents ({only_a} only in A, {only_b} only "
            "in B); a paired comparison needs the same documents"
        )
    return np.column_stack([docs_a.nll, docs_a.tokens, docs_b.nll, docs_b.tokens, docs_a.bytes])


def differences_with_errors(sums: np.ndarray, moments: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ppl_B − ppl_A and bpb_B − bpb_A with their delta-method standard errors, per row of sums.

    `sums` (r, 5) and `moments` (r, 5, 5) are Σ c·x and Σ c·x xᵀ over the documents (c the multiplicities)
    of the columns [nll_a, tok_a, nll_b, tok_b, bytes]. Each difference is linearised around the row's own
    estimate: its variance is wᵀ M w, with w the gradient of the difference with respect to the sums divided
    through by the documents' influence (x − r·t for a ratio r = Σx / Σt).
    """
    nll_a, tok_a, nll_b, tok_b, n_bytes = sums.T
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rate_a, rate_b = nll_a / tok_a, nll_b / tok_b
        ppl_a, ppl_b = np.exp(rate_a), np.exp(rate_b)
        zeros = np.zeros_like(nll_a)
        w_ppl = np.stack([-ppl_a / tok_a, ppl_a * rate_a / tok_a, ppl_b / tok_b, -ppl_b * rate_b / tok_b, zeros], 1)
        rate = (nll_b - nll_a) / n_bytes
        w_bpb = np.stack([-1 / n_bytes, zeros, 1 / n_bytes, zeros, -rate / n_bytes], 1) / LN2
        return {"ppl": (ppl_b - ppl_a, delta_sd(w_ppl, moments)), "bpb": (rate / LN2, delta_sd(w_bpb, moments))}


def domain_estimates(columns: np.ndarray, config: BootstrapConfig, rng: np.random.Generator) -> dict[str, Estimate]:
    """The paired, studentized bootstrap of one domain: {"ppl": Estimate, "bpb": Estimate}; the Student-t
    side of the interval has effective documents − 1 degrees of freedom."""
    full = differences_with_errors(columns.sum(axis=0)[None], np.einsum("ni,nj->ij", columns, columns)[None])
    reps = differences_with_errors(*resampled_moments(columns, config.replicates, rng))
    dof = effective_documents(columns[:, 4]) - 1.0
    return {m: Estimate(float(full[m][0][0]), float(full[m][1][0]), dof, reps[m][0], reps[m][1]) for m in METRICS}


def domain_intervals(
    columns: np.ndarray, config: BootstrapConfig, rng: np.random.Generator
) -> dict[str, Estimate] | None:
    """The estimates of a domain with at least MIN_EFFECTIVE_DOCUMENTS effective documents, else None."""
    if effective_documents(columns[:, 4]) < MIN_EFFECTIVE_DOCUMENTS:
        return None
    return domain_estimates(columns, config, rng)


def _domain_row(key: DomainKey, a: DomainSums, b: DomainSums) -> dict:
    ppl_a, ppl_b = perplexity(a.nll_sum, a.tokens), perplexity(b.nll_sum, b.tokens)
    bpb_a, bpb_b = bits_per_byte(a.nll_sum, a.bytes), bits_per_byte(b.nll_sum, b.bytes)
    diff = bpb_b - bpb_a
    return {
        "source": key[0],
        "domain": key[1],
        "documents": a.documents,
        "effective_documents": None,
        "tokens_a": a.tokens,
        "tokens_b": b.tokens,
        "ppl_a": ppl_a,
        "ppl_b": ppl_b,
        "ppl_diff": ppl_b - ppl_a,
        "ppl_rel": ppl_b / ppl_a - 1.0 if ppl_a > 0 else math.nan,
        "ppl_ci": None,
        "bpb_a": bpb_a,
        "bpb_b": bpb_b,
        "bpb_diff": diff,
        "bpb_ci": None,
        "winner": "b" if diff < 0 else "a" if diff > 0 else "tie",
        "significant": None,
        "interval_note": None,
    }


def _win_counts(rows: list[dict]) -> dict:
    n = len(rows)
    with_interval = [r for r in rows if r["significant"] is not None]
    counts = {
        "domains": n,
        "domains_with_interval": len(with_interval),
        "b_wins": sum(r["winner"] == "b" for r in rows),
        "a_wins": sum(r["winner"] == "a" for r in rows),
        "ties": sum(r["winner"] == "tie" for r in rows),
        "b_wins_significant": sum(r["winner"] == "b" and bool(r["significant"]) for r in rows),
        "a_wins_significant": sum(r["winner"] == "a" and bool(r["significant"]) for r in rows),
    }
    for name in [k for k in counts if k.endswith(("wins", "significant"))]:
        counts[name.replace("wins", "win_share")] = counts[name] / n if n else math.nan
    return counts


@dataclass(frozen=True)
class Summary:
    """The macro difference of a set of domains or sources, and its estimates (None: no interval, and why)."""

    values: dict[str, tuple[float, float]]  # metric → (mean A, mean B)
    estimates: dict[str, Estimate] | None
    scheme: str | None
    note: str | None

    def to_dict(self, level: float) -> dict:
        out = {}
        for metric, (a, b) in self.values.items():
            out.update({f"macro_{metric}_a": a, f"macro_{metric}_b": b, f"macro_{metric}_diff": b - a})
            out[f"macro_{metric}_ci"] = list(self.estimates[metric].interval(level)) if self.estimates else None
        return {**out, "interval_scheme": self.scheme, "interval_note": self.note}


def _means(rows: list[dict]) -> dict[str, tuple[float, float]]:
    """Per metric, the mean over `rows` of A's and of B's values."""
    return {m: tuple(float(np.mean([r[f"{m}_{side}"] for r in rows])) for side in "ab") for m in METRICS}


def _source_summary(rows: list[dict], estimates: dict, config: BootstrapConfig, rng: np.random.Generator) -> Summary:
    """Macro over a source's domains, with its interval scheme (module docstring)."""
    values = _means(rows)
    keys = [(r["source"], r["domain"]) for r in rows]
    if estimates is None:
        return Summary(values, None, None, "no per-document records")
    found = {
        m: macro_estimate(
            np.array([r[f"{m}_b"] - r[f"{m}_a"] for r in rows]),
            [estimates[k][m] if k in estimates else None for k in keys],
            config.replicates,
            rng,
        )
        for m in METRICS
    }
    if found["ppl"][0] is not None:
        return Summary(values, {m: e for m, (e, _) in found.items()}, found["ppl"][1], None)
    short = sum(k not in estimates for k in keys)
    note = (
        f"{short} of {len(rows)} domains have fewer than {MIN_EFFECTIVE_DOCUMENTS} effective documents, and "
        f"resampling domains needs at least {MIN_DOMAINS}"
    )
    return Summary(values, None, None, note)


def _suite_summary(names: list[str], sources: dict[str, Summary]) -> Summary:
    """Macro over sources, as the leaderboard: the mean of the sources' macro values."""
    values = {m: tuple(float(np.mean([sources[s].values[m][i] for s in names])) for i in (0, 1)) for m in METRICS}
    lacking = [s for s in names if sources[s].estimates is None]
    if lacking:
        return Summary(values, None, None, f"source {lacking[0]} has no interval ({sources[lacking[0]].note})")
    combined = {m: mean_of([sources[s].estimates[m] for s in names]) for m in METRICS}
    return Summary(values, combined, "sources combined", None)


def compare_runs(
    run_a: Run,
    run_b: Run,
    config: BootstrapConfig | None = None,
    force: bool = False,
    top: int = 10,
    registry: Registry | None = None,
) -> dict:
    """Compare run B against baseline A per domain, per source and overall (see module docstring)."""
    config = config or BootstrapConfig()
    protocol = check_protocols(run_a, run_b, force)
    sums_a, sums_b = run_a.domain_sums, run_b.domain_sums
    shared = [k for k in sums_a if k in sums_b and sums_a[k].tokens > 0 and sums_b[k].tokens > 0]
    if not shared:
        raise PalomaError("the runs share no scored domain")
    shared = _registry_order(shared, registry)
    rows = [_domain_row(k, sums_a[k], sums_b[k]) for k in shared]
    bootstrap = run_a.has_records and run_b.has_records and config.replicates > 0
    rng = np.random.default_rng(config.seed)
    estimates = _domain_estimates(run_a, run_b, rows, config, rng) if bootstrap else None
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    sources = {s: _source_summary(rs, estimates, config, rng) for s, rs in by_source.items()}
    overall = _suite_summary(list(by_source), sources)
    ranked = sorted((r for r in rows if math.isfinite(r["ppl_rel"])), key=lambda r: r["ppl_rel"])
    return {
        "a": {"name": run_a.name, "path": str(run_a.path)},
        "b": {"name": run_b.name, "path": str(run_b.path)},
        "protocol": protocol,
        "bootstrap": {
            "replicates": config.replicates,
            "level": config.level,
            "seed": config.seed,
            "unit": "documents, paired by id within each domain; studentized (bootstrap-t)",
            "min_effective_documents": MIN_EFFECTIVE_DOCUMENTS,
            "min_domains": MIN_DOMAINS,
        }
        if bootstrap
        else None,
        "summary": {**_win_counts(rows), **overall.to_dict(config.level), "average": "sources equal"},
        "groups": _group_summaries(by_source, sources, registry, config.level),
        "sources": [{"source": s, **_win_counts(by_source[s]), **sources[s].to_dict(config.level)} for s in by_source],
        "most_improved": [_key(r) for r in ranked[:top] if r["ppl_rel"] < 0],
        "most_regressed": [_key(r) for r in ranked[::-1][:top] if r["ppl_rel"] > 0],
        "only_in_a": [f"{s}/{d}" for s, d in sums_a if (s, d) not in sums_b],
        "only_in_b": [f"{s}/{d}" for s, d in sums_b if (s, d) not in sums_a],
        "domains": rows,
    }


def _registry_order(keys: list[DomainKey], registry: Registry | None) -> list[DomainKey]:
    """Registry order (sources, then their domains) where the registry knows them, then the rest as read."""
    if registry is None:
        return keys
    order = {pair: i for i, pair in enumerate(registry.domain_pairs())}
    source_order = {s.name: i for i, s in enumerate(registry.sources)}
    return sorted(keys, key=lambda k: (source_order.get(k[0], len(source_order)), order.get(k, len(order))))


def _group_summaries(by_source: dict, sources: dict[str, Summary], registry: Registry | None, level: float) -> list:
    """With a registry: the overall row of each purpose group of sources (standard, fine-grained, …)."""
    if registry is None:
        return []
    out = []
    for group in GROUPS:
        names = [s for s in by_source if registry.get(s) is not None and registry.get(s).group == group]
        if names:
            out.append({"group": group, "sources": len(names), **_suite_summary(names, sources).to_dict(level)})
    return out


def _domain_estimates(
    run_a: Run, run_b: Run, rows: list[dict], config: BootstrapConfig, rng: np.random.Generator
) -> dict[DomainKey, dict[str, Estimate]]:
    """Estimates of every domain with enough effective documents; the rows get their intervals (or why not)."""
    docs_a, docs_b = run_a.documents(), run_b.documents()
    out = {}
    for row in rows:
        key = (row["source"], row["domain"])
        if key not in docs_a or key not in docs_b:
            raise PalomaError(f"domain {key[0]}/{key[1]} is in results.json but not in the records of both runs")
        columns = paired_columns(key, docs_a[key], docs_b[key])
        row["effective_documents"] = effective_documents(columns[:, 4])
        estimates = domain_intervals(columns, config, rng)
        if estimates is None:
            row["interval_note"] = (
                f"{len(columns)} documents, {row['effective_documents']:.1f} effective: fewer than "
                f"{MIN_EFFECTIVE_DOCUMENTS}, no interval"
            )
            continue
        out[key] = estimates
        row["ppl_ci"] = list(out[key]["ppl"].interval(config.level))
        row["bpb_ci"] = list(out[key]["bpb"].interval(config.level))
        lo, hi = row["bpb_ci"]
        row["significant"] = bool(lo > 0 or hi < 0)
    return out


def _key(row: dict) -> dict:
    return {k: row[k] for k in ("source", "domain", "ppl_a", "ppl_b", "ppl_rel", "bpb_diff", "significant")}


CSV_COLUMNS = [
    "source",
    "domain",
    "documents",
    "effective_documents",
    "tokens_a",
    "tokens_b",
    "ppl_a",
    "ppl_b",
    "ppl_diff",
    "ppl_rel",
    "ppl_ci_lo",
    "ppl_ci_hi",
    "bpb_a",
    "bpb_b",
    "bpb_diff",
    "bpb_ci_lo",
    "bpb_ci_hi",
    "winner",
    "significant",
    "interval_note",
]


def csv_rows(comparison: dict) -> list[list]:
    """The per-domain table of a comparison, one row per domain, in CSV_COLUMNS order."""
    out = []
    for r in comparison["domains"]:
        ppl_ci, bpb_ci = r["ppl_ci"] or [None, None], r["bpb_ci"] or [None, None]
        flat = {**r, "ppl_ci_lo": ppl_ci[0], "ppl_ci_hi": ppl_ci[1], "bpb_ci_lo": bpb_ci[0], "bpb_ci_hi": bpb_ci[1]}
        out.append([flat[c] for c in CSV_COLUMNS])
    return out
