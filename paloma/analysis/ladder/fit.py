"""Scaling ladders: fit L(N, D) = E + A/N^α + B/D^β to small models and predict a larger one (paloma.md §7).

N is the parameter count and D the number of training tokens (`paloma.analysis.ladder.data` reads both from
eval runs). L is a per-target loss: nats per token (= ln perplexity) by default, or bits per byte.

The fit follows Hoffmann et al. (Chinchilla) and the OLMo ladder: with E = e^e, A = e^a, B = e^b, the model
predicts log L = logsumexp(e, a − α ln N, b − β ln D); the objective is least squares of the log residuals
(`l2`, the default) or, as OLMo-ladder, their Huber loss (δ = 1e-3, `huber`), minimised by L-BFGS-B with an
analytic gradient. On simulated noisy ladders of the paper's design least squares predicts 7B-4T and 13B-5T
with the smaller median error (benchmarks/ladder_coverage.py; figures in docs/analysis.md).

Where L-BFGS-B starts decides which optimum it finds. A term whose log is far below the others has almost
no gradient, so a start with a dead B/D^β term stays dead (a Chinchilla law fitted on the paper's own ladder
converged to B = 1, β = 1.5 with 8.6% in-sample error that way). The starts are therefore:

- the local minima of a profile over the exponents: for each (α, β) of a grid, the law is linear in
  (E, A, B), so the best non-negative (E, A, B) is a small weighted least-squares problem, solved for every
  grid point at once; each local minimum of that profile is a different basin, with every term alive;
- OLMo-ladder's own start (A = e³, B = e⁶, α = 0.1, β = 0.2, E = 1; `olmo/scaling`),

and the fit with the lowest final objective wins. Parameters that end on a bound are named in the fit's
`warnings`: the data do not determine them. Designs with fewer distinct N or D than the law needs are refused.

Uncertainty: the delta method, as OLMo-ladder, with the covariance of the objective used: for least squares
σ̂² (JᵀJ)⁻¹ (σ̂² the residual variance with n − p degrees of freedom), for Huber the sandwich H⁻¹ M H⁻¹ of an
M-estimator (`huber_sandwich`). An exponent on a bound is held fixed; a scale (E, A, B) on its lower bound
is kept, differentiated in linear units (`covariance_jacobian`). A prediction's interval is a *prediction*
interval (it includes the scatter of a new run about the law, σ̂², as a held-out run has), t-distributed,
exponentiated from log space.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
from scipy.optimize import minimize
from scipy.stats import norm as normal
from scipy.stats import t as student_t
from threadpoolctl import threadpool_limits

from paloma.analysis.ladder.data import LadderPoint, ladder_points
from paloma.analysis.ladder.downstream import DownstreamSpec, fit_downstream, match_results
from paloma.analysis.ladder.report import holdout_summary
from paloma.analysis.runs import Run
from paloma.errors import PalomaError
from paloma.registry import Registry

HUBER_DELTA = 1e-3
# "l2": least squares on log residuals; "huber": OLMo-ladder's Huber loss (δ = HUBER_DELTA). On simulated
# noisy ladders of the paper's design, l2 predicts 7B-4T and 13B-5T with smaller median error
# (benchmarks/ladder_coverage.py, docs/analysis.md), hence the default.
OBJECTIVES = ("l2", "huber")
DEFAULT_OBJECTIVE = "l2"
PARAM_NAMES = ("E", "A", "alpha", "B", "beta")
# (e, a, alpha, b, beta) bounds: exponents positive, scales wide enough for any loss in nats or bits.
BOUNDS = [(-10.0, 5.0), (-10.0, 60.0), (1e-3, 3.0), (-10.0, 60.0), (1e-3, 3.0)]
_LOWER = np.array([lo for lo, _ in BOUNDS])
_UPPER = np.array([hi for _, hi in BOUNDS])
# OLMo-ladder's start for loss targets (olmo/scaling step1: p0 = [a=3, b=6, α=0.1, β=0.2, E=1]), in our order.
OLMO_START = np.array([0.0, 3.0, 0.1, 6.0, 0.2])
PROFILE_EXPONENTS = np.linspace(0.02, 1.5, 30)  # α and β of the profile grid (30 × 30 points)
PROFILE_STARTS = 3  # at most this many profile minima (best first) start L-BFGS-B, besides OLMo's start
MIN_DISTINCT = {"points": 5, "N": 3, "D": 3}
AT_BOUND_TOLERANCE = 1e-6  # of the bound interval's width
DEFAULT_LEVEL = 0.95


@dataclass(frozen=True)
class ScalingLaw:
    """L(N, D) = E + A/N^α + B/D^β."""

    E: float
    A: float
    alpha: float
    B: float
    beta: float

    def __call__(self, n: np.ndarray | float, d: np.ndarray | float) -> np.ndarray | float:
        return self.E + self.A / np.power(n, self.alpha) + self.B / np.power(d, self.beta)

    @classmethod
    def from_theta(cls, theta: np.ndarray) -> ScalingLaw:
        e, a, alpha, b, beta = (float(x) for x in theta)
        return cls(E=math.exp(e), A=math.exp(a), alpha=alpha, B=math.exp(b), beta=beta)

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in PARAM_NAMES}


def objective(
    theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, kind: str = DEFAULT_OBJECTIVE
) -> tuple[float, np.ndarray]:
    """Mean loss (`kind`: "l2", half squared log residuals, or "huber") and its gradient in (e, a, α, b, β).

    Written out term by term because L-BFGS-B calls it hundreds of times per fit.
    """
    e, a, alpha, b, beta = theta
    t1 = a - alpha * log_n
    t2 = b - beta * log_d
    peak = np.maximum(np.maximum(t1, t2), e)
    w0, w1, w2 = np.exp(e - peak), np.exp(t1 - peak), np.exp(t2 - peak)
    total = w0 + w1 + w2
    residual = peak + np.log(total) - log_l
    slope = psi(residual, kind) / (len(log_l) * total)  # dloss/dr · d log L / d term
    g1, g2 = slope @ w1, slope @ w2
    grad = np.array([slope @ w0, g1, -(slope * log_n) @ w1, g2, -(slope * log_d) @ w2])
    if kind == "l2":
        return float(0.5 * (residual @ residual) / len(residual)), grad
    abs_r = np.abs(residual)
    huber = np.where(abs_r <= HUBER_DELTA, 0.5 * residual * residual, HUBER_DELTA * (abs_r - 0.5 * HUBER_DELTA))
    return float(huber.mean()), grad


def psi(residual: np.ndarray, kind: str) -> np.ndarray:
    """The derivative of the per-point loss with respect to its residual (ψ of an M-estimator)."""
    return residual if kind == "l2" else np.clip(residual, -HUBER_DELTA, HUBER_DELTA)


def log_jacobian(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """d log L / d(e, a, α, b, β) at each point: (points, 5). Each term's weight is its share of L."""
    e, a, alpha, b, beta = theta
    terms = np.stack(np.broadcast_arrays(np.full_like(log_n, e), a - alpha * log_n, b - beta * log_d))
    share = np.exp(terms - terms.max(axis=0))
    share /= share.sum(axis=0)
    return np.stack([share[0], share[1], -share[1] * log_n, share[2], -share[2] * log_d], axis=1)


