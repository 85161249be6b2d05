"""Paragraph eligibility: UAX #29 word segments (whitespace not counted), 13-word threshold, punctuation/emoji."""

from __future__ import annotations

import random

import pytest
from uniseg.wordbreak import words

from paloma.decon import rules
from tests.decon_data import SHORT_12, SHORT_13


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        # punctuation marks are segments of their own; whitespace segments are not counted
        ("Hello, world.", ["Hello", ",", "world", "."]),
        # precomposed and combining accents stay inside their word (WB4: Extend attaches to the letter)
        ("Café naïve résumé", ["Café", "naïve", "résumé"]),
        ("Cafe\u0301 cre\u0300me", ["Cafe\u0301", "cre\u0300me"]),
        ("Straße über Äpfel", ["Straße", "über", "Äpfel"]),
        # ideographs and hiragana are one segment each; a katakana run is one segment (WB13)
        ("日本語のテキスト", ["日", "本", "語", "の", "テキスト"]),
        ("한국어 텍스트", ["한국어", "텍스트"]),
        # Thai has no dictionary in default UAX #29: every letter is a segment
        ("ภาษาไทย", ["ภ", "า", "ษ", "า", "ไ", "ท", "ย"]),
        # emoji with a skin tone, a ZWJ family and two flags (WB3c, WB4, WB15/16)
        ("👍🏽 👨\u200d👩\u200d👧 🇫🇷🇩🇪", ["👍🏽", "👨\u200d👩\u200d👧", "🇫🇷", "🇩🇪"]),
        # numbers with separators and contractions are single segments (WB6/7, WB11/12)
        ("don't pay 1,000.50 now", ["don't", "pay", "1,000.50", "now"]),
        # U+202F joins words (ExtendNumLet) although it is whitespace; U+00A0 does not
        ("10\u202fkm a\u00a0b", ["10\u202fkm", "a", "b"]),
        ("", []),
        (" \t\u3000 ", []),
    ],
)
def test_word_segments_follow_uax29(text: str, segments: list[str]) -> None:
    assert rules.word_segments(text) == segments
    assert rules.count_word_segments(text) == len(segments)


def test_twelve_words_are_not_eligible_and_thirteen_are() -> None:
    assert rules.count_word_segments(SHORT_12) == 12
    assert rules.count_word_segments(SHORT_13) == 13
    assert not rules.is_eligible(SHORT_12)
    assert rules.is_eligible(SHORT_13)
    assert rules.is_eligible(SHORT_12, min_words=12)


def test_cjk_paragraph_counts_characters_not_spaces() -> None:
    # 13 ideographs without a single space: 13 segments, so eligible although whitespace splitting finds one word
    text = "我们今天在公园里散步看到很多花"[:13]
    assert len(text.split()) == 1
    assert rules.count_word_segments(text) == 13
    assert rules.is_eligible(text)
    assert not rules.is_eligible(text[:12])


@pytest.mark.parametrize(
    "text",
    [
        "!!! ... ??? --- ;;; ::: ,,, ... !!! ??? --- ;;; :::",
        "👍 🎉 😀 👍 🎉 😀 👍 🎉 😀 👍 🎉 😀 👍 🎉",
        "« » ¿ ¡ — – … · ‘ ’ “ ” 「 」 『 』 、 。 ！ ？",
        "🇫🇷 🇩🇪 👨\u200d👩\u200d👧 ❤\ufe0f 👍🏽 🎉 🎉 🎉 🎉 🎉 🎉 🎉 🎉 🎉",
        "$ + = < > ^ ` | ~ % & * # @ ! ? . , ; :",
    ],
)
def test_punctuation_whitespace_and_emoji_only_paragraphs_are_not_eligible(text: str) -> None:
    assert rules.count_word_segments(text) >= 13
    assert rules.only_punctuation_whitespace_emoji(text)
    assert not rules.is_eligible(text)


def test_one_letter_or_digit_makes_a_paragraph_content() -> None:
    text = "!!! ... ??? --- ;;; ::: ,,, ... !!! ??? --- ;;; ::: a"
    assert not rules.only_punctuation_whitespace_emoji(text)
    assert rules.is_eligible(text)
    assert rules.is_eligible("1 2 3 4 5 6 7 8 9 10 11 12 13")


def test_every_whitespace_character_starts_a_new_segment() -> None:
    """The lower bound in count_reaches relies on UAX #29 breaking before every whitespace character but U+202F."""
    before = ["a", "Z", "1", ".", "'", "_", "日", "カ", "\u05d0", "\u0627", "\u0301", "\u200d", "👍", "🇫", "\u00ad"]
    for space in sorted(rules.WHITESPACE - {rules.NARROW_NO_BREAK_SPACE}):
        for left in before:
            for right in ("a", "1", "\u0301"):
                text = left + space + right
                boundaries, position = set(), 0
                for segment in words(text):
                    position += len(segment)
                    boundaries.add(position)
                assert len(left) in boundaries, (left, hex(ord(space)), list(words(text)))
    # the one exception, which is why count_reaches segments every paragraph that contains it
    assert list(words("a\u202fb")) == ["a\u202fb"]


def test_fast_count_bound_agrees_with_full_segmentation() -> None:
    """count_reaches(text, k) must equal count_word_segments(text) >= k on arbitrary, tricky text."""
    letters = "aZé1٣.,:;'\"-_ \t\u00a0\u3000\u202f\u200d\u200b\u0301\ufe0f日本カタひらが한국ภไ"
    extras = ["👍", "🏽", "🇫", "🇷", "\u20e3", "\u05d0", "\u05f3", "\u0627", "\u2060", "’", " word ", "  "]
    pool = [*letters, *extras]
    rng = random.Random(1234)
    for _ in range(1500):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 40)))
        count = rules.count_word_segments(text)
        for k in (1, 5, 13, count, count + 1):
            assert rules.count_reaches(text, k) == (count >= k), (text, k, count)


def test_normalised_key_folds_case_and_whitespace_only() -> None:
    assert rules.normalise("  The\tQuick\u00a0 BROWN  fox ") == "the quick brown fox"
    assert rules.match_key("  A  b ", "exact") == "  A  b "
    assert rules.normalise("Straße") == rules.normalise("STRASSE")


def test_ascii_fast_path_agrees_with_full_segmentation() -> None:
    """ASCII paragraphs are counted by a regular expression; it must agree with UAX #29 on every ASCII mix."""
    pool = [*"aZ09_.,;:'\" \t-!?()@#\x1c\x7f\x0b", "word", "U.S.A", "3.14", "1,000", "don't", "a_b", "  "]
    rng = random.Random(99)
    for _ in range(3000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 30)))
        count = rules.count_word_segments(text)
        assert rules.count_reaches(text, count) and not rules.count_reaches(text, count + 1), (text, count)
