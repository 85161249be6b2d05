"""Vectorised bootstrap of additive per-document quantities.

Every Paloma metric is a ratio of sums over documents (Σnll / Σtokens, Σnll / Σbytes), so one bootstrap
replicate is fully described by how many times each document was drawn. Drawing those multiplicities as
one multinomial matrix and multiplying it with the per-document columns gives all replicates' sums in a
single matrix product, and the same matrix applied to two models' columns makes the resampling paired.
"""

from __future__ import annotations

import numpy as np

# Cap on the size of one multiplicity matrix (replicates × documents), to bound memory (8 bytes a cell).
MAX_CELLS = 8_000_000


def resampled_sums(columns: np.ndarray, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """Sums of each column over documents drawn with replacement: (n_docs, k) → (replicates, k).

    All columns share the same draws, which is what makes a comparison of two models paired.
    """
    columns = np.asarray(columns, dtype=np.float64)
    n_docs, k = columns.shape
    out = np.zeros((replicates, k))
    if n_docs == 0:
        return out
    step = max(1, MAX_CELLS // n_docs)
    uniform = np.full(n_docs, 1.0 / n_docs)
    for start in range(0, replicates, step):
        stop = min(replicates, start + step)
        counts = rng.multinomial(n_docs, uniform, size=stop - start)
        out[start:stop] = counts @ columns
    return out


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
