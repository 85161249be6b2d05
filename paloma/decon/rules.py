"""Which evaluation paragraphs go into a contamination index: named, versioned rule sets (reference §5).

A paragraph is the text between two newlines. It is *eligible* when it has at least `min_words` (13) UAX #29
word segments that are not whitespace, and is not made only of punctuation, whitespace and emoji. What
"whitespace" and "punctuation" mean is where implementations differ, so the choices are named rule sets:

* `dolma` (the default) reproduces AI2's Dolma pipeline as run for the Paloma baselines (dolma 1.2.1:
  taggers `uniseg_length_paragraphs_with_empty_v1` and `not_alphanum_paragraph_v1`, then span replacement):
  the word count is `sum(1 for w in words(p.strip()) if w.strip())` with Python's `str.strip`, which also
  strips U+001C–U+001F; a paragraph is "not content" when it has no ASCII letter or digit and matches the
  `regex` module's `^([[:punct:]]|\\s|[emoji blocks]+)+$`. `[[:punct:]]` covers every P* and S* character
  (math, currency, modifier and other symbols, box drawing) except alphabetic ones, and the emoji blocks lack
  U+FE0F and U+200D, so emoji sequences with them are content. Code *sources* are left out, code domains of
  prose sources (`dolma-v1_5/stack_uniform`) are indexed, as AI2's configuration did.
* `strict` is the reference's rules with two corrections that paloma judges better (docs/decon.md): every
  part of an emoji sequence (U+FE0F, U+200D, keycaps, tags, skin tones, regional indicators, and
  Extended_Pictographic characters even where Unicode calls them alphabetic, like Ⓜ) counts as emoji, so
  `❤️ ❤️ …` and `👩‍💻 👩‍💻 …` lines are not indexed; and code domains of prose sources are left out like code
  sources. Word counting and "punctuation" (P* and S*, U+001C–U+001F as whitespace) are Dolma's: paloma's
  earlier rules counted those separators as words and indexed symbol-only lines (`───`, `→ ∑ ±`, `€ €`), which
  are decorative in web text and removed training documents that merely share a separator line.

Segmenting every paragraph with a pure-Python UAX #29 implementation costs about 10 µs per character, far too
slow for millions of paragraphs, so `count_reaches` decides "at least k segments" exactly without it where it
can: ASCII paragraphs are counted by a regular expression that implements the few UAX #29 rules that apply to
ASCII; other paragraphs are decided by two bounds, and only those that fall between them are segmented, a
prefix at a time, stopping as soon as k segments are seen:

* upper bound: a counted segment holds at least one non-whitespace character, so a paragraph with fewer than
  k non-whitespace characters has fewer than k segments;
* lower bound: UAX #29 always breaks before a whitespace character that follows a non-whitespace one (no
  whitespace character is Extend, Format, ZWJ or a letter/number class that rules WB5–WB13b join), so no
  segment spans two whitespace-separated tokens and each token owns at least one counted segment. The count
  of tokens is therefore a lower bound. U+202F NARROW NO-BREAK SPACE is the one exception (it is
  ExtendNumLet and glues words together); paragraphs containing it are always segmented.
* prefixes: UAX #29 breaks before every character of class Other (ideographs, Thai, controls, most symbols)
  that is not Extended_Pictographic, and no rule looks past it, so the segments before such a character are
  the same in the prefix and in the whole paragraph. Counting the segments of growing prefixes that end there
  is exact, and a CJK paragraph without spaces is decided after about 4·k characters instead of all of them.

`tests/test_decon_rules.py` checks the bounds and the prefix counts against full segmentation on random
mixed-script text, for both rule sets.
"""

from __future__ import annotations

import importlib.metadata
import itertools
import re
import string
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

import regex
import uniseg
from uniseg.emoji import extended_pictographic
from uniseg.wordbreak import WordBreak, word_break, words

from paloma.errors import PalomaError

DEFAULT_MIN_WORDS = 13
DEFAULT_RULES = "dolma"

# Unicode's White_Space property (stable since Unicode 6.3). Python's str.isspace also accepts U+001C..U+001F,
# which Unicode does not call whitespace, so the set is spelled out rather than borrowed from str.isspace.
WHITESPACE = frozenset(
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u2028\u2029\u202f\u205f\u3000"
)
# What Python's str.strip and str.isspace treat as whitespace, as Dolma's word count does.
PYTHON_WHITESPACE = WHITESPACE | frozenset("\x1c\x1d\x1e\x1f")
NARROW_NO_BREAK_SPACE = "\u202f"