# ---- starts ------------------------------------------------------------------------------------------------

_SUBSETS = [list(s) for r in (3, 2, 1) for s in itertools.combinations(range(3), r)]


def profile_starts(n: np.ndarray, d: np.ndarray, loss: np.ndarray, count: int = PROFILE_STARTS) -> list[np.ndarray]:
    """Starts at the best local minima of the exponent profile (see the module docstring), best first.

    For each (α, β) the scales (E, A, B) minimise Σ((E + A N^-α + B D^-β − L)/L)² (relative residuals, which
    approximate log residuals) under E, A, B ≥ 0: every subset of the three terms is solved by its normal
    equations at all grid points at once, and the best feasible subset is kept. A term left out starts at
    its lower bound.
    """
    alpha, beta = (g.ravel() for g in np.meshgrid(PROFILE_EXPONENTS, PROFILE_EXPONENTS, indexing="ij"))
    basis = (
        np.stack(
            np.broadcast_arrays(1.0, np.exp(-alpha[:, None] * np.log(n)), np.exp(-beta[:, None] * np.log(d))), axis=-1
        )
        / loss[:, None]
    )  # (grid, points, 3): rows divided by L, so the target is a vector of ones
    best = np.full(len(alpha), np.inf)
    scales = np.zeros((len(alpha), 3))
    for subset in _SUBSETS:
        design = basis[:, :, subset]
        gram = np.einsum("gpi,gpj->gij", design, design)
        rhs = design.sum(axis=1)
        with np.errstate(all="ignore"):
            coef = _batched_solve(gram, rhs)
            value = ((np.einsum("gpi,gi->gp", design, coef) - 1.0) ** 2).sum(axis=1)
        better = np.all(coef > 0, axis=1) & np.isfinite(value) & (value < best)
        best = np.where(better, value, best)
        scales[better] = 0.0
        scales[np.ix_(better, subset)] = coef[better]
    grid = best.reshape(len(PROFILE_EXPONENTS), -1)
    padded = np.pad(grid, 1, constant_values=np.inf)
    neighbours = np.min(
        [padded[1 + i : 1 + i + grid.shape[0], 1 + j : 1 + j + grid.shape[1]] for i, j in _NEIGHBOURS], axis=0
    )
    minima = np.flatnonzero((grid <= neighbours).ravel() & np.isfinite(best))
    chosen = minima[np.argsort(best[minima], kind="stable")][:count]
    with np.errstate(divide="ignore"):
        logs = np.log(scales[chosen])  # a left-out term (scale 0) starts at its lower bound
    starts = np.column_stack([logs[:, 0], logs[:, 1], alpha[chosen], logs[:, 2], beta[chosen]])
    return list(np.clip(starts, _LOWER, _UPPER))


