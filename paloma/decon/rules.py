"""Which evaluation paragraphs go into a contamination index (the Paloma rules, reference §5).

A paragraph is the text between two newlines. It is *eligible* when it has at least `min_words` (13) UAX #29
word segments that are not whitespace, and is not made only of punctuation, whitespace and emoji.

Segmenting every paragraph with a pure-Python UAX #29 implementation costs about 10 µs per character, far too
slow for millions of paragraphs, so `count_reaches` decides "at least k segments" exactly: ASCII paragraphs are
counted by a regular expression that implements the few UAX #29 rules that apply to ASCII; other paragraphs
are decided by two bounds, and only those that fall between them are segmented:

* upper bound: a counted segment holds at least one non-whitespace character, so a paragraph with fewer than
  k non-whitespace characters has fewer than k segments;
* lower bound: UAX #29 always breaks before a whitespace character (none of them is Extend, Format, ZWJ or a
  letter/number class that rules WB5–WB13b join), so no segment spans two whitespace-separated tokens and
  each token owns at least one segment that is not whitespace. The count of tokens is therefore a lower
  bound. U+202F NARROW NO-BREAK SPACE is the one exception (it is ExtendNumLet and glues words together);
  paragraphs containing it are always segmented.

`tests/test_decon_rules.py` checks both bounds against full segmentation, and the break-before-whitespace
claim for every whitespace character.
"""

from __future__ import annotations

import importlib.metadata
import re
import string
import unicodedata
from functools import lru_cache

import uniseg
from uniseg.emoji import extended_pictographic
from uniseg.wordbreak import words

DEFAULT_MIN_WORDS = 13

# Unicode's White_Space property (stable since Unicode 6.3). Python's str.isspace also accepts U+001C..U+001F,
# which Unicode does not call whitespace, so the set is spelled out rather than borrowed from str.isspace.
WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
NARROW_NO_BREAK_SPACE = "\u202f"
_WS_CLASS = "".join(sorted(WHITESPACE))
_TOKEN = re.compile(f"[^{re.escape(_WS_CLASS)}]+")
_NON_WS_CHAR = re.compile(f"[^{re.escape(_WS_CLASS)}]")
# UAX #29 restricted to ASCII, where only a few word-break classes occur: letters (ALetter) and digits
# (Numeric) join each other and "_" (ExtendNumLet); ":" (MidLetter) joins two letters, "," and ";" (MidNum)
# join two digits, "." and "'" (MidNumLet, Single_Quote) join two letters or two digits (WB5-WB13b); every
# other non-whitespace character is a segment of its own. Exact for ASCII text (tested against uniseg).
_ASCII_SEGMENT = re.compile(
    r"[A-Za-z0-9_]+(?:(?:(?<=[A-Za-z])[:.'](?=[A-Za-z])|(?<=[0-9])[.,;'](?=[0-9]))[A-Za-z0-9_]+)*"
    r"|[^\t\n\x0b\x0c\r ]"
)

# Characters that belong to emoji sequences without being pictographs themselves: zero-width joiner,
# variation selectors 15/16, the combining keycap, skin-tone modifiers, regional indicators and tag characters.
_EMOJI_PARTS = frozenset(
    ["\u200d", "\ufe0e", "\ufe0f", "\u20e3"]
    + [chr(c) for c in range(0x1F3FB, 0x1F400)]
    + [chr(c) for c in range(0x1F1E6, 0x1F200)]
    + [chr(c) for c in range(0xE0020, 0xE0080)]
)
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def rules_description(min_words: int = DEFAULT_MIN_WORDS) -> dict:
    """The eligibility rules and the Unicode data behind them, recorded in every index header."""
    return {
        "paragraph": 'text between "\\n" characters, matched as the raw string',
        "min_words": min_words,
        "word_segments": "UAX #29 word boundaries (uniseg); segments made only of Unicode White_Space not counted",
        "excluded": "paragraphs made only of punctuation (Unicode P* or ASCII punctuation), whitespace and emoji "
        "(Extended_Pictographic, skin-tone modifiers, regional indicators, ZWJ, VS15/16, keycap, tags)",
        "uniseg_version": importlib.metadata.version("uniseg"),
        "uniseg_unicode_version": uniseg.unidata_version,
        "python_unicode_version": unicodedata.unidata_version,
    }


def is_whitespace_segment(segment: str) -> bool:
    return all(ch in WHITESPACE for ch in segment)


def word_segments(text: str) -> list[str]:
    """UAX #29 word segments of `text` that are not whitespace (the full, slow computation)."""
    return [seg for seg in words(text) if not is_whitespace_segment(seg)]


def count_word_segments(text: str) -> int:
    return len(word_segments(text))


def count_reaches(text: str, k: int) -> bool:
    """Exactly `count_word_segments(text) >= k`, usually without segmenting (see the module docstring)."""
    if k <= 0:
        return True
    if len(text) < k:
        return False
    if text.isascii():
        return len(_ASCII_SEGMENT.findall(text)) >= k
    if NARROW_NO_BREAK_SPACE not in text and len(_TOKEN.findall(text)) >= k:
        return True
    if len(_NON_WS_CHAR.findall(text)) < k:
        return False
    return count_word_segments(text) >= k


@lru_cache(maxsize=65536)
def is_ignorable_char(ch: str) -> bool:
    """Punctuation, whitespace or part of an emoji: characters that alone do not make a paragraph content."""
    return (
        ch in WHITESPACE
        or ch in _ASCII_PUNCTUATION
        or unicodedata.category(ch).startswith("P")
        or ch in _EMOJI_PARTS
        or extended_pictographic(ch)
    )


def only_punctuation_whitespace_emoji(text: str) -> bool:
    """True when every character is punctuation, whitespace or emoji (early exit on the first other one)."""
    return all(is_ignorable_char(ch) for ch in text)


def is_eligible(paragraph: str, min_words: int = DEFAULT_MIN_WORDS) -> bool:
    """Whether an evaluation paragraph goes into the index under the reference rules."""
    return count_reaches(paragraph, min_words) and not only_punctuation_whitespace_emoji(paragraph)


MATCH_MODES = ("exact", "normalised")


def normalise(text: str) -> str:
    """The opt-in normalised form: whitespace runs collapsed to one space, ends trimmed, case folded.

    Matching normalised forms removes every document the reference (exact) rule removes and more, so it is
    stricter than the reference; results obtained with it are not the reference decontamination.
    """
    return " ".join(_TOKEN.findall(text)).casefold()


def match_key(paragraph: str, match: str) -> str:
    """The string that is hashed for a paragraph under a match mode."""
    return paragraph if match == "exact" else normalise(paragraph)