# Characters that belong to emoji sequences without being pictographs themselves: zero-width joiner,
# variation selectors 15/16, the combining keycap, skin-tone modifiers, regional indicators and tag characters.
_EMOJI_PARTS = frozenset(
    ["\u200d", "\ufe0e", "\ufe0f", "\u20e3"]
    + [chr(c) for c in range(0x1F3FB, 0x1F400)]
    + [chr(c) for c in range(0x1F1E6, 0x1F200)]
    + [chr(c) for c in range(0xE0020, 0xE0080)]
)
_ASCII_PUNCTUATION = frozenset(string.punctuation)

# Dolma 1.2.1's `not_alphanum_paragraph_v1`, as written there (the `regex` module, not `re`): a paragraph is
# dropped when it has no ASCII letter or digit and is made only of [[:punct:]], \s and four emoji blocks.
# `strict` uses the same character class, one character at a time, plus every emoji part.
_DOLMA_HAS_ALPHANUM = regex.compile(r"[a-zA-Z0-9]", regex.UNICODE)
_DOLMA_ALL_PUNCTUATION = regex.compile(
    r"^([[:punct:]]|\s|[\U0001f300-\U0001f64f\U0001f680-\U0001f6ff\u2600-\u26ff\u2700-\u27bf]+)+$", regex.UNICODE
)
_DOLMA_NOT_CONTENT_CHAR = regex.compile(
    r"[[:punct:]]|\s|[\U0001f300-\U0001f64f\U0001f680-\U0001f6ff\u2600-\u26ff\u2700-\u27bf]", regex.UNICODE
)


def _char_class(chars: frozenset[str]) -> str:
    return re.escape("".join(sorted(chars)))


@dataclass(frozen=True)
class _Segmenter:
    """Exact "at least k UAX #29 word segments that are not whitespace", for one notion of whitespace."""

    whitespace: frozenset[str]
    strip_first: bool  # segment `p.strip()` (Dolma) rather than `p`

    # (kept general: the bounds and the prefix rule hold for any whitespace set whose characters UAX #29
    # breaks before, which tests/test_decon_rules.py checks for Unicode's and Python's)

    def __post_init__(self) -> None:
        ws = _char_class(self.whitespace)
        ascii_ws = _char_class(frozenset(c for c in self.whitespace if c.isascii()))
        object.__setattr__(self, "_token", re.compile(f"[^{ws}]+"))
        object.__setattr__(self, "_non_ws_char", re.compile(f"[^{ws}]"))
        # UAX #29 restricted to ASCII, where only a few word-break classes occur: letters (ALetter) and digits
        # (Numeric) join each other and "_" (ExtendNumLet); ":" (MidLetter) joins two letters, "," and ";"
        # (MidNum) join two digits, "." and "'" (MidNumLet, Single_Quote) join two letters or two digits
        # (WB5-WB13b); every other character that is not whitespace is a segment of its own.
        pattern = (
            r"[A-Za-z0-9_]+(?:(?:(?<=[A-Za-z])[:.'](?=[A-Za-z])|(?<=[0-9])[.,;'](?=[0-9]))[A-Za-z0-9_]+)*"
            f"|[^{ascii_ws}]"
        )
        object.__setattr__(self, "_ascii_segment", re.compile(pattern))

    def prepare(self, text: str) -> str:
        return text.strip() if self.strip_first else text

    def is_whitespace(self, segment: str) -> bool:
        return all(ch in self.whitespace for ch in segment)

    def segments(self, text: str) -> list[str]:
        """UAX #29 word segments that count (the full, slow computation)."""
        return [seg for seg in words(self.prepare(text)) if not self.is_whitespace(seg)]

    def count(self, text: str) -> int:
        return len(self.segments(text))

    def reaches(self, text: str, k: int) -> bool:
        """Exactly `self.count(text) >= k`, usually without segmenting (see the module docstring)."""
        if k <= 0:
            return True
        text = self.prepare(text)
        if len(text) < k:
            return False
        if text.isascii():
            return len(self._ascii_segment.findall(text)) >= k
        if NARROW_NO_BREAK_SPACE not in text and len(self._token.findall(text)) >= k:
            return True
        if len(self._non_ws_char.findall(text)) < k:
            return False
        return self._prefix_count_reaches(text, k)

    def _prefix_count_reaches(self, text: str, k: int) -> bool:
        """Segment prefixes that end before a safe character, growing fourfold, until k segments are seen."""
        size = 4 * k
        while size < len(text):
            cut = _safe_cut(text, size)
            if cut is None:
                break
            if sum(1 for seg in words(text[:cut]) if not self.is_whitespace(seg)) >= k:
                return True
            size = 4 * cut
        return sum(1 for seg in words(text) if not self.is_whitespace(seg)) >= k