_NEIGHBOURS = [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1) if (i, j) != (0, 0)]


def _batched_solve(gram: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve gram[g] x = rhs[g] for every grid point; singular systems give NaN (and are never chosen)."""
    singular = np.abs(np.linalg.det(gram)) < 1e-300
    gram = np.where(singular[:, None, None], np.eye(gram.shape[1]), gram)
    coef = np.linalg.solve(gram, rhs[..., None])[..., 0]
    coef[singular] = np.nan
    return coef


# ---- fitting -----------------------------------------------------------------------------------------------


def check_design(n: Sequence[float], d: Sequence[float]) -> None:
    """Refuse ladders that cannot determine the five parameters.

    The law is additive in N and D: the N part (A, α) is seen only through differences between distinct N,
    so it needs three of them, and so does the D part; with E, five distinct (N, D) points in all. A grid of
    3 sizes × 2 token budgets, or the same run five times, leaves a family of laws that fit equally well.
    """
    pairs = {(float(f"{x:.9g}"), float(f"{y:.9g}")) for x, y in zip(n, d, strict=True)}
    counts = {"points": len(pairs), "N": len({p[0] for p in pairs}), "D": len({p[1] for p in pairs})}
    for what, needed in MIN_DISTINCT.items():
        if counts[what] < needed:
            label = {"points": "distinct (N, D) runs", "N": "distinct model sizes N", "D": "distinct token counts D"}
            raise PalomaError(
                f"the ladder has {counts[what]} {label[what]}; fitting E + A/N^α + B/D^β needs at least {needed} "
                f"({counts['points']} distinct runs, {counts['N']} sizes, {counts['D']} token counts): add runs "
                "that vary it"
            )


def fit_law(
    n: Sequence[float],
    d: Sequence[float],
    loss: Sequence[float],
    warm_start: np.ndarray | None = None,
    kind: str = DEFAULT_OBJECTIVE,
) -> tuple[ScalingLaw, float]:
    """Fit the law to points (N_i, D_i, L_i) under objective `kind`; returns the law and its objective value.

    Without `warm_start`, L-BFGS-B runs from the profile minima and OLMo-ladder's start (module docstring);
    with it (a nearby solution, as in leave-one-out refits), from that point only.
    """
    theta, value = fit_theta(n, d, loss, warm_start, kind)
    return ScalingLaw.from_theta(theta), value


def fit_theta(
    n: Sequence[float],
    d: Sequence[float],
    loss: Sequence[float],
    warm_start: np.ndarray | None = None,
    kind: str = DEFAULT_OBJECTIVE,
) -> tuple[np.ndarray, float]:
    """`fit_law` in log-space parameters θ = (e, a, α, b, β)."""
    if kind not in OBJECTIVES:
        raise PalomaError(f"unknown objective {kind!r} (choose from {', '.join(OBJECTIVES)})")
    n, d, loss = (np.asarray(x, dtype=np.float64) for x in (n, d, loss))
    if len(loss) < MIN_DISTINCT["points"]:
        raise PalomaError(f"a scaling-law fit needs at least {MIN_DISTINCT['points']} points, got {len(loss)}")
    log_n, log_d, log_l = np.log(n), np.log(d), np.log(loss)
    # L-BFGS-B calls BLAS on 5×5 matrices; a multi-threaded BLAS spends 30-100× longer synchronising its
    # threads than computing (measured on a busy 2-core machine), so the fit runs single-threaded.
    with threadpool_limits(1, user_api="blas"):
        if warm_start is not None:
            best = _minimize(warm_start, log_n, log_d, log_l, kind)
        else:  # every start to a loose tolerance, then the best one to the final tolerance (half the time)
            starts = [*profile_starts(n, d, loss), OLMO_START]
            found = (_minimize(s, log_n, log_d, log_l, kind, *ROUGH) for s in starts)
            rough = min(found, key=lambda result: result.fun)
            best = _minimize(rough.x, log_n, log_d, log_l, kind)
    return best.x, float(best.fun)


ROUGH = (1e-10, 1e-9)  # ftol, gtol of the multi-start phase
FINAL = (1e-16, 1e-13)


def _minimize(
    start: np.ndarray,
    log_n: np.ndarray,
    log_d: np.ndarray,
    log_l: np.ndarray,
    kind: str,
    ftol: float = FINAL[0],
    gtol: float = FINAL[1],
):
    return minimize(
        objective,
        np.clip(start, _LOWER, _UPPER),
        args=(log_n, log_d, log_l, kind),
        jac=True,
        method="L-BFGS-B",
        bounds=BOUNDS,
        options={"maxiter": 2000, "ftol": ftol, "gtol": gtol},
    )


def at_bounds(theta: np.ndarray) -> dict[str, str]:
    """Parameters that ended on a bound: {name: "lower" | "upper"}."""
    width = _UPPER - _LOWER
    out = {}
    for i, name in enumerate(PARAM_NAMES):
        if theta[i] - _LOWER[i] <= AT_BOUND_TOLERANCE * width[i]:
            out[name] = "lower"
        elif _UPPER[i] - theta[i] <= AT_BOUND_TOLERANCE * width[i]:
            out[name] = "upper"
    return out


NEGLIGIBLE_SHARE = 1e-6  # a term below this share of L at every point cannot be fitted


def bound_warnings(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> list[str]:
    """One line per parameter on a bound, with its value and the bound (in the law's units, not logs), and
    one per term too small at every run for its parameters to matter (it has no gradient either)."""
    law = ScalingLaw.from_theta(theta).to_dict()
    shares = log_jacobian(theta, log_n, log_d)[:, [0, 1, 3]].max(axis=0)  # each term's largest share of L
    warnings = [
        f"the {term} term is below {NEGLIGIBLE_SHARE:g} of L at every run: the runs do not determine {params}"
        for term, params, share in zip(("E", "A/N^α", "B/D^β"), ("E", "A, α", "B, β"), shares, strict=True)
        if share < NEGLIGIBLE_SHARE
    ]
    for name, side in at_bounds(theta).items():
        i = PARAM_NAMES.index(name)
        raw = _LOWER[i] if side == "lower" else _UPPER[i]
        limit = raw if name in ("alpha", "beta") else math.exp(raw)
        warnings.append(f"{name} = {law[name]:.3g} is at its {side} bound {limit:.3g}: the runs do not determine it")
    return warnings


@dataclass(frozen=True)
class Uncertainty:
    """The delta method's ingredients: parameter covariance (log-space θ), residual variance, dof."""

    covariance: np.ndarray | None  # (5, 5); rows and columns of parameters on a bound are zero
    residual_var: float
    dof: int
    reason: str | None = None  # why there is no covariance

    def interval(self, theta: np.ndarray, n: float, d: float, level: float) -> dict:
        """Prediction interval of the loss of a run (N, D): {"interval": [lo, hi], "sd_log", "level"}."""
        if self.covariance is None:
            return {"interval": None, "sd_log": None, "level": level, "note": self.reason}
        g = covariance_jacobian(theta, np.log(np.array([n], dtype=float)), np.log(np.array([d], dtype=float)))[0]
        sd = math.sqrt(max(float(g @ self.covariance @ g), 0.0) + self.residual_var)
        half = float(student_t.ppf(0.5 + level / 2, self.dof)) * sd
        centre = float(ScalingLaw.from_theta(theta)(n, d))
        return {"interval": [centre * math.exp(-half), centre * math.exp(half)], "sd_log": sd, "level": level}


SCALES = ("E", "A", "B")


def _scales_at_floor(theta: np.ndarray) -> list[str]:
    return [name for name, side in at_bounds(theta).items() if name in SCALES and side == "lower"]


def covariance_jacobian(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """`log_jacobian`, except that a scale (E, A, B) on its lower bound is differentiated in linear units.

    A scale on its lower bound (E ≈ 0: no irreducible loss) has a log-space column of ≈ 0, so holding it
    fixed would claim the law certainly has no floor; in linear units its column is term / (scale · L) = 1/L
    for E, as large as any, and the covariance keeps its uncertainty (upwards, where the truth lies). Held
    fixed, such fits' 95% intervals held the 7B-4T run in 85% of simulated ladders at 2% noise.
    """
    jac = log_jacobian(theta, log_n, log_d)
    for name in _scales_at_floor(theta):
        i = PARAM_NAMES.index(name)
        jac[:, i] /= math.exp(theta[i])
    return jac


def uncertainty(
    theta: np.ndarray, n: np.ndarray, d: np.ndarray, observed: np.ndarray, kind: str = DEFAULT_OBJECTIVE
) -> Uncertainty:
    """The covariance of θ over the parameters not on a bound, for the objective `kind` (module docstring):
    σ̂² (JᵀJ)⁻¹ for least squares, the sandwich H⁻¹ M H⁻¹ for Huber."""
    bounds = at_bounds(theta)
    free = np.array([name not in bounds or name in _scales_at_floor(theta) for name in PARAM_NAMES])
    residual = np.log(ScalingLaw.from_theta(theta)(n, d)) - np.log(observed)
    dof = len(observed) - int(free.sum())
    if dof < 1:
        return Uncertainty(None, math.nan, dof, f"{len(observed)} points leave no degrees of freedom")
    jac = covariance_jacobian(theta, np.log(n), np.log(d))[:, free]
    singular = np.linalg.svd(jac, compute_uv=False)
    if singular[-1] <= 1e-9 * singular[0]:
        return Uncertainty(None, math.nan, dof, "the parameters are not identifiable from these runs")
    residual_var = float(residual @ residual) / dof
    covariance = np.zeros((5, 5))
    if kind == "l2":
        covariance[np.ix_(free, free)] = residual_var * np.linalg.inv(jac.T @ jac)
    else:
        covariance[np.ix_(free, free)] = huber_sandwich(jac, residual, residual_var, dof)
    return Uncertainty(covariance, residual_var, dof)


def huber_sandwich(jac: np.ndarray, residual: np.ndarray, residual_var: float, dof: int) -> np.ndarray:
    """H⁻¹ M H⁻¹, the covariance of an M-estimator: M = Σ ψ(rᵢ)² gᵢgᵢᵀ (scaled by n / dof), H = Σ ψ′(rᵢ) gᵢgᵢᵀ.

    Huber's ψ′ is the indicator of |r| ≤ δ; with δ = 10⁻³ far below the runs' scatter only the few runs the
    fit passes through have ψ′ = 1, and H would be a count of them. Its expectation, the probability that a
    residual lies within ±δ, is estimated instead by smoothing each residual with a normal kernel of
    Silverman's bandwidth (as Powell's estimator does for median regression).
    """
    n = len(residual)
    bandwidth = max(1.06 * math.sqrt(residual_var) * n ** (-0.2), HUBER_DELTA)
    inside = normal.cdf((HUBER_DELTA - residual) / bandwidth) - normal.cdf((-HUBER_DELTA - residual) / bandwidth)
    hessian = jac.T @ (inside[:, None] * jac)
    meat = jac.T @ (psi(residual, "huber")[:, None] ** 2 * jac) * n / dof
    bread = np.linalg.inv(hessian)
    return bread @ meat @ bread


def fit_target(
    points: Sequence[LadderPoint],
    target: str,
    loo: bool = True,
    level: float = DEFAULT_LEVEL,
    check: bool = True,
    kind: str = DEFAULT_OBJECTIVE,
) -> dict:
    """Fit one target (a domain, source or the suite): law, warnings, in-sample quality, leave-one-out errors."""
    return _fit_target(points, target, loo, level, check, kind)[0]


def _fit_target(
    points: Sequence[LadderPoint], target: str, loo: bool, level: float, check: bool, kind: str
) -> tuple[dict, np.ndarray, Uncertainty]:
    n = np.array([p.n for p in points])
    d = np.array([p.d for p in points])
    observed = np.array([p.losses[target] for p in points])
    if check:
        check_design(n, d)
    theta, value = fit_theta(n, d, observed, kind=kind)
    law = ScalingLaw.from_theta(theta)
    fitted = law(n, d)
    spread = uncertainty(theta, n, d, observed, kind)
    result = {
        "target": target,
        "points": len(points),
        "law": law.to_dict(),
        "objective": kind,
        "objective_value": value,
        "warnings": bound_warnings(theta, np.log(n), np.log(d)),
        "at_bounds": at_bounds(theta),
        "rmse_log": float(np.sqrt(np.mean((np.log(fitted) - np.log(observed)) ** 2))),
        "max_rel_error": float(np.max(np.abs(fitted / observed - 1.0))),
        "residual_sd_log": math.sqrt(spread.residual_var) if spread.covariance is not None else None,
        "dof": spread.dof,
        "covariance_theta": spread.covariance.tolist() if spread.covariance is not None else None,
        "interval_level": level,
        "observed": [float(x) for x in observed],
        "fitted": [float(x) for x in fitted],
    }
    if loo:
        result["loo"] = leave_one_out(n, d, observed, [p.name for p in points], theta, kind)
        errors = [abs(p["rel_error"]) for p in result["loo"]]
        result["loo_mean_abs_rel_error"] = float(np.mean(errors)) if errors else math.nan
        result["loo_max_abs_rel_error"] = float(np.max(errors)) if errors else math.nan
    return result, theta, spread


def leave_one_out(
    n: np.ndarray,
    d: np.ndarray,
    observed: np.ndarray,
    names: Sequence[str],
    theta: np.ndarray,
    kind: str = DEFAULT_OBJECTIVE,
) -> list[dict]:
    """For each point: refit on all *other* points and predict the held-out one.

    Only possible with more than five points. Each refit starts from the full fit's solution (the held-out
    point moves the optimum only a little), which makes leave-one-out affordable for 585 domains.
    """
    if len(observed) <= MIN_DISTINCT["points"]:
        return []
    out = []
    for i in range(len(observed)):
        keep = np.arange(len(observed)) != i
        law, _ = fit_law(n[keep], d[keep], observed[keep], warm_start=theta, kind=kind)
        out.append(error_row(names[i], n[i], d[i], float(observed[i]), float(law(n[i], d[i]))))
    return out


def error_row(name: str, n: float, d: float, actual: float, predicted: float) -> dict:
    """One prediction against what the run scored: signed absolute and relative errors, as the paper reports."""
    return {
        "name": name,
        "n": float(n),
        "d": float(d),
        "observed": actual,
        "predicted": predicted,
        "abs_error": predicted - actual,
        "rel_error": predicted / actual - 1.0,
    }


def fit_ladder(
    points: Sequence[LadderPoint],
    loo: bool = True,
    predict: tuple[float, float] | None = None,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
    holdout: Sequence[LadderPoint] = (),
    level: float = DEFAULT_LEVEL,
    kind: str = DEFAULT_OBJECTIVE,
) -> dict:
    """Fit every target that all points share; predict a model (N, D) and the held-out runs, with intervals.

    Targets are independent, so `jobs` > 1 fits them in that many processes.
    """
    if len(points) < MIN_DISTINCT["points"]:
        raise PalomaError(f"a ladder fit needs at least {MIN_DISTINCT['points']} runs, got {len(points)}")
    check_design([p.n for p in points], [p.d for p in points])
    shared = set.intersection(*(set(p.losses) for p in points))
    targets = sorted(shared, key=_target_order)
    task = partial(_fit_one, points, loo=loo, predict=predict, holdout=tuple(holdout), level=level, kind=kind)
    fits = []
    with ProcessPoolExecutor(jobs) if jobs > 1 else contextlib.nullcontext() as pool:
        for fit in pool.map(task, targets, chunksize=8) if pool else map(task, targets):
            fits.append(fit)
            if progress:
                progress(1)
    result = {
        "points": [p.describe() for p in points],
        "holdout_points": [p.describe() for p in holdout],
        "objective": kind,
        "huber_delta": HUBER_DELTA if kind == "huber" else None,
        "interval_level": level,
        "predict": {"n": predict[0], "d": predict[1]} if predict else None,
        "skipped_targets": sorted(set.union(*(set(p.losses) for p in points)) - shared, key=_target_order),
        "fits": fits,
    }
    if holdout:
        result["holdout_summary"] = holdout_summary(result)
    return result


def _fit_one(
    points: Sequence[LadderPoint],
    target: str,
    loo: bool,
    predict: tuple[float, float] | None,
    holdout: tuple[LadderPoint, ...],
    level: float,
    kind: str,
) -> dict:
    fit, theta, spread = _fit_target(points, target, loo, level, False, kind)
    law = ScalingLaw.from_theta(theta)
    if predict:
        fit["prediction"] = {"n": predict[0], "d": predict[1], "loss": float(law(*predict))}
        fit["prediction"].update(spread.interval(theta, *predict, level))
    if holdout:
        fit["holdout"] = [_holdout_row(law, theta, spread, p, target, level) for p in holdout if target in p.losses]
    return fit


def _holdout_row(
    law: ScalingLaw, theta: np.ndarray, spread: Uncertainty, point: LadderPoint, target: str, level: float
) -> dict:
    actual = point.losses[target]
    row = error_row(point.name, point.n, point.d, actual, float(law(point.n, point.d)))
    row.update(spread.interval(theta, point.n, point.d, level))
    bounds = row["interval"]
    row["inside"] = None if bounds is None else bool(bounds[0] <= actual <= bounds[1])
    return row


def _target_order(target: str) -> tuple[int, str]:
    return ({"suite": 0, "source": 1, "domain": 2}.get(target.split(":")[0], 3), target)


def fit_runs(
    runs: Sequence[Run],
    tokens: dict[str, float] | None = None,
    parameters: str = "non_embedding",
    metric: str = "loss",
    levels: Sequence[str] = ("suite", "source", "domain"),
    loo: bool = True,
    predict: tuple[float, float] | None = None,
    registry: Registry | None = None,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
    holdout: Sequence[Run] = (),
    level: float = DEFAULT_LEVEL,
    last_k: int = 1,
    count_output_embedding: bool = False,
    mixed_schedules: bool = False,
    downstream: DownstreamSpec | None = None,
    kind: str = DEFAULT_OBJECTIVE,
) -> dict:
    """`paloma ladder fit`: eval runs (and held-out runs) → ladder points → `fit_ladder`, with the units;
    with `downstream`, step 2 (`paloma.analysis.ladder.downstream`) chained to the fit of its `via` target."""
    results = match_results([*runs, *holdout], downstream.files) if downstream else None
    points, held = ladder_points(
        runs,
        tokens,
        parameters=parameters,
        metric=metric,
        levels=levels,
        registry=registry,
        holdout=holdout,
        last_k=last_k,
        count_output_embedding=count_output_embedding,
        mixed_schedules=mixed_schedules,
    )
    ladder = fit_ladder(
        points, loo=loo, predict=predict, progress=progress, jobs=jobs, holdout=held, level=level, kind=kind
    )
    unit = "nats per token (ln perplexity)" if metric == "loss" else "bits per byte"
    n_label = parameters + ("+output_embedding" if count_output_embedding else "")
    out = {"metric": metric, "unit": unit, "parameters": n_label, "last_k": last_k, **ladder}
    if downstream:
        out["downstream"] = fit_downstream(
            out, runs, held, results, downstream.task, downstream.metric, downstream.via, registry
        )
    return out


FITS_CSV_COLUMNS = [
    "target",
    "points",
    *PARAM_NAMES,
    "rmse_log",
    "max_rel_error",
    "loo_mean_abs_rel_error",
    "loo_max_abs_rel_error",
    "predict_n",
    "predict_d",
    "predicted",
    "predicted_lo",
    "predicted_hi",
    "warnings",
]


def fits_csv_rows(ladder: dict) -> list[list]:
    """One row per fitted target, in FITS_CSV_COLUMNS order."""
    rows = []
    for fit in ladder["fits"]:
        prediction = fit.get("prediction") or {}
        interval = prediction.get("interval") or [None, None]
        flat = {
            **fit,
            **fit["law"],
            "predict_n": prediction.get("n"),
            "predict_d": prediction.get("d"),
            "predicted": prediction.get("loss"),
            "predicted_lo": interval[0],
            "predicted_hi": interval[1],
            "warnings": "; ".join(fit.get("warnings", [])),
        }
        rows.append([flat.get(c) for c in FITS_CSV_COLUMNS])
    return rows
