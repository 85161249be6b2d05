"""Step 2 of a ladder prediction: from a Paloma loss to a downstream task metric (OLMo-ladder's two steps).

Step 1 (`ladder`) predicts the target model's loss on a Paloma target from N and D. Step 2 maps that loss
to a task metric with a sigmoid fitted on the ladder's own checkpoints, as OLMo-ladder does:

    metric(L) = a / (1 + exp(−k (L − L₀))) + b,   −1 ≤ a ≤ 0 ≤ b ≤ 1, k ≥ 0

(a falling S-curve: b is the metric of a perfect model, a + b the metric at chance). The metric comes from
lm-evaluation-harness `results*.json` files read as lm-eval 0.4 writes them (`results.<task>.<metric>,<filter>`),
matched to eval runs by the model they name (`config.model_args` `pretrained=…`, or `model_name`).

Step 2 is fitted by least squares on every ladder checkpoint that has a result (checkpoints of one run all
count: the map from loss to metric does not depend on N or D), with the delta-method covariance
s² (JᵀJ)⁻¹. A chained prediction's interval adds the step-1 prediction interval, carried through the
sigmoid's slope, to step 2's own: var = f′(L̂)² var(L̂) + gᵀ Σ g + s².
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares
from scipy.stats import t as student_t

from paloma.analysis.ladder.data import LadderPoint, run_losses
from paloma.analysis.runs import Run
from paloma.errors import PalomaError
from paloma.registry import Registry

SIGMOID_PARAMS = ("a", "x0", "k", "b")
SIGMOID_BOUNDS = ([-1.0, 0.0, 0.0, 0.0], [0.0, np.inf, 1e4, 1.0])
MIN_POINTS = 5  # four parameters and at least one degree of freedom


@dataclass(frozen=True)
class DownstreamSpec:
    """What step 2 predicts: a task's metric in lm-eval result files, through the loss of target `via`."""

    files: tuple[Path, ...]
    task: str
    metric: str | None = None  # default acc_norm, else acc
    via: str = "suite"


# ---- lm-evaluation-harness results ----------------------------------------------------------------------


def results_files(paths: Sequence[str | Path]) -> list[Path]:
    """lm-eval result files: files as given, folders searched for `results*.json` (lm-eval's names)."""
    found = []
    for given in map(Path, paths):
        if given.is_dir():
            inside = sorted(given.rglob("results*.json"))
            if not inside:
                raise PalomaError(f"{given}: no lm-evaluation-harness results*.json in this folder")
            found += inside
        elif given.is_file():
            found.append(given)
        else:
            raise PalomaError(f"{given}: no such file or folder")
    return found


