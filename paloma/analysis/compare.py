"""Compare two runs domain by domain: which domains a change helps or hurts, and whether it is real.

Differences are B − A (A is the baseline). Confidence intervals come from a paired bootstrap over
documents: within each domain, documents are drawn with replacement and the *same* draws score both runs,
so shared document difficulty cancels out. Domains are independent, so replicate i of every domain together
forms a replicate of the whole suite, which gives intervals for source and suite macro averages too.

A domain counts as a win for the run with the lower bits per byte (the same decision as perplexity when
both runs scored the same tokens, and still meaningful when they did not); a win is significant when the
interval of the bpb difference excludes zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from paloma.analysis.bootstrap import percentile_interval, resampled_sums
from paloma.analysis.runs import Documents, DomainKey, Run
from paloma.errors import PalomaError
from paloma.metrics import LN2, DomainSums, bits_per_byte, perplexity
from paloma.protocol import FINGERPRINT_FIELDS


@dataclass(frozen=True)
class BootstrapConfig:
    """How many paired resamples, the interval's level, and the seed (so a comparison is reproducible)."""

    replicates: int = 1000
    level: float = 0.95
    seed: int = 0


def protocol_differences(a: dict, b: dict, fields: tuple[str, ...] = FINGERPRINT_FIELDS) -> dict[str, list]:
    """Comparability fields (the protocol fingerprint's) whose values differ: {field: [A's value, B's value]}.

    Tokenizer and model are not among them: they differ between the models being compared.
    """
    return {n: [a.get(n), b.get(n)] for n in fields if a.get(n) != b.get(n)}


def check_protocols(run_a: Run, run_b: Run, force: bool) -> dict:
    """Refuse runs evaluated under different protocols (unless forced), saying which fields differ."""
    fp_a, fp_b = run_a.protocol.get("fingerprint"), run_b.protocol.get("fingerprint")
    differences = protocol_differences(run_a.protocol, run_b.protocol)
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


