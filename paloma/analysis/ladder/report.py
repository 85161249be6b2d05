"""The held-out report of a ladder fit, as the paper's tables: per target and held-out run, the prediction,
what the run scored, and the signed relative and absolute errors (prediction − actual), with intervals.

`write_ladder_reports` writes `holdout.csv` (step 1, every target) and `downstream.csv` (step 2) beside the
fits that `paloma.analysis.ladder.chart.write_ladder_outputs` writes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from paloma.analysis.output import write_csv

# A prediction against what the run scored, as both reports show it.
ERROR_COLUMNS = ["observed", "predicted", "abs_error", "rel_error", "interval_lo", "interval_hi", "level", "inside"]
HOLDOUT_COLUMNS = ["target", "run", "n", "d", *ERROR_COLUMNS]
DOWNSTREAM_COLUMNS = [
    *("run", "n", "d", *ERROR_COLUMNS),
    *("observed_loss", "predicted_loss", "predicted_from_observed_loss"),  # the loss step 2 mapped
]


def _flat(row: dict, **extra) -> dict:
    lo, hi = row.get("interval") or (None, None)
    return {**row, "run": row["name"], "interval_lo": lo, "interval_hi": hi, **extra}


def holdout_rows(ladder: dict) -> list[list]:
    """One row per (target, held-out run), in HOLDOUT_COLUMNS order."""
    rows = []
    for fit in ladder["fits"]:
        for row in fit.get("holdout", []):
            flat = _flat(row, target=fit["target"])
            rows.append([flat.get(c) for c in HOLDOUT_COLUMNS])
    return rows


def downstream_rows(ladder: dict) -> list[list]:
    """One row per held-out run of step 2, in DOWNSTREAM_COLUMNS order."""
    rows = []
    for row in (ladder.get("downstream") or {}).get("holdout", []):
        flat = _flat(row, predicted_loss=row["loss"])
        rows.append([flat.get(c) for c in DOWNSTREAM_COLUMNS])
    return rows


def holdout_summary(ladder: dict) -> list[dict]:
    """Per level (suite, source, domain): how many predictions, mean signed and mean absolute relative error,
    and the share of actual values inside their prediction interval."""
    by_level: dict[str, list[dict]] = {}
    for fit in ladder["fits"]:
        by_level.setdefault(fit["target"].split(":")[0], []).extend(fit.get("holdout", []))
    out = []
    for level, rows in by_level.items():
        if not rows:
            continue
        errors = np.array([r["rel_error"] for r in rows])
        inside = [r["inside"] for r in rows if r["inside"] is not None]
        out.append(
            {
                "level": level,
                "predictions": len(rows),
                "mean_rel_error": float(errors.mean()),
                "mean_abs_rel_error": float(np.abs(errors).mean()),
                "inside_interval": float(np.mean(inside)) if inside else None,
            }
        )
    return out


def write_ladder_reports(ladder: dict, folder: str | Path) -> list[Path]:
    """holdout.csv and downstream.csv, where the fit has held-out runs or a step 2; returns what was written."""
    folder = Path(folder)
    written = []
    if ladder.get("holdout_points"):
        write_csv(folder / "holdout.csv", HOLDOUT_COLUMNS, holdout_rows(ladder))
        written.append(folder / "holdout.csv")
    if ladder.get("downstream"):
        write_csv(folder / "downstream.csv", DOWNSTREAM_COLUMNS, downstream_rows(ladder))
        written.append(folder / "downstream.csv")
    return written
