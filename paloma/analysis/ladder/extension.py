"""The part of a ladder fit that a submission carries in `extra["ladder"]`, as plain data.

A submission from a ladder (e.g. `paloma demo`) may carry the fits of its ladder (`paloma ladder fit`, suite
and source targets). This module only hands the site plain data; the site (`paloma.site.extras`) validates
it with the submission schema and draws it with `paloma.analysis.ladder.chart`. Nothing here imports the
site, so the dependency runs one way: site → analysis.
"""

from __future__ import annotations

import math

KEY = "ladder"
SUMMARY_TARGETS = ("suite", "source")  # the levels a submission carries (domains stay in fits.json)


def ladder_extra(ladder: dict, levels: tuple[str, ...] = SUMMARY_TARGETS) -> dict:
    """The part of a `fit_runs` result that a submission carries: the points and the suite/source fits."""
    fits = [
        {k: fit[k] for k in ("target", "law", "observed", "loo_mean_abs_rel_error", "prediction") if _given(fit.get(k))}
        for fit in ladder["fits"]
        if fit["target"].split(":")[0] in levels
    ]
    keep = ("metric", "unit", "parameters", "points", "predict", "objective", "huber_delta")
    return {**{k: ladder[k] for k in keep if ladder.get(k) is not None}, "fits": fits}


def _given(value: object) -> bool:
    """Present and, for a number, finite (a NaN leave-one-out error means there was none)."""
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))
