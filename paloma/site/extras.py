"""A hook for site extensions: submissions may carry optional `extra` data, keyed by extension name.

An analysis (e.g. scaling-ladder fits over a run's checkpoints, rank stability) registers a renderer for its
key; the submission page then shows a section titled by the extension. Renderers receive the value and the
submission and return HTML, which they must build with the autoescaping jinja environment they are given
(never by pasting strings). Keys without a renderer are shown as escaped JSON, so no data is hidden.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment
from markupsafe import Markup

from paloma.submissions.schema import Submission

Renderer = Callable[[Any, Submission, Environment], str]


@dataclass(frozen=True)
class Extension:
    title: str
    render: Renderer


_EXTENSIONS: dict[str, Extension] = {}


def register_extension(key: str, title: str, render: Renderer) -> None:
    """Show `submission.extra[key]` on submission pages with `render` (later registrations replace earlier)."""
    _EXTENSIONS[key] = Extension(title, render)


def render_extras(submission: Submission, env: Environment) -> list[tuple[str, Markup]]:
    sections = []
    for key, value in submission.extra.items():
        extension = _EXTENSIONS.get(key)
        if extension is None:
            text = json.dumps(value, indent=1, ensure_ascii=False, default=str)
            html = env.from_string("<pre class='extra'>{{ text }}</pre>").render(text=text)
            sections.append((key, Markup(html)))
        else:
            sections.append((extension.title, Markup(extension.render(value, submission, env))))
    return sections