def read_lm_eval(path: Path) -> dict:
    """One results file; errors name the file and what is missing."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PalomaError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    except UnicodeDecodeError:
        raise PalomaError(f"{path}: not a text file") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("results"), dict):
        raise PalomaError(f"{path}: not an lm-evaluation-harness results file (no 'results' object)")
    return raw


def lm_eval_model(raw: dict, path: Path) -> str:
    """The model an lm-eval run evaluated: `pretrained=` of its model_args, else `model_name`."""
    args = (raw.get("config") or {}).get("model_args")
    if isinstance(args, dict) and args.get("pretrained"):
        return str(args["pretrained"])
    if isinstance(args, str):
        for part in args.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "pretrained" and value.strip():
                return value.strip()
    if raw.get("model_name"):
        return str(raw["model_name"])
    raise PalomaError(f"{path}: field config.model_args has no pretrained=… and there is no model_name")


def metric_key(raw: dict, path: Path, task: str, metric: str | None) -> str:
    """The results key of `metric` for `task` (`acc_norm` → `acc_norm,none`); default acc_norm, else acc."""
    entry = raw["results"].get(task)
    if not isinstance(entry, dict):
        tasks = ", ".join(sorted(raw["results"])) or "none"
        raise PalomaError(f"{path}: no results for task {task!r} (tasks: {tasks})")
    names = sorted(k for k in entry if "," in k and "_stderr" not in k)
    wanted = [metric] if metric else ["acc_norm", "acc"]
    for name in wanted:
        key = name if "," in name else f"{name},none"
        if isinstance(entry.get(key), (int, float)) and not isinstance(entry.get(key), bool):
            return key
    raise PalomaError(f"{path}: task {task!r} has no metric {wanted[0]!r} (metrics: {', '.join(names) or 'none'})")


def _identities(name: str) -> set[str]:
    out = {name.rstrip("/")}
    if os.path.exists(name):
        out.add(os.path.realpath(name))
    return out


def match_results(runs: Sequence[Run], files: Sequence[Path]) -> dict[str, tuple[Path, dict]]:
    """Eval run path → (lm-eval file, its contents); every run and every file must find exactly one partner.

    A run matches a file that names the same model (the same string or the same folder); where no file
    does, a file naming a model with the same last path component (a folder that moved).
    """
    loaded = [(path, read_lm_eval(path)) for path in files]
    named = [(path, raw, lm_eval_model(raw, path)) for path, raw in loaded]
    matches: dict[str, tuple[Path, dict]] = {}
    used: set[Path] = set()
    for run in runs:
        model = str(run.model.get("name_or_path") or run.path)
        exact = [(p, raw) for p, raw, m in named if _identities(m) & _identities(model)]
        candidates = exact or [(p, raw) for p, raw, m in named if Path(m).name == Path(model).name]
        if not candidates:
            raise PalomaError(f"{run.path}: no lm-evaluation-harness result names its model {model!r}")
        if len(candidates) > 1:
            first, second = candidates[0][0], candidates[1][0]
            raise PalomaError(f"{run.path}: several lm-evaluation-harness results name its model: {first}, {second}")
        matches[str(run.path)] = candidates[0]
        used.add(candidates[0][0])
    unused = [p for p, _ in loaded if p not in used]
    if unused:
        raise PalomaError(f"{unused[0]}: this lm-evaluation-harness result matches none of the runs")
    return matches


# ---- the sigmoid ---------------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray | float, a: float, x0: float, k: float, b: float) -> np.ndarray | float:
    return a / (1.0 + np.exp(-k * (np.asarray(x, dtype=float) - x0))) + b


def _sigmoid_jacobian(x: np.ndarray, p: np.ndarray) -> np.ndarray:
    """d metric / d(a, x0, k, b) at each x: (points, 4)."""
    a, x0, k, _ = p
    s = 1.0 / (1.0 + np.exp(-k * (x - x0)))
    slope = a * s * (1.0 - s)
    return np.column_stack([s, -k * slope, (x - x0) * slope, np.ones_like(x)])


def _slope(x: float, p: np.ndarray) -> float:
    a, x0, k, _ = p
    s = 1.0 / (1.0 + math.exp(-k * (x - x0)))
    return float(a * k * s * (1.0 - s))


def fit_sigmoid(x: Sequence[float], y: Sequence[float]) -> dict:
    """Least-squares sigmoid from a grid of starts (the best final cost wins), with its delta-method pieces."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < MIN_POINTS:
        raise PalomaError(f"step 2 needs at least {MIN_POINTS} checkpoints with a downstream result, got {len(x)}")
    if np.any((y < 0) | (y > 1)):
        raise PalomaError("the task metric must lie in [0, 1] (an accuracy); pick another --task-metric")
    spread = max(float(np.ptp(x)), 1e-6)
    starts = [
        [-max(float(np.ptp(y)), 0.05) * scale, x0, k / spread, min(float(y.max()) + 0.05, 1.0)]
        for scale in (1.0, 3.0)
        for x0 in np.quantile(x, [0.1, 0.5, 0.9])
        for k in (1.0, 4.0, 16.0)
    ]

    def residuals(p: np.ndarray) -> np.ndarray:
        return sigmoid(x, *p) - y

    fits = (least_squares(residuals, np.clip(s, *SIGMOID_BOUNDS), bounds=SIGMOID_BOUNDS) for s in starts)
    best = min(fits, key=lambda found: found.cost)
    p = best.x
    residual = sigmoid(x, *p) - y
    lower, upper = (np.array(b) for b in SIGMOID_BOUNDS)
    free = (p - lower > 1e-9 * np.maximum(1.0, np.abs(lower))) & (upper - p > 1e-9 * np.maximum(1.0, np.abs(p)))
    dof = len(x) - int(free.sum())
    covariance = None
    if dof >= 1:
        jac = _sigmoid_jacobian(x, p)[:, free]
        singular = np.linalg.svd(jac, compute_uv=False)
        if singular[-1] > 1e-9 * singular[0]:
            covariance = np.zeros((4, 4))
            covariance[np.ix_(free, free)] = float(residual @ residual) / dof * np.linalg.inv(jac.T @ jac)
    return {
        "params": dict(zip(SIGMOID_PARAMS, (float(v) for v in p), strict=True)),
        "points": len(x),
        "rmse": float(np.sqrt(np.mean(residual**2))),
        "max_abs_error": float(np.max(np.abs(residual))),
        "residual_var": float(residual @ residual) / dof if dof >= 1 else None,
        "dof": dof,
        "covariance": covariance.tolist() if covariance is not None else None,
        "at_bounds": [n for n, f in zip(SIGMOID_PARAMS, free, strict=True) if not f],
        "loss_range": [float(x.min()), float(x.max())],
    }