def _ppl(nll: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        return np.exp(nll / tokens)


def _bpb(nll: np.ndarray, n_bytes: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return nll / (n_bytes * LN2)


def paired_replicates(columns: np.ndarray, config: BootstrapConfig, rng: np.random.Generator) -> dict:
    """Bootstrap replicates of ppl and bpb of both runs in one domain (arrays of length `replicates`)."""
    sums = resampled_sums(columns, config.replicates, rng)
    nll_a, tok_a, nll_b, tok_b, n_bytes = sums.T
    return {
        "ppl_a": _ppl(nll_a, tok_a),
        "ppl_b": _ppl(nll_b, tok_b),
        "bpb_a": _bpb(nll_a, n_bytes),
        "bpb_b": _bpb(nll_b, n_bytes),
    }


def paired_difference_interval(
    columns: np.ndarray, config: BootstrapConfig, rng: np.random.Generator
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of ppl_B − ppl_A and bpb_B − bpb_A for one domain's paired documents."""
    reps = paired_replicates(columns, config, rng)
    return {
        "ppl": percentile_interval(reps["ppl_b"] - reps["ppl_a"], config.level),
        "bpb": percentile_interval(reps["bpb_b"] - reps["bpb_a"], config.level),
    }


def _domain_row(key: DomainKey, a: DomainSums, b: DomainSums) -> dict:
    ppl_a, ppl_b = perplexity(a.nll_sum, a.tokens), perplexity(b.nll_sum, b.tokens)
    bpb_a, bpb_b = bits_per_byte(a.nll_sum, a.bytes), bits_per_byte(b.nll_sum, b.bytes)
    diff = bpb_b - bpb_a
    return {
        "source": key[0],
        "domain": key[1],
        "documents": a.documents,
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
    }


def _add_interval(row: dict, reps: dict, level: float) -> None:
    row["ppl_ci"] = list(percentile_interval(reps["ppl_b"] - reps["ppl_a"], level))
    row["bpb_ci"] = list(percentile_interval(reps["bpb_b"] - reps["bpb_a"], level))
    lo, hi = row["bpb_ci"]
    row["significant"] = bool(lo > 0 or hi < 0)


def _win_counts(rows: list[dict]) -> dict:
    n = len(rows)
    counts = {
        "domains": n,
        "b_wins": sum(r["winner"] == "b" for r in rows),
        "a_wins": sum(r["winner"] == "a" for r in rows),
        "ties": sum(r["winner"] == "tie" for r in rows),
    }
    if rows and all(r["significant"] is not None for r in rows):
        counts["b_wins_significant"] = sum(r["winner"] == "b" and r["significant"] for r in rows)
        counts["a_wins_significant"] = sum(r["winner"] == "a" and r["significant"] for r in rows)
    for name in [k for k in counts if k.endswith(("wins", "significant"))]:
        counts[name.replace("wins", "win_share")] = counts[name] / n if n else math.nan
    return counts


def _macro(rows: list[dict], reps: dict[DomainKey, dict] | None, level: float) -> dict:
    """Macro averages (domains weighted equally) of ppl and bpb in A and B, with intervals of B − A."""
    out = {}
    for metric in ("ppl", "bpb"):
        a = float(np.mean([r[f"{metric}_a"] for r in rows]))
        b = float(np.mean([r[f"{metric}_b"] for r in rows]))
        out.update({f"macro_{metric}_a": a, f"macro_{metric}_b": b, f"macro_{metric}_diff": b - a})
        if reps is not None:
            keys = [(r["source"], r["domain"]) for r in rows]
            rep_a = np.mean([reps[k][f"{metric}_a"] for k in keys], axis=0)
            rep_b = np.mean([reps[k][f"{metric}_b"] for k in keys], axis=0)
            out[f"macro_{metric}_ci"] = list(percentile_interval(rep_b - rep_a, level))
    return out


def compare_runs(
    run_a: Run, run_b: Run, config: BootstrapConfig | None = None, force: bool = False, top: int = 10
) -> dict:
    """Compare run B against baseline A per domain, per source and overall (see module docstring)."""
    config = config or BootstrapConfig()
    protocol = check_protocols(run_a, run_b, force)
    sums_a, sums_b = run_a.domain_sums, run_b.domain_sums
    shared = [k for k in sums_a if k in sums_b and sums_a[k].tokens > 0 and sums_b[k].tokens > 0]
    if not shared:
        raise PalomaError("the runs share no scored domain")
    rows = [_domain_row(k, sums_a[k], sums_b[k]) for k in shared]
    bootstrap = run_a.has_records and run_b.has_records and config.replicates > 0
    reps = _all_replicates(run_a, run_b, shared, config) if bootstrap else None
    if reps is not None:
        for row, key in zip(rows, shared, strict=True):
            _add_interval(row, reps[key], config.level)
    sources = _source_summaries(rows, reps, config.level)
    ranked = sorted((r for r in rows if math.isfinite(r["ppl_rel"])), key=lambda r: r["ppl_rel"])
    return {
        "a": {"name": run_a.name, "path": str(run_a.path)},
        "b": {"name": run_b.name, "path": str(run_b.path)},
        "protocol": protocol,
        "bootstrap": {
            "replicates": config.replicates,
            "level": config.level,
            "seed": config.seed,
            "unit": "documents, paired by id within each domain",
        }
        if reps is not None
        else None,
        "summary": {**_win_counts(rows), **_macro(rows, reps, config.level)},
        "sources": sources,
        "most_improved": [_key(r) for r in ranked[:top] if r["ppl_rel"] < 0],
        "most_regressed": [_key(r) for r in ranked[::-1][:top] if r["ppl_rel"] > 0],
        "only_in_a": [f"{s}/{d}" for s, d in sums_a if (s, d) not in sums_b],
        "only_in_b": [f"{s}/{d}" for s, d in sums_b if (s, d) not in sums_a],
        "domains": rows,
    }


def _key(row: dict) -> dict:
    return {k: row[k] for k in ("source", "domain", "ppl_a", "ppl_b", "ppl_rel", "bpb_diff", "significant")}


def _all_replicates(run_a: Run, run_b: Run, keys: list[DomainKey], config: BootstrapConfig) -> dict[DomainKey, dict]:
    docs_a, docs_b = run_a.documents(), run_b.documents()
    rng = np.random.default_rng(config.seed)
    reps = {}
    for key in keys:
        if key not in docs_a or key not in docs_b:
            raise PalomaError(f"domain {key[0]}/{key[1]} is in results.json but not in the records of both runs")
        reps[key] = paired_replicates(paired_columns(key, docs_a[key], docs_b[key]), config, rng)
    return reps


def _source_summaries(rows: list[dict], reps: dict | None, level: float) -> list[dict]:
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source"], []).append(row)
    return [{"source": s, **_win_counts(rs), **_macro(rs, reps, level)} for s, rs in by_source.items()]


CSV_COLUMNS = [
    "source",
    "domain",
    "documents",
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
]


def csv_rows(comparison: dict) -> list[list]:
    """The per-domain table of a comparison, one row per domain, in CSV_COLUMNS order."""
    out = []
    for r in comparison["domains"]:
        ppl_ci, bpb_ci = r["ppl_ci"] or [None, None], r["bpb_ci"] or [None, None]
        flat = {**r, "ppl_ci_lo": ppl_ci[0], "ppl_ci_hi": ppl_ci[1], "bpb_ci_lo": bpb_ci[0], "bpb_ci_hi": bpb_ci[1]}
        out.append([flat[c] for c in CSV_COLUMNS])
    return out
