"""Scaling ladders: fit L(N, D) = E + A/N^α + B/D^β to small models and predict a larger one (paloma.md §7).

N is the parameter count (non-embedding by default, as in Kaplan et al.; total on request) and D the
number of training tokens. L is a per-domain loss: nats per token (= ln perplexity) by default, or bits per
byte, which stays comparable across tokenizers.

The fit follows Hoffmann et al. (Chinchilla) and the OLMo ladder: with E = e^e, A = e^a, B = e^b, the model
predicts log L = logsumexp(e, a − α ln N, b − β ln D); the objective is the Huber loss (δ = 1e-3) of the
log residuals, minimised by L-BFGS-B with an analytic gradient, started from the best few points of a grid
of initialisations. Leave-one-out refits the law without each point in turn and predicts that point only.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

from paloma.analysis.runs import Run
from paloma.errors import PalomaError
from paloma.metrics import LN2, DomainSums, excluded_from_ordinary
from paloma.registry import Registry

HUBER_DELTA = 1e-3
MIN_POINTS = 5  # five free parameters
PARAM_NAMES = ("E", "A", "alpha", "B", "beta")
# (e, a, alpha, b, beta) bounds: exponents positive, scales wide enough for any loss in nats or bits.
BOUNDS = [(-10.0, 5.0), (-10.0, 60.0), (1e-3, 3.0), (-10.0, 60.0), (1e-3, 3.0)]
INIT_GRID = {
    "e": np.linspace(-1.0, 1.0, 5),
    "a": np.linspace(0.0, 25.0, 6),
    "alpha": np.linspace(0.0, 2.0, 5),
    "b": np.linspace(0.0, 25.0, 6),
    "beta": np.linspace(0.0, 2.0, 5),
}
STARTS = 4  # L-BFGS-B runs from the best grid points


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


def _log_terms(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray) -> np.ndarray:
    """The three terms of log L, shape (..., 3, points), for thetas of shape (..., 5)."""
    e, a, alpha, b, beta = (theta[..., i, None] for i in range(5))
    return np.stack(np.broadcast_arrays(e, a - alpha * log_n, b - beta * log_d), axis=-2)


def _huber(r: np.ndarray, delta: float) -> np.ndarray:
    small = np.abs(r) <= delta
    return np.where(small, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))


def objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean Huber loss of log residuals and its gradient with respect to (e, a, α, b, β).

    Written out term by term (not via `_log_terms`) because L-BFGS-B calls it hundreds of times per fit.
    """
    e, a, alpha, b, beta = theta
    t1 = a - alpha * log_n
    t2 = b - beta * log_d
    peak = np.maximum(np.maximum(t1, t2), e)
    w0, w1, w2 = np.exp(e - peak), np.exp(t1 - peak), np.exp(t2 - peak)
    total = w0 + w1 + w2
    residual = peak + np.log(total) - log_l
    slope = np.clip(residual, -HUBER_DELTA, HUBER_DELTA) / (len(log_l) * total)  # dHuber/dr · d log L / d term
    g1, g2 = slope @ w1, slope @ w2
    grad = np.array([slope @ w0, g1, -(slope * log_n) @ w1, g2, -(slope * log_d) @ w2])
    abs_r = np.abs(residual)
    huber = np.where(abs_r <= HUBER_DELTA, 0.5 * residual * residual, HUBER_DELTA * (abs_r - 0.5 * HUBER_DELTA))
    return float(huber.mean()), grad


