"""Bootstrap intervals of Paloma's metrics: the one implementation behind results, aggregate, compare, ranks.

Every Paloma metric is a ratio of sums over documents (Σnll / Σtokens, Σnll / Σbytes), so one bootstrap
replicate is fully described by how many times each document was drawn. Drawing those multiplicities as
one multinomial matrix and multiplying it with the per-document columns gives all replicates' sums in a
single matrix product, and the same matrix applied to two models' columns makes the resampling paired.
Multiplying it with the columns' pairwise products as well gives every replicate's second moments, hence
its own standard error, which is what a studentized interval needs.

**The policy** (one for `paloma eval --bootstrap`, `paloma aggregate --bootstrap`, `paloma compare`, and so
for submissions and the site): a domain's interval is studentized (bootstrap-t, widened to the Student-t
interval on the same standard error where that is wider, `Estimate.interval`), and a domain with fewer than
MIN_EFFECTIVE_DOCUMENTS effective documents (Kish: (Σ bytes)² / Σ bytes²) has none. Resampling whole
documents cannot measure the noise of so few: one document gives a zero-width interval, and the old
percentile intervals of a 10-document domain held the truth in 91% of draws at a stated 95%. A macro value
(a source's mean over domains, the suite's over sources) combines its parts' estimates when every part has
one; a source whose domains do not all have one resamples its domains when it has at least MIN_DOMAINS of
them, and otherwise has no interval either (`macro_estimate`).

This module sits below both the evaluator and the analyses (numpy and threadpoolctl at import; scipy only
when an interval is computed), so `paloma eval` imports it without the analyses and without a cycle.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

# Below this many effective documents a domain gets no interval (module docstring; coverage in docs/analysis.md).
MIN_EFFECTIVE_DOCUMENTS = 30
# A macro value over parts that lack intervals resamples the parts themselves only when there are this many.
MIN_DOMAINS = 30
LN2 = math.log(2.0)

# Cap on the size of one multiplicity matrix (replicates × documents), to bound memory (8 bytes a cell).
MAX_CELLS = 8_000_000
# The products are small (a few hundred replicates × documents × ≤ 25 columns): multi-threaded BLAS spends
# far longer synchronising than computing on a busy machine (20× slower measured with 2 cores under load).
SINGLE_THREAD = {"limits": 1, "user_api": "blas"}
T_CAP = 1e12  # a replicate whose standard error is 0 but whose value moved: an "infinite" t, kept finite


def multiplicity_blocks(n_items: int, replicates: int, rng: np.random.Generator) -> Iterator[tuple[slice, np.ndarray]]:
    """(replicate slice, multiplicities) blocks covering all replicates, each at most MAX_CELLS cells."""
    step = max(1, MAX_CELLS // max(n_items, 1))
    uniform = np.full(n_items, 1.0 / n_items)
    for start in range(0, replicates, step):
        stop = min(replicates, start + step)
        yield slice(start, stop), rng.multinomial(n_items, uniform, size=stop - start)


def resampled_sums(columns: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """Sums of each column over documents drawn with replacement: (n_docs, k) → (replicates, k).

    All columns share the same draws, which is what makes a comparison of two models paired.
    """
    columns = np.asarray(columns, dtype=np.float64)
    n_docs, k = columns.shape
    out = np.zeros((replicates, k))
    if n_docs == 0:
        return out
    with threadpool_limits(**SINGLE_THREAD):
        for rows, counts in multiplicity_blocks(n_docs, replicates, rng):
            out[rows] = counts.astype(np.float64) @ columns
    return out


def resampled_moments(columns: np.ndarray, replicates: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Per replicate, the sums Σ c·x (replicates, k) and the second moments Σ c·x xᵀ (replicates, k, k)."""
    columns = np.asarray(columns, dtype=np.float64)
    n_docs, k = columns.shape
    products = (columns[:, :, None] * columns[:, None, :]).reshape(n_docs, k * k)
    sums, moments = np.zeros((replicates, k)), np.zeros((replicates, k * k))
    with threadpool_limits(**SINGLE_THREAD):
        for rows, counts in multiplicity_blocks(n_docs, replicates, rng):
            counts = counts.astype(np.float64)
            sums[rows], moments[rows] = counts @ columns, counts @ products
    return sums, moments.reshape(replicates, k, k)


