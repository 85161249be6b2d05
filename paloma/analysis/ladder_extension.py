"""Show scaling-ladder fits on leaderboard pages: the site extension for a submission's `extra["ladder"]`.

A submission from a ladder (e.g. `paloma demo`) may carry the fits of its ladder (`paloma ladder fit`,
suite and source targets). The site draws them with the same chart as `ladder.svg`, from the numbers only:
labels are escaped by `ladder_svg`, and data that is not a well-formed ladder is shown as escaped JSON.
"""

from __future__ import annotations

import json

from paloma.analysis.ladder_chart import ladder_svg

KEY = "ladder"
TITLE = "Scaling ladder: L(N, D) = E + A/N^α + B/D^β"
SUMMARY_TARGETS = ("suite", "source")  # the levels a submission carries (domains stay in fits.json)


def ladder_extra(ladder: dict, levels: tuple[str, ...] = SUMMARY_TARGETS) -> dict:
    """The part of a `fit_runs` result that a submission carries: the points and the suite/source fits."""
    fits = [f for f in ladder["fits"] if f["target"].split(":")[0] in levels]
    keep = ("metric", "unit", "parameters", "points", "predict", "huber_delta")
    return {**{k: ladder.get(k) for k in keep}, "fits": fits}


def render_ladder(value, submission, env) -> str:
    """The chart of the carried fits, or the value as escaped JSON when it is not a ladder."""
    try:
        svg = ladder_svg(value)
    except (KeyError, TypeError, ValueError, IndexError):
        text = json.dumps(value, indent=1, ensure_ascii=False, default=str)
        return env.from_string("<pre class='extra'>{{ text }}</pre>").render(text=text)
    note = "Each panel: one target's observed losses (dots) and the fitted law; hover a dot for N, D and loss."
    return env.from_string("<p>{{ note }}</p>").render(note=note) + svg


def register() -> None:
    from paloma.site import register_extension

    register_extension(KEY, TITLE, render_ladder)
