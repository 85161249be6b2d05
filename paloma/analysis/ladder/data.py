"""From eval runs to ladder points: each training run's N, D and loss on every target.

- **Targets**: `suite` (token-weighted over all data except fringe sources and code, as the paper's
  ordinary perplexity, so it depends on the registry), `source:<S>`, `domain:<S>/<D>`.
- **N**: `model.non_embedding_parameters` (Kaplan et al.) or `model.parameters`; OLMo-ladder counts the
  output embedding as part of N (only the input embedding is "embedding" there), which
  `count_output_embedding` adds back from `model.output_embedding_parameters`.
- **D**: `model.training_tokens`, or a row of the `tokens` mapping; both given must agree.
- **Checkpoints of one run** (eval outputs whose `model.training.config_fingerprint` agree, or, without
  training metadata, the same model id at other revisions) make one point: with `last_k` = K the mean of
  their last K checkpoints' losses and D, as OLMo-ladder averages the last checkpoints of a run, which damps
  the checkpoint-to-checkpoint noise of small models.
- **LR schedule**: runs are only comparable at the same fraction of their learning-rate schedule (a run
  stopped half way through its cosine has not annealed); the last checkpoint of every run must agree on
  `model.training.schedule_fraction` where it is known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from paloma.analysis.runs import Run
from paloma.errors import PalomaError
from paloma.metrics import LN2, DomainSums, excluded_from_ordinary
from paloma.registry import Registry

LEVELS = ("suite", "source", "domain")
SCHEDULE_TOLERANCE = 1e-3


@dataclass(frozen=True)
class LadderPoint:
    """One training run of the ladder: its size, its training tokens, and its loss on each target."""

    name: str
    n: float
    d: float
    losses: Mapping[str, float] = field(default_factory=dict)
    checkpoints: int = 1  # how many checkpoints were averaged into this point
    schedule_fraction: float | None = None
    paths: tuple[str, ...] = ()  # the eval outputs averaged, oldest first (not in `describe`: fits travel)

    def describe(self) -> dict:
        """What fits.json (and a submission carrying the fits) says of the point: no local paths."""
        return {
            "name": self.name,
            "n": self.n,
            "d": self.d,
            "checkpoints": self.checkpoints,
            "schedule_fraction": self.schedule_fraction,
        }


def _loss(sums: DomainSums, metric: str) -> float:
    if metric == "loss":
        return sums.nll_sum / sums.tokens if sums.tokens else math.nan
    return sums.nll_sum / (sums.bytes * LN2) if sums.bytes else math.nan


def run_losses(run: Run, metric: str, levels: Sequence[str], registry: Registry | None) -> dict[str, float]:
    """The run's loss on every target of `levels` (module docstring)."""
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


def parameter_count(run: Run, parameters: str, count_output_embedding: bool = False) -> float:
    """N of a run (module docstring); errors name the missing results.json field."""
    field_name = {"non_embedding": "non_embedding_parameters", "total": "parameters"}.get(parameters)
    if field_name is None:
        raise PalomaError(f"unknown parameter count {parameters!r} (use non_embedding or total)")
    if count_output_embedding and parameters == "total":
        raise PalomaError("total parameters already include the output embedding; drop --count-output-embedding")
    n = run.model.get(field_name)
    if not n:
        raise PalomaError(f"{run.path}/results.json: field model.{field_name} is missing")
    if count_output_embedding:
        output = run.model.get("output_embedding_parameters")
        if output is None:
            raise PalomaError(
                f"{run.path}/results.json: field model.output_embedding_parameters is missing (evaluated with an "
                "older paloma; re-run `paloma eval --resume` or fit without --count-output-embedding)"
            )
        n += output
    return float(n)


def training_tokens(run: Run, tokens: Mapping[str, float]) -> float:
    """D of a run: results.json `model.training_tokens`, else the mapping (by folder path or name, or model)."""
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


def schedule_fraction(run: Run) -> float | None:
    value = (run.model.get("training") or {}).get("schedule_fraction")
    return float(value) if isinstance(value, (int, float)) else None


def training_run_key(run: Run) -> str:
    """What the checkpoints of one training run share (module docstring)."""
    training = run.model.get("training") or {}
    if training.get("config_fingerprint"):
        return f"config:{training['config_fingerprint']}:{training.get('init_from')}"
    return f"model:{run.model.get('name_or_path') or run.path}"


