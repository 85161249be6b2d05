"""SVG built from escaped parts: every chart (site, CLI, analyses) goes through these helpers.

Labels in charts come from submissions and run names, which strangers write; building SVG by string
formatting invites markup injection (`</text><script>…`). Here element names are fixed by the caller's code,
attribute values and text are always escaped, and attribute names are checked, so data can only ever be text.
"""

from __future__ import annotations

import math
import re
from html import escape

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:-]*$")


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if math.isfinite(value) else "0"
    return str(value)


def attrs(**attributes: object) -> str:
    """` name="value"` pairs; `class_` becomes `class`, `_` in names becomes `-`, None values are left out."""
    out = []
    for key, value in attributes.items():
        name = "class" if key == "class_" else key.replace("_", "-")
        if not _NAME.match(name) or name.lower().startswith("on"):
            raise ValueError(f"not an allowed SVG attribute name: {name!r}")
        if value is not None:
            out.append(f' {name}="{escape(_value(value), quote=True)}"')
    return "".join(out)


def element(tag: str, *children: str, text: str | None = None, **attributes: object) -> str:
    """`<tag …>escaped text + already-built children</tag>`, or `<tag …/>` when empty.

    `children` must be strings this module produced; `text` is escaped.
    """
    if not _NAME.match(tag):
        raise ValueError(f"not an SVG element name: {tag!r}")
    body = (escape(text, quote=False) if text is not None else "") + "".join(children)
    return f"<{tag}{attrs(**attributes)}>{body}</{tag}>" if body else f"<{tag}{attrs(**attributes)}/>"


def text(x: float, y: float, content: str, **attributes: object) -> str:
    """A `<text>` element whose content is always escaped."""
    return element("text", text=content, x=x, y=y, **attributes)


def title(content: str) -> str:
    """A tooltip (`<title>`), escaped."""
    return element("title", text=content)


def document(width: float, height: float, *children: str, **attributes: object) -> str:
    """A standalone `<svg>` with a viewBox, so it scales to its container's width."""
    return element(
        "svg",
        *children,
        xmlns="http://www.w3.org/2000/svg",
        viewBox=f"0 0 {_value(width)} {_value(height)}",
        **attributes,
    )