def resampled_weights(n_items: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of n items is drawn in each replicate: (replicates, n_items) integer multiplicities."""
    if n_items == 0:
        return np.zeros((replicates, 0), dtype=np.int64)
    return rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=replicates)


@dataclass(frozen=True)
class Estimate:
    """A statistic, its standard error with its degrees of freedom, and the same in every bootstrap replicate."""

    value: float
    se: float
    dof: float
    reps: np.ndarray
    reps_se: np.ndarray

    def interval(self, level: float) -> tuple[float, float]:
        """The union of the bootstrap-t interval and the Student-t interval on the same standard error.

        Bootstrap-t: [θ̂ − t*₁₋ₐ·se, θ̂ − t*ₐ·se] with t* = (θ* − θ̂)/se* over the replicates; it follows skew
        but its tail quantiles are noisy. Student-t: θ̂ ± t_dof·se. Each under-covers where the other does
        not (measured on synthetic domains, docs/analysis.md), so the interval reported is the wider span.
        A statistic with no spread (se = 0) has a point interval.
        """
        from scipy.stats import t as student_t  # scipy costs `paloma eval` a second at start; only needed here

        if self.se == 0.0 or not np.isfinite(self.se):
            return (self.value, self.value) if self.se == 0.0 else (float("nan"), float("nan"))
        moved = self.reps - self.value
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(self.reps_se > 0, moved / self.reps_se, np.sign(moved) * T_CAP)
        t = np.clip(t[np.isfinite(t)], -T_CAP, T_CAP)
        half = float(student_t.ppf(0.5 + level / 2, max(self.dof, 1.0))) * self.se
        if t.size == 0:
            return (self.value - half, self.value + half)
        tail = (1.0 - level) / 2.0 * 100.0
        t_lo, t_hi = np.percentile(t, [tail, 100.0 - tail])
        return (
            float(min(self.value - t_hi * self.se, self.value - half)),
            float(max(self.value - t_lo * self.se, self.value + half)),
        )


def mean_of(estimates: list[Estimate]) -> Estimate:
    """The mean of independent estimates (domains of a source, sources of a suite): replicate i of each
    together is a replicate of the mean, variances add, and the degrees of freedom are Welch-Satterthwaite's."""
    m = len(estimates)
    variances = np.array([e.se**2 for e in estimates])
    dofs = np.array([max(e.dof, 1.0) for e in estimates])
    total = float(variances.sum())
    return Estimate(
        value=float(np.mean([e.value for e in estimates])),
        se=np.sqrt(total) / m,
        dof=total**2 / float((variances**2 / dofs).sum()) if total > 0 else float(dofs.sum()),
        reps=np.mean([e.reps for e in estimates], axis=0),
        reps_se=np.sqrt(np.sum([e.reps_se**2 for e in estimates], axis=0)) / m,
    )


def mean_over_items(values: np.ndarray, replicates: int, rng: np.random.Generator) -> Estimate:
    """The mean of `values`, resampling the items themselves (e.g. the domains of a source)."""
    values = np.asarray(values, dtype=np.float64)
    m = len(values)
    weights = resampled_weights(m, replicates, rng).astype(np.float64)
    reps = weights @ values / m
    reps_var = np.maximum(weights @ (values**2) / m - reps**2, 0.0) * m / (m - 1)
    se = float(values.std(ddof=1)) / np.sqrt(m)
    return Estimate(float(values.mean()), se, m - 1.0, reps, np.sqrt(reps_var / m))


def effective_documents(n_bytes: np.ndarray) -> float:
    """Kish's effective sample size of a ratio estimator weighted by document bytes: (Σb)² / Σb²."""
    n_bytes = np.asarray(n_bytes, dtype=np.float64)
    squares = float(n_bytes @ n_bytes)
    return float(n_bytes.sum()) ** 2 / squares if squares > 0 else 0.0


def delta_sd(gradient: np.ndarray, moments: np.ndarray) -> np.ndarray:
    """√(wᵀ M w) per row: the delta-method standard error of a function of sums whose influence weights are
    `gradient` (r, k), from the second moments Σ c·x xᵀ (r, k, k) of the documents drawn in each row."""
    return np.sqrt(np.maximum(np.einsum("ri,rij,rj->r", gradient, moments, gradient), 0.0))


def run_metrics_with_errors(sums: np.ndarray, moments: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """ppl and bpb of one run with their delta-method standard errors, per row of sums over [nll, tokens, bytes]."""
    nll, tokens, n_bytes = sums.T
    zeros = np.zeros_like(nll)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rate = nll / tokens
        ppl = np.exp(rate)
        bpb = nll / (n_bytes * LN2)
        w_ppl = np.stack([ppl / tokens, -ppl * rate / tokens, zeros], 1)
        w_bpb = np.stack([1 / n_bytes, zeros, -nll / n_bytes**2], 1) / LN2
        return {"ppl": (ppl, delta_sd(w_ppl, moments)), "bpb": (bpb, delta_sd(w_bpb, moments))}


def domain_rng(seed: int, source: str, domain: str) -> np.random.Generator:
    """A generator per domain, so a domain's resamples do not depend on which other domains are present."""
    digest = hashlib.sha256(f"{source}/{domain}".encode()).digest()
    return np.random.default_rng([seed, int.from_bytes(digest[:8], "little")])


def run_domain_estimates(columns: np.ndarray, replicates: int, rng: np.random.Generator) -> dict[str, Estimate] | None:
    """{"ppl", "bpb"} estimates of one run's domain from its documents' [nll, tokens, bytes] columns; None
    below MIN_EFFECTIVE_DOCUMENTS effective documents (the Student-t side has effective − 1 degrees of freedom)."""
    columns = np.asarray(columns, dtype=np.float64)
    effective = effective_documents(columns[:, 2])
    if effective < MIN_EFFECTIVE_DOCUMENTS:
        return None
    full = run_metrics_with_errors(columns.sum(axis=0)[None], np.einsum("ni,nj->ij", columns, columns)[None])
    reps = run_metrics_with_errors(*resampled_moments(columns, replicates, rng))
    return {
        m: Estimate(float(full[m][0][0]), float(full[m][1][0]), effective - 1.0, reps[m][0], reps[m][1])
        for m in ("ppl", "bpb")
    }


def macro_estimate(
    values: np.ndarray, estimates: list[Estimate | None], replicates: int, rng: np.random.Generator
) -> tuple[Estimate | None, str | None]:
    """The estimate of the mean of `values` (one per part: domains of a source) and its scheme (module
    docstring): the parts' estimates combined when all have one, else the parts resampled when there are at
    least MIN_DOMAINS, else (None, None)."""
    if all(e is not None for e in estimates):
        return mean_of(estimates), "documents within domains"
    if len(values) >= MIN_DOMAINS:
        return mean_over_items(np.asarray(values, dtype=np.float64), replicates, rng), "domains within the source"
    return None, None


def run_intervals(
    columns: dict[tuple[str, str], np.ndarray], replicates: int, seed: int = 0, level: float = 0.95
) -> dict[str, dict]:
    """Intervals of one run's domains, sources (macro) and suite (macro over sources), under the policy above.

    `columns` maps (source, domain) to its documents' [nll, tokens, bytes]; domains with no tokens are left
    out of the macro values, as the aggregates leave them out. Returns {"domains": {key: ci | None},
    "sources": {source: ci | None}, "suite": ci | None}, each ci {ppl, bpb} (domains) or {macro_ppl,
    macro_bpb} (sources, suite) as [low, high], with the level, replicates, seed and scheme.
    """
    meta = {"level": level, "n": replicates, "seed": seed, "method": "studentized bootstrap over documents"}
    out: dict = {"domains": {}, "sources": {}, "suite": None}
    parts: dict[str, list[tuple[dict[str, float], dict[str, Estimate] | None]]] = {}
    for (source, domain), cols in sorted(columns.items()):
        estimates = run_domain_estimates(cols, replicates, domain_rng(seed, source, domain))
        out["domains"][(source, domain)] = (
            None
            if estimates is None
            else {m: list(e.interval(level)) for m, e in estimates.items()}
            | meta
            | {"effective_documents": effective_documents(cols[:, 2])}
        )
        nll, tokens, n_bytes = cols.sum(axis=0)
        if tokens > 0:
            values = {"ppl": math.exp(nll / tokens), "bpb": nll / (n_bytes * LN2)}
            parts.setdefault(source, []).append((values, estimates))
    sources = {}
    for source, domains in parts.items():
        rng = domain_rng(seed, source, "")
        found = {
            m: macro_estimate(np.array([v[m] for v, _ in domains]), [e and e[m] for _, e in domains], replicates, rng)
            for m in ("ppl", "bpb")
        }
        sources[source], scheme = {m: e for m, (e, _) in found.items()}, found["ppl"][1]
        out["sources"][source] = None if scheme is None else _macro_ci(sources[source], level, meta, scheme)
    if sources and all(e["ppl"] is not None for e in sources.values()):
        suite = {m: mean_of([e[m] for e in sources.values()]) for m in ("ppl", "bpb")}
        out["suite"] = _macro_ci(suite, level, meta, "sources combined")
    return out


def _macro_ci(estimates: dict[str, Estimate], level: float, meta: dict, scheme: str) -> dict:
    return {f"macro_{m}": list(e.interval(level)) for m, e in estimates.items()} | meta | {"scheme": scheme}
