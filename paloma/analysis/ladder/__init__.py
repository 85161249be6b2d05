"""Scaling ladders (paloma.md §7): from eval runs of small models to the predicted loss, and the downstream
metric, of a larger one, as `paloma ladder fit` runs it.

- `data`: eval runs → ladder points (N, D and the loss on every target; checkpoints of one run averaged).
- `fit`: step 1, L(N, D) = E + A/N^α + B/D^β per target (least squares or Huber on log residuals), with
  leave-one-out errors, prediction intervals and held-out runs; `fit_runs` is the whole command.
- `downstream`: step 2, a sigmoid from a target's loss to an lm-evaluation-harness metric, chained to step 1.
- `report`: the held-out tables (holdout.csv, downstream.csv) as the paper reports errors.
- `chart`: fits as SVG panels, fits.json and fits.csv.
- `extension`: the part of a fit a submission carries in `extra.ladder`, for the site to draw.

The names below are the package's API (`from paloma.analysis.ladder import fit_runs`).
"""

from paloma.analysis.ladder.data import LadderPoint
from paloma.analysis.ladder.fit import (
    DEFAULT_OBJECTIVE,
    OBJECTIVES,
    ScalingLaw,
    check_design,
    fit_ladder,
    fit_law,
    fit_runs,
    fit_target,
)

__all__ = [
    "DEFAULT_OBJECTIVE",
    "OBJECTIVES",
    "LadderPoint",
    "ScalingLaw",
    "check_design",
    "fit_ladder",
    "fit_law",
    "fit_runs",
    "fit_target",
]
