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
    """Each character with look-alikes → one representative of its class: an ASCII lower-case letter where the
    class has one (so case folding and look-alike mapping agree: O, 0 and Cyrillic О all become o), else ASCII."""
    from confusable_homoglyphs import confusables

    def preference(c: str) -> tuple:
        return (not c.isascii(), not (c.isalpha() and c.islower()), not c.isalpha(), len(c), c)

    prototypes: dict[str, str] = {}
    for char, homoglyphs in confusables.confusables_data.items():
        prototypes[char] = min({char, *(h["c"] for h in homoglyphs)}, key=preference)
    return prototypes


def skeleton(value: str) -> str:
    """A key under which look-alike names collide: look-alikes mapped to one prototype, case folded, twice
    (a prototype may fold to a character that has a prototype of its own), spaces collapsed."""
    prototypes = _prototypes()
    text = unicodedata.normalize("NFKC", value)
    for _ in range(2):
        text = unicodedata.normalize("NFKD", "".join(prototypes.get(ch, ch) for ch in text).casefold())
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return " ".join(text.split())
