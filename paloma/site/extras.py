"""Extension data on submission pages: a submission's `extra`, drawn or shown as escaped JSON.

`extra.ladder` (a scaling-ladder fit, validated by the schema's `LadderExtra`) is drawn with
`paloma.analysis.ladder.chart`: the site asks the analysis for SVG panels of plain data, and the analysis
knows nothing of the site (one direction only). Other keys may have a renderer registered by a site
extension (`register_extension`); a renderer receives the value and the submission and returns HTML built
with the autoescaping jinja environment it is given (never by pasting strings). Keys without a renderer are
shown as escaped JSON, so no data is hidden; the schema bounds their size and depth.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from paloma.submissions.schema import LadderExtra, Submission

Renderer = Callable[[Any, Submission, Environment], str]
LADDER_TITLE = "Scaling ladder: L(N, D) = E + A/N^α + B/D^β"


@dataclass(frozen=True)
class Extension:
    title: str
    render: Renderer


_EXTENSIONS: dict[str, Extension] = {}


def register_extension(key: str, title: str, render: Renderer) -> None:
    """Show `submission.extra[key]` on submission pages with `render` (later registrations replace earlier)."""
    _EXTENSIONS[key] = Extension(title, render)


def render_ladder(ladder: LadderExtra, env: Environment) -> Markup:
    """The carried fits as a grid of SVG panels (each one escapes its own text) with an HTML legend."""
    from paloma.analysis.ladder.chart import ladder_panels, legend_items

    data = ladder.model_dump(mode="json")
    template = env.get_template("ladder.html")
    panels = [Markup(p) for p in ladder_panels(data)]  # built by paloma.svg, which escapes every value
    return Markup(template.render(unit=ladder.unit, legend=legend_items(data), panels=panels))


def render_extras(submission: Submission, env: Environment) -> list[tuple[str, Markup]]:
    sections = []
    extra = submission.extra
    if extra.ladder is not None:
        sections.append((LADDER_TITLE, render_ladder(extra.ladder, env)))
    for key, value in (extra.model_extra or {}).items():
        extension = _EXTENSIONS.get(key)
        if extension is None:
            text = json.dumps(value, indent=1, ensure_ascii=False, default=str)
            html = env.from_string("<pre class='extra'>{{ text }}</pre>").render(text=text)
            sections.append((key, Markup(html)))
        else:
            sections.append((extension.title, Markup(extension.render(value, submission, env))))
    return sections