def _grid_losses(log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    grid = np.stack(np.meshgrid(*INIT_GRID.values(), indexing="ij"), axis=-1).reshape(-1, 5)
    terms = _log_terms(grid, log_n, log_d)
    peak = terms.max(axis=-2)
    residual = peak + np.log(np.exp(terms - peak[..., None, :]).sum(axis=-2)) - log_l
    return grid, _huber(residual, HUBER_DELTA).mean(axis=-1)


def fit_law(
    n: Sequence[float],
    d: Sequence[float],
    loss: Sequence[float],
    warm_start: np.ndarray | None = None,
) -> tuple[ScalingLaw, float]:
    """Fit the law to points (N_i, D_i, L_i); returns the law and its objective value.

    Without `warm_start`, L-BFGS-B runs from the STARTS best points of the initialisation grid; with it
    (a nearby solution, as in leave-one-out refits), from that point only.
    """
    log_n, log_d, log_l = (np.log(np.asarray(x, dtype=np.float64)) for x in (n, d, loss))
    if len(log_l) < MIN_POINTS:
        raise PalomaError(f"a scaling-law fit needs at least {MIN_POINTS} points, got {len(log_l)}")
    if warm_start is None:
        grid, losses = _grid_losses(log_n, log_d, log_l)
        starts = list(grid[np.argsort(losses)[:STARTS]])
    else:
        starts = [warm_start]
    # L-BFGS-B calls BLAS on 5×5 matrices; a multi-threaded BLAS spends 30-100× longer synchronising its
    # threads than computing (measured on a busy 2-core machine), so the fit runs single-threaded.
    with threadpool_limits(1, user_api="blas"):
        best = min((_minimize(start, log_n, log_d, log_l) for start in starts), key=lambda found: found.fun)
    return ScalingLaw.from_theta(best.x), float(best.fun)


def _minimize(start: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray):
    return minimize(
        objective,
        np.clip(start, [lo for lo, _ in BOUNDS], [hi for _, hi in BOUNDS]),
        args=(log_n, log_d, log_l),
        jac=True,
        method="L-BFGS-B",
        bounds=BOUNDS,
        options={"maxiter": 2000, "ftol": 1e-16, "gtol": 1e-13},
    )


def law_theta(law: ScalingLaw) -> np.ndarray:
    return np.array([math.log(law.E), math.log(law.A), law.alpha, math.log(law.B), law.beta])


@dataclass(frozen=True)
class LadderPoint:
    """One model of the ladder: its size, its training tokens, and its loss on each target."""

    name: str
    n: float
    d: float
    losses: Mapping[str, float] = field(default_factory=dict)


def fit_target(points: Sequence[LadderPoint], target: str, loo: bool = True) -> dict:
    """Fit one target (a domain, source or the suite): law, in-sample quality, leave-one-out errors."""
    n = np.array([p.n for p in points])
    d = np.array([p.d for p in points])
    observed = np.array([p.losses[target] for p in points])
    law, value = fit_law(n, d, observed)
    fitted = law(n, d)
    result = {
        "target": target,
        "points": len(points),
        "law": law.to_dict(),
        "objective": value,
        "rmse_log": float(np.sqrt(np.mean((np.log(fitted) - np.log(observed)) ** 2))),
        "max_rel_error": float(np.max(np.abs(fitted / observed - 1.0))),
        "observed": [float(x) for x in observed],
        "fitted": [float(x) for x in fitted],
    }
    if loo:
        result["loo"] = leave_one_out(n, d, observed, [p.name for p in points], law)
        errors = [abs(p["rel_error"]) for p in result["loo"]]
        result["loo_mean_abs_rel_error"] = float(np.mean(errors)) if errors else math.nan
        result["loo_max_abs_rel_error"] = float(np.max(errors)) if errors else math.nan
    return result


def leave_one_out(
    n: np.ndarray, d: np.ndarray, observed: np.ndarray, names: Sequence[str], full: ScalingLaw
) -> list[dict]:
    """For each point: refit on all *other* points and predict the held-out one.

    Only possible with more than MIN_POINTS points. Each refit starts from the full fit's solution (the
    held-out point moves the optimum only a little), which makes leave-one-out affordable for 585 domains.
    """
    if len(observed) <= MIN_POINTS:
        return []
    out = []
    for i in range(len(observed)):
        keep = np.arange(len(observed)) != i
        law, _ = fit_law(n[keep], d[keep], observed[keep], warm_start=law_theta(full))
        predicted = float(law(n[i], d[i]))
        out.append(
            {
                "name": names[i],
                "n": float(n[i]),
                "d": float(d[i]),
                "observed": float(observed[i]),
                "predicted": predicted,
                "abs_error": predicted - float(observed[i]),
                "rel_error": predicted / float(observed[i]) - 1.0,
            }
        )
    return out


# ---- from eval runs to ladder points ------------------------------------------------------------------------


def _loss(sums: DomainSums, metric: str) -> float:
    if metric == "loss":
        return sums.nll_sum / sums.tokens if sums.tokens else math.nan
    return sums.nll_sum / (sums.bytes * LN2) if sums.bytes else math.nan


def run_losses(run: Run, metric: str, levels: Sequence[str], registry: Registry | None) -> dict[str, float]:
    """The run's loss on every target: `suite` (ordinary: no fringe, no code), `source:S`, `domain:S/D`."""
    by_source: dict[str, DomainSums] = {}
    ordinary = DomainSums()
    losses = {}
    for (source, domain), sums in run.domain_sums.items():
        by_source.setdefault(source, DomainSums())
        by_source[source] += sums
        if not excluded_from_ordinary(registry, source, domain):
            ordinary += sums
        if "domain" in levels:
            losses[f"domain:{source}/{domain}"] = _loss(sums, metric)
    if "source" in levels:
        losses.update({f"source:{s}": _loss(sums, metric) for s, sums in by_source.items()})
    if "suite" in levels:
        losses["suite"] = _loss(ordinary, metric)
    return {k: v for k, v in losses.items() if math.isfinite(v) and v > 0}


def ladder_points(
    runs: Sequence[Run],
    tokens: Mapping[str, float] | None = None,
    parameters: str = "non_embedding",
    metric: str = "loss",
    levels: Sequence[str] = ("suite", "source", "domain"),
    registry: Registry | None = None,
) -> list[LadderPoint]:
    """One ladder point per run; D from results.json `model.training_tokens` or the `tokens` mapping.

    The mapping is keyed by the run's folder path or its model name; when both sources give a value they
    must agree, so a stale CSV cannot silently override what the run recorded.
    """
    if metric not in ("loss", "bpb"):
        raise PalomaError(f"unknown metric {metric!r} (use loss or bpb)")
    field_name = {"non_embedding": "non_embedding_parameters", "total": "parameters"}.get(parameters)
    if field_name is None:
        raise PalomaError(f"unknown parameter count {parameters!r} (use non_embedding or total)")
    points = []
    for run in runs:
        n = run.model.get(field_name)
        if not n:
            raise PalomaError(f"{run.path}/results.json: field model.{field_name} is missing")
        d = _training_tokens(run, tokens or {})
        points.append(LadderPoint(run.name, float(n), d, run_losses(run, metric, levels, registry)))
    return points


def _training_tokens(run: Run, tokens: Mapping[str, float]) -> float:
    recorded = run.model.get("training_tokens")
    mapped = next((tokens[k] for k in (str(run.path), run.path.name, run.name) if k in tokens), None)
    if recorded and mapped and not math.isclose(float(recorded), float(mapped), rel_tol=1e-9):
        raise PalomaError(
            f"{run.path}: results.json says {recorded} training tokens but the mapping says {mapped}; fix one"
        )
    value = recorded or mapped
    if not value:
        raise PalomaError(
            f"{run.path}: no training tokens (results.json model.training_tokens is missing and --tokens has no "
            f"row for {run.path.name!r} or {run.name!r})"
        )
    return float(value)


def fit_ladder(
    points: Sequence[LadderPoint],
    loo: bool = True,
    predict: tuple[float, float] | None = None,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
) -> dict:
    """Fit every target that all points share; optionally predict the loss of a model (N, D).

    Targets are independent, so `jobs` > 1 fits them in that many processes.
    """
    if len(points) < MIN_POINTS:
        raise PalomaError(f"a ladder fit needs at least {MIN_POINTS} runs, got {len(points)}")
    shared = set.intersection(*(set(p.losses) for p in points))
    targets = sorted(shared, key=_target_order)
    task = partial(_fit_one, points, loo=loo, predict=predict)
    fits = []
    with ProcessPoolExecutor(jobs) if jobs > 1 else contextlib.nullcontext() as pool:
        for fit in pool.map(task, targets, chunksize=8) if pool else map(task, targets):
            fits.append(fit)
            if progress:
                progress(1)
    return {
        "points": [{"name": p.name, "n": p.n, "d": p.d} for p in points],
        "huber_delta": HUBER_DELTA,
        "predict": {"n": predict[0], "d": predict[1]} if predict else None,
        "skipped_targets": sorted(set.union(*(set(p.losses) for p in points)) - shared, key=_target_order),
        "fits": fits,
    }


def _fit_one(points: Sequence[LadderPoint], target: str, loo: bool, predict: tuple[float, float] | None) -> dict:
    fit = fit_target(points, target, loo=loo)
    if predict:
        fit["prediction"] = {"n": predict[0], "d": predict[1], "loss": float(ScalingLaw(**fit["law"])(*predict))}
    return fit


def _target_order(target: str) -> tuple[int, str]:
    return ({"suite": 0, "source": 1, "domain": 2}.get(target.split(":")[0], 3), target)


def fit_runs(
    runs: Sequence[Run],
    tokens: Mapping[str, float] | None = None,
    parameters: str = "non_embedding",
    metric: str = "loss",
    levels: Sequence[str] = ("suite", "source", "domain"),
    loo: bool = True,
    predict: tuple[float, float] | None = None,
    registry: Registry | None = None,
    progress: Callable[[int], None] | None = None,
    jobs: int = 1,
) -> dict:
    """Eval runs of a ladder → fitted laws per target (see `fit_ladder`), with the choices recorded."""
    points = ladder_points(runs, tokens, parameters, metric, levels, registry)
    ladder = fit_ladder(points, loo=loo, predict=predict, progress=progress, jobs=jobs)
    unit = "nats per token (ln perplexity)" if metric == "loss" else "bits per byte"
    return {"metric": metric, "unit": unit, "parameters": parameters, **ladder}


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
]


def fits_csv_rows(ladder: dict) -> list[list]:
    """One row per fitted target, in FITS_CSV_COLUMNS order."""
    rows = []
    for fit in ladder["fits"]:
        prediction = fit.get("prediction") or {}
        flat = {
            **fit,
            **fit["law"],
            "predict_n": prediction.get("n"),
            "predict_d": prediction.get("d"),
            "predicted": prediction.get("loss"),
        }
        rows.append([flat.get(c) for c in FITS_CSV_COLUMNS])
    return rows