def _safe_cut(text: str, start: int) -> int | None:
    """The first position ≥ start before which UAX #29 breaks whatever follows (see the module docstring)."""
    for position in range(max(start, 1), len(text)):
        ch = text[position]
        kind = word_break(ch)
        if kind is WordBreak.OTHER and not extended_pictographic(ch):
            return position
        if kind is WordBreak.WSEGSPACE and word_break(text[position - 1]) is not WordBreak.WSEGSPACE:
            return position
    return None


@lru_cache(maxsize=65536)
def _strict_ignorable_char(ch: str) -> bool:
    """Punctuation, symbol, whitespace or part of an emoji: characters that alone do not make content."""
    return (
        ch in PYTHON_WHITESPACE
        or bool(_DOLMA_NOT_CONTENT_CHAR.fullmatch(ch))
        or ch in _EMOJI_PARTS
        or extended_pictographic(ch)
    )


@dataclass(frozen=True)
class RuleSet:
    """A named, versioned set of eligibility rules; its `describe()` goes into every index header."""

    name: str
    version: int
    min_words: int
    segmenter: _Segmenter
    excludes_code_domains: bool  # also leave out code domains of prose sources (not only code sources)

    def count_reaches(self, paragraph: str, k: int | None = None) -> bool:
        return self.segmenter.reaches(paragraph, self.min_words if k is None else k)

    def count_words(self, paragraph: str) -> int:
        return self.segmenter.count(paragraph)

    def only_punctuation_whitespace_emoji(self, paragraph: str) -> bool:
        if self.name == "dolma":
            return not _DOLMA_HAS_ALPHANUM.search(paragraph) and bool(_DOLMA_ALL_PUNCTUATION.search(paragraph))
        return all(_strict_ignorable_char(ch) for ch in paragraph)

    def is_eligible(self, paragraph: str) -> bool:
        return self.count_reaches(paragraph) and not self.only_punctuation_whitespace_emoji(paragraph)

    def describe(self) -> dict:
        """The rules and the Unicode data behind them, recorded in every index header and filter report."""
        common = {
            "name": self.name,
            "version": self.version,
            "parameters": {"min_words": self.min_words, "excludes_code_domains": self.excludes_code_domains},
            "paragraph": 'text between "\\n" characters, matched as the raw string',
            "min_words": self.min_words,
            "uniseg_version": importlib.metadata.version("uniseg"),
            "uniseg_unicode_version": uniseg.unidata_version,
            "python_unicode_version": unicodedata.unidata_version,
        }
        if self.name == "dolma":
            return {
                **common,
                "reference": "dolma 1.2.1: uniseg_length_paragraphs_with_empty_v1 (score <= 12 replaced), "
                "not_alphanum_paragraph_v1 (all_punct replaced), as configured for the Paloma baselines",
                "word_segments": "UAX #29 word boundaries (uniseg) of p.strip(); segments s with s.strip() == '' "
                "not counted (Python whitespace, U+001C-U+001F included)",
                "excluded": "paragraphs without [a-zA-Z0-9] that match ^([[:punct:]]|\\s|[\\U0001f300-\\U0001f64f"
                "\\U0001f680-\\U0001f6ff\\u2600-\\u26ff\\u2700-\\u27bf]+)+$ (regex module: P* and S*)",
                "regex_version": importlib.metadata.version("regex"),
            }
        return {
            **common,
            "word_segments": "as dolma: UAX #29 word boundaries (uniseg) of p.strip(); segments s with s.strip() == ''"
            " not counted",
            "excluded": "paragraphs made only of characters of dolma's class ([[:punct:]], \\s, its emoji blocks) and "
            "emoji parts (Extended_Pictographic, skin-tone modifiers, regional indicators, ZWJ, VS15/16, keycap, "
            "tags); code domains of prose sources left out as well",
            "regex_version": importlib.metadata.version("regex"),
        }


RULE_SETS = ("dolma", "strict")
_VERSIONS = {"dolma": 1, "strict": 1}


@lru_cache(maxsize=64)
def rule_set(name: str = DEFAULT_RULES, min_words: int = DEFAULT_MIN_WORDS) -> RuleSet:
    """The rule set called `name` (`dolma` or `strict`) with its word threshold."""
    if name not in RULE_SETS:
        raise PalomaError(f"unknown rule set {name!r} (choose from {', '.join(RULE_SETS)})")
    if min_words < 1:
        raise PalomaError(f"--min-words must be at least 1, got {min_words}")
    segmenter = _Segmenter(whitespace=PYTHON_WHITESPACE, strip_first=True)  # both count words as Dolma does
    return RuleSet(name, _VERSIONS[name], min_words, segmenter, excludes_code_domains=name == "strict")