def group_checkpoints(runs: Sequence[Run], tokens: Mapping[str, float]) -> list[list[tuple[float, Run]]]:
    """Runs grouped by training run (first appearance first), each group's checkpoints ordered by D."""
    groups: dict[str, list[tuple[float, Run]]] = {}
    for run in runs:
        groups.setdefault(training_run_key(run), []).append((training_tokens(run, tokens), run))
    for key, members in groups.items():
        members.sort(key=lambda item: item[0])
        paths = [str(r.path) for _, r in members]
        if len(set(paths)) < len(paths):
            raise PalomaError(f"{paths[0]}: given twice")
        if len({d for d, _ in members}) < len(members):
            raise PalomaError(
                f"{members[0][1].path} and another checkpoint of the same training run ({key}) have the same "
                "training tokens; give each checkpoint once"
            )
    return list(groups.values())


def _point(
    members: list[tuple[float, Run]],
    last_k: int,
    parameters: str,
    count_output_embedding: bool,
    metric: str,
    levels: Sequence[str],
    registry: Registry | None,
) -> LadderPoint:
    chosen = members[-last_k:]
    sizes = {parameter_count(r, parameters, count_output_embedding) for _, r in chosen}
    if len(sizes) > 1:
        raise PalomaError(f"{chosen[-1][1].path}: checkpoints of one training run report different N {sorted(sizes)}")
    per_checkpoint = [run_losses(r, metric, levels, registry) for _, r in chosen]
    shared = set.intersection(*(set(losses) for losses in per_checkpoint))
    last = chosen[-1][1]
    return LadderPoint(
        name=last.name,
        n=sizes.pop(),
        d=float(np.mean([d for d, _ in chosen])),
        losses={t: float(np.mean([losses[t] for losses in per_checkpoint])) for t in shared},
        checkpoints=len(chosen),
        schedule_fraction=schedule_fraction(last),
        paths=tuple(str(r.path) for _, r in chosen),
    )


def check_schedules(points: Sequence[LadderPoint]) -> None:
    """Every run whose schedule fraction is known must be at the same fraction of its LR schedule."""
    known = [(p.name, p.schedule_fraction) for p in points if p.schedule_fraction is not None]
    if known and max(f for _, f in known) - min(f for _, f in known) > SCHEDULE_TOLERANCE:
        listed = ", ".join(f"{name}: {fraction:g}" for name, fraction in known)
        raise PalomaError(
            f"the runs are at different fractions of their LR schedule ({listed}); a run that has not annealed "
            "scores worse than the law says. Fit runs at the same fraction (e.g. each run's final checkpoint), "
            "or pass --mixed-schedules to fit anyway"
        )


def ladder_points(
    runs: Sequence[Run],
    tokens: Mapping[str, float] | None = None,
    parameters: str = "non_embedding",
    metric: str = "loss",
    levels: Sequence[str] = LEVELS,
    registry: Registry | None = None,
    holdout: Sequence[Run] = (),
    last_k: int = 1,
    count_output_embedding: bool = False,
    mixed_schedules: bool = False,
) -> tuple[list[LadderPoint], list[LadderPoint]]:
    """The ladder's points and the held-out runs' points (each training run once; module docstring)."""
    if metric not in ("loss", "bpb"):
        raise PalomaError(f"unknown metric {metric!r} (use loss or bpb)")
    if last_k < 1:
        raise PalomaError(f"last_k must be at least 1, got {last_k}")
    tokens = tokens or {}
    ladder_groups, holdout_groups = group_checkpoints(runs, tokens), group_checkpoints(holdout, tokens)
    in_ladder = {training_run_key(g[-1][1]) for g in ladder_groups}
    for group in holdout_groups:
        if training_run_key(group[-1][1]) in in_ladder:
            raise PalomaError(f"{group[-1][1].path}: a held-out run is also part of the ladder")
    make = dict(
        last_k=last_k,
        parameters=parameters,
        count_output_embedding=count_output_embedding,
        metric=metric,
        levels=levels,
        registry=registry,
    )
    points = [_point(g, **make) for g in ladder_groups]
    held = [_point(g, **make) for g in holdout_groups]
    if not mixed_schedules:
        check_schedules(points + held)
    return points, held