def chained(step2: dict, loss: float, loss_sd: float | None, level: float) -> dict:
    """The metric at a predicted loss, with the interval of both steps (module docstring)."""
    p = np.array([step2["params"][n] for n in SIGMOID_PARAMS])
    value = float(sigmoid(loss, *p))
    low, high = step2["loss_range"]
    out = {"loss": loss, "predicted": value, "interval": None, "level": level, "extrapolated": not low <= loss <= high}
    if step2["covariance"] is None or loss_sd is None:
        return out
    g = _sigmoid_jacobian(np.array([loss]), p)[0]
    var = _slope(loss, p) ** 2 * loss_sd**2 + float(g @ np.array(step2["covariance"]) @ g) + step2["residual_var"]
    half = float(student_t.ppf(0.5 + level / 2, step2["dof"])) * math.sqrt(var)
    out["interval"] = [max(0.0, value - half), min(1.0, value + half)]
    return out


# ---- both steps together -----------------------------------------------------------------------------------


def fit_downstream(
    ladder: dict,
    checkpoints: Sequence[Run],
    holdout: Sequence[LadderPoint],
    results: Mapping[str, tuple[Path, dict]],
    task: str,
    metric: str | None,
    via: str,
    registry: Registry | None,
) -> dict:
    """Fit step 2 on the ladder's checkpoints and chain it to step 1's fit of `via` (module docstring)."""
    step1 = next((f for f in ladder["fits"] if f["target"] == via), None)
    if step1 is None:
        raise PalomaError(f"--via {via!r}: the ladder fit has no such target (fitted: {_fitted(ladder)})")
    loss_metric, level = ladder["metric"], ladder["interval_level"]

    def value(path: str) -> float:
        file, raw = results[path]
        return float(raw["results"][task][metric_key(raw, file, task, metric)])

    xs = [run_losses(run, loss_metric, [via.split(":")[0]], registry).get(via) for run in checkpoints]
    missing = [str(run.path) for run, x in zip(checkpoints, xs, strict=True) if x is None]
    if missing:
        raise PalomaError(f"{missing[0]}: has no {via!r} loss for step 2")
    ys = [value(str(run.path)) for run in checkpoints]
    step2 = fit_sigmoid(xs, ys)
    first = results[str(checkpoints[0].path)]
    out = {
        "task": task,
        "metric": metric_key(first[1], first[0], task, metric),
        "via": via,
        "sigmoid": step2,
        "points": [{"name": r.name, "loss": x, "value": y} for r, x, y in zip(checkpoints, xs, ys, strict=True)],
        "prediction": None,
        "holdout": [],
    }
    if step1.get("prediction"):
        pred = step1["prediction"]
        sd = _loss_sd(pred["loss"], pred.get("sd_log"))
        out["prediction"] = {"n": pred["n"], "d": pred["d"], **chained(step2, pred["loss"], sd, level)}
    rows = {row["name"]: row for row in step1.get("holdout", [])}
    for point in holdout:
        if point.name in rows:
            out["holdout"].append(_holdout_row(step2, rows[point.name], point, value, via, level))
    out["warnings"] = extrapolation_warnings(out)
    return out


def extrapolation_warnings(step: dict) -> list[str]:
    """One line per chained prediction whose step-1 loss lies outside the losses step 2 was fitted on.

    The sigmoid's shape there is not seen by the fit, and its delta-method interval does not know it: such
    intervals were reported to hold the held-out accuracy in only 80–88% of draws at a stated 95%.
    """
    low, high = step["sigmoid"]["loss_range"]
    named = ([("the prediction", step["prediction"])] if step["prediction"] else []) + [
        (row["name"], row) for row in step["holdout"]
    ]
    return [
        f"step 2 extrapolates for {name}: its predicted loss {row['loss']:.4g} is outside the losses the sigmoid "
        f"was fitted on [{low:.4g}, {high:.4g}]; the {step['task']} prediction and its interval are a guess there"
        for name, row in named
        if row["extrapolated"]
    ]


def _loss_sd(loss: float, sd_log: float | None) -> float | None:
    """The standard deviation of a predicted loss from its log-space one (d L = L · d log L)."""
    return loss * sd_log if sd_log is not None else None


def _holdout_row(step2: dict, step1_row: dict, point: LadderPoint, value, via: str, level: float) -> dict:
    actual = float(np.mean([value(p) for p in point.paths]))
    row = chained(step2, step1_row["predicted"], _loss_sd(step1_row["predicted"], step1_row.get("sd_log")), level)
    p = [step2["params"][n] for n in SIGMOID_PARAMS]
    return {
        "name": point.name,
        "n": point.n,
        "d": point.d,
        "observed": actual,
        **row,
        "abs_error": row["predicted"] - actual,
        "rel_error": row["predicted"] / actual - 1.0 if actual else math.nan,
        "inside": None if row["interval"] is None else bool(row["interval"][0] <= actual <= row["interval"][1]),
        "observed_loss": point.losses[via],
        "predicted_from_observed_loss": float(sigmoid(point.losses[via], *p)),
    }


def _fitted(ladder: dict) -> str:
    names = [f["target"] for f in ladder["fits"]]
    return ", ".join(names[:6]) + (", …" if len(names) > 6 else "")