# ---- module-level helpers (the default rule set unless told otherwise) -----------------------------------
def is_whitespace_segment(segment: str) -> bool:
    """Made only of Unicode White_Space (the training side skips such paragraphs under every rule set)."""
    return all(ch in WHITESPACE for ch in segment)


def word_segments(text: str, rules: str = DEFAULT_RULES) -> list[str]:
    """UAX #29 word segments of `text` that count under a rule set (the full, slow computation)."""
    return rule_set(rules).segmenter.segments(text)


def count_word_segments(text: str, rules: str = DEFAULT_RULES) -> int:
    return len(word_segments(text, rules))


def count_reaches(text: str, k: int, rules: str = DEFAULT_RULES) -> bool:
    """Exactly `count_word_segments(text, rules) >= k`, usually without segmenting."""
    return rule_set(rules).segmenter.reaches(text, k)


def only_punctuation_whitespace_emoji(text: str, rules: str = DEFAULT_RULES) -> bool:
    return rule_set(rules).only_punctuation_whitespace_emoji(text)


def is_eligible(paragraph: str, min_words: int = DEFAULT_MIN_WORDS, rules: str = DEFAULT_RULES) -> bool:
    """Whether an evaluation paragraph goes into the index under a rule set (default: Dolma's)."""
    return rule_set(rules, min_words).is_eligible(paragraph)


MATCH_MODES = ("exact", "normalised", "ngram")
_TOKEN = re.compile(f"[^{_char_class(WHITESPACE)}]+")


def normalise(text: str) -> str:
    """The opt-in normalised form: whitespace runs collapsed to one space, ends trimmed, case folded.

    Matching normalised forms removes every document the reference (exact) rule removes and more, so it is
    stricter than the reference; results obtained with it are not the reference decontamination.
    """
    return " ".join(_TOKEN.findall(text)).casefold()


def match_key(paragraph: str, match: str) -> str:
    """The string that is hashed for a paragraph (or, under `ngram`, an n-gram's text) under a match mode."""
    if match == "ngram":
        return " ".join(ngram_words(paragraph))
    return paragraph if match == "exact" else normalise(paragraph)


# ---- n-gram overlap (GPT-3, The Pile, lm-evaluation-harness) ----------------------------------------------
DEFAULT_NGRAM = 13
NGRAM_NORMALISATION = (
    "str.lower(), then every character of Unicode categories P* and S* (punctuation and symbols, the `regex` "
    "module's \\p{P} and \\p{S}) replaced by a space, then words = str.split() (runs of Unicode whitespace); "
    "an n-gram is n consecutive words joined by single spaces, hashed as UTF-8"
)
_PUNCTUATION_OR_SYMBOL = regex.compile(r"[\p{P}\p{S}]")


def ngram_words(text: str) -> list[str]:
    """The normalised words of a text for n-gram matching: lower case, punctuation and symbols as spaces.

    This is the normalisation of GPT-3's and The Pile's 13-gram decontamination (lower case, punctuation
    dropped, whitespace-separated words), with "punctuation" read as Unicode P* and S* so that ASCII gives
    exactly `string.punctuation`. The whole document is one sequence: n-grams span paragraphs.
    """
    return _PUNCTUATION_OR_SYMBOL.sub(" ", text.lower()).split()


# ASCII's P* and S* characters are exactly string.punctuation; U+001C-U+001F are whitespace to str.split()
# but not to bytes.split(), so the ASCII path turns them into spaces too.
_ASCII_NOT_WORD = bytes.maketrans(
    (string.punctuation + "\x1c\x1d\x1e\x1f").encode("ascii"), b" " * (len(string.punctuation) + 4)
)


def ngram_keys(text: str, n: int) -> list[bytes]:
    """Every run of `n` consecutive normalised words of `text`, joined by single spaces, as UTF-8 bytes.

    The words are joined once and each n-gram is a slice of those bytes, not a new join per n-gram. ASCII text
    (most web text) is normalised as bytes in C (`bytes.translate`, `bytes.split`), with the same result.
    """
    if text.isascii():
        words: list = text.lower().encode("ascii").translate(_ASCII_NOT_WORD).split()
        if len(words) < n:
            return []
        data = b" ".join(words)
        sizes: Iterable[int] = map(len, words)
    else:
        words = ngram_words(text)
        if len(words) < n:
            return []
        joined = " ".join(words)
        data = joined.encode("utf-8", "surrogatepass")
        ascii_words = len(data) == len(joined)
        sizes = map(len, words) if ascii_words else (len(w.encode("utf-8", "surrogatepass")) for w in words)
    starts = [0, *itertools.accumulate(size + 1 for size in sizes)]  # starts[i]: byte where word i begins
    return [data[a : b - 1] for a, b in zip(starts, starts[n:], strict=False)]
