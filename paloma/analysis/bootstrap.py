"""Vectorised bootstrap of additive per-document quantities, and studentized (bootstrap-t) intervals.

Every Paloma metric is a ratio of sums over documents (Σnll / Σtokens, Σnll / Σbytes), so one bootstrap
replicate is fully described by how many times each document was drawn. Drawing those multiplicities as
one multinomial matrix and multiplying it with the per-document columns gives all replicates' sums in a
single matrix product, and the same matrix applied to two models' columns makes the resampling paired.
Multiplying it with the columns' pairwise products as well gives every replicate's second moments, hence
its own standard error, which is what a studentized interval needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from scipy.stats import t as student_t
from threadpoolctl import threadpool_limits

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


def percentile_interval(replicates: np.ndarray, level: float) -> tuple[float, float]:
    """Equal-tailed percentile interval of bootstrap replicates (NaN replicates are ignored)."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return (float("nan"), float("nan"))
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(finite, [tail, 100.0 - tail])
    return (float(lo), float(hi))


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
