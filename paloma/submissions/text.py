"""Text that strangers write and the site shows: names must not lie about what they are.

A display name is read by people deciding which model is better, so it must look like what it is: Unicode
NFC (one spelling per look), no control, format, bidi-override or zero-width characters (U+202E turns
"OLMo 7B exe.png" into "OLMo 7B png.exe"), no private-use or unassigned code points, no spaces other than
U+0020. Two display names of one release must not share a confusable skeleton (UTS #39's idea: map every
character to a prototype of its look-alike class, so "OLMo", "0LMo" and "OLМo" with a Cyrillic М collide).
The look-alike classes come from Unicode's confusables.txt as packaged by `confusable_homoglyphs`.
"""

from __future__ import annotations

import unicodedata
from functools import cache

# Cc control, Cf format (bidi overrides and isolates, zero-width joiners and spaces, soft hyphen, BOM),
# Co private use, Cs surrogates, Cn unassigned, Zl/Zp line and paragraph separators.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"}
_CATEGORY_NAMES = {
    "Cc": "a control character",
    "Cf": "an invisible formatting character (bidi override, zero-width, ...)",
    "Co": "a private-use character",
    "Cs": "a lone surrogate",
    "Cn": "an unassigned code point",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def text_problem(value: str, allow_newlines: bool = False) -> str | None:
    """Why `value` cannot be shown as it is, or None when it can."""
    if unicodedata.normalize("NFC", value) != value:
        return "is not in Unicode NFC form (normalise it: the same look must have one spelling)"
    for ch in value:
        if allow_newlines and ch == "\n":
            continue
        category = unicodedata.category(ch)
        if category in _FORBIDDEN_CATEGORIES:
            return f"holds {_CATEGORY_NAMES[category]} (U+{ord(ch):04X})"
        if category == "Zs" and ch != " ":
            return f"holds a space other than U+0020 (U+{ord(ch):04X})"
    return None


@cache
def _prototypes() -> dict[str, str]:
    """Each character with look-alikes → one representative of its class (ASCII preferred, then lowest)."""
    from confusable_homoglyphs import confusables

    data = confusables.confusables_data
    prototypes: dict[str, str] = {}
    for char, homoglyphs in data.items():
        group = {char, *(h["c"] for h in homoglyphs)}
        prototypes[char] = min(group, key=lambda c: (not c.isascii(), len(c), c))
    return prototypes


def skeleton(value: str) -> str:
    """A key under which look-alike names collide: case-folded, compatibility-normalised, prototypes."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", value).casefold())
    prototypes = _prototypes()
    mapped = "".join(prototypes.get(ch, ch) for ch in folded if not unicodedata.combining(ch))
    # a second pass: a prototype may itself have one (e.g. a Cyrillic letter whose class is Latin)
    mapped = "".join(prototypes.get(ch, ch) for ch in unicodedata.normalize("NFKD", mapped.casefold()))
    return " ".join(mapped.split())
