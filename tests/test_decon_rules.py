"""Paragraph eligibility under both rule sets: UAX #29 word segments, the 13-word threshold, punctuation/emoji.

The table of rule cases (tests/decon_data.py) carries dolma 1.2.1's observed decision for each paragraph, so
these tests check the `dolma` rule set against the reference without dolma installed.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from uniseg.wordbreak import words

from paloma.decon import build_index, rules
from paloma.decon.filter import filter_files
from tests.decon_data import (
    CLEAN,
    EVAL_WIKI,
    RULE_CASES,
    SHORT_12,
    SHORT_13,
    TRAINING_CASES,
    RuleCase,
    TrainingCase,
    write_jsonl_gz,
)


@pytest.mark.parametrize("case", RULE_CASES, ids=[c.name for c in RULE_CASES])
def test_each_rule_set_decides_each_case_as_recorded(case: RuleCase) -> None:
    assert rules.rule_set("dolma").is_eligible(case.paragraph) == case.dolma, case.why
    assert rules.rule_set("strict").is_eligible(case.paragraph) == case.strict, case.why
    assert rules.is_eligible(case.paragraph) == case.dolma  # dolma is the default


def test_rule_cases_end_to_end_remove_exactly_the_training_documents_dolma_removed(tmp_path: Path) -> None:
    """Each case as an evaluation document and as a training document between two clean paragraphs."""
    records = [{"text": f"A title\n{c.paragraph}\nThe end.", "id": c.name} for c in RULE_CASES]
    write_jsonl_gz(tmp_path / "paloma" / "c4_en" / "val" / "val-0.jsonl.gz", records)
    training = [{"id": c.name, "text": f"{CLEAN[0]}\n{c.paragraph}\n{CLEAN[1]}"} for c in RULE_CASES]
    write_jsonl_gz(tmp_path / "train" / "shard.jsonl.gz", training)
    for name in rules.RULE_SETS:
        index = build_index(tmp_path / "paloma", rule_set=name, progress=False).save(tmp_path / f"{name}.decon")
        filter_files(index, [tmp_path / "train"], tmp_path / f"out-{name}", progress=False)
        removed = {r["id"] for r in _read(tmp_path / f"out-{name}" / "removed" / "shard.jsonl.gz")}
        assert removed == {c.name for c in RULE_CASES if getattr(c, name)}, name


@pytest.fixture(scope="module")
def wiki_index(tmp_path_factory: pytest.TempPathFactory):
    """An index of the one paragraph EVAL_WIKI, which every training case carries in some form."""
    folder = tmp_path_factory.mktemp("wiki")
    write_jsonl_gz(folder / "paloma" / "c4_en" / "val" / "val-0.jsonl.gz", [{"text": EVAL_WIKI, "id": "w"}])
    return build_index(folder / "paloma", progress=False)


@pytest.mark.parametrize("case", TRAINING_CASES, ids=[c.name for c in TRAINING_CASES])
def test_training_documents_are_decided_as_dolma_decided(case: TrainingCase, wiki_index) -> None:
    assert wiki_index.is_contaminated(case.text) == case.dolma, case.why


def _read(path: Path) -> list[dict]:
    import gzip
    import json

    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_dolma_whitespace_is_what_python_strips() -> None:
    assert frozenset(chr(c) for c in range(0x110000) if chr(c).isspace()) == rules.PYTHON_WHITESPACE
    assert frozenset("\x1c\x1d\x1e\x1f") == rules.PYTHON_WHITESPACE - rules.WHITESPACE


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
    for name in rules.RULE_SETS:
        assert rules.word_segments(text, name) == segments
        assert rules.count_word_segments(text, name) == len(segments)


def test_separators_u001c_to_u001f_are_whitespace_as_python_strips_them() -> None:
    text = "a\x1cb\x1dc \x1e d\x1f"
    for name in rules.RULE_SETS:
        assert rules.word_segments(text, name) == ["a", "b", "c", "d"]


def test_twelve_words_are_not_eligible_and_thirteen_are() -> None:
    for name in rules.RULE_SETS:
        assert rules.count_word_segments(SHORT_12, name) == 12
        assert rules.count_word_segments(SHORT_13, name) == 13
        assert not rules.is_eligible(SHORT_12, rules=name)
        assert rules.is_eligible(SHORT_13, rules=name)
        assert rules.is_eligible(SHORT_12, min_words=12, rules=name)


def test_cjk_paragraph_counts_characters_not_spaces() -> None:
    # 13 ideographs without a single space: 13 segments, so eligible although whitespace splitting finds one word
    text = "我们今天在公园里散步看到很多花"[:13]
    assert len(text.split()) == 1
    for name in rules.RULE_SETS:
        assert rules.count_word_segments(text, name) == 13
        assert rules.is_eligible(text, rules=name)
        assert not rules.is_eligible(text[:12], rules=name)


def test_long_unspaced_paragraphs_are_decided_from_a_short_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    """Segmentation stops soon after 13 segments are seen: a 10,000-character CJK paragraph costs a prefix."""
    segmented: list[int] = []
    real_words = rules.words

    def counting_words(text: str):
        segmented.append(len(text))
        return real_words(text)

    monkeypatch.setattr(rules, "words", counting_words)
    text = "我们今天在公园里散步看到很多花。" * 625
    for name in rules.RULE_SETS:
        segmented.clear()
        assert rules.count_reaches(text, 13, name)
        assert segmented and max(segmented) < 100, segmented
    segmented.clear()
    assert not rules.count_reaches("カ" * 5000, 2, "dolma")  # one katakana word: no safe cut, full segmentation
    assert segmented == [5000]


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
def test_punctuation_whitespace_and_emoji_only_paragraphs_are_not_eligible_in_strict(text: str) -> None:
    assert rules.count_word_segments(text, "strict") >= 13
    assert rules.only_punctuation_whitespace_emoji(text, "strict")
    assert not rules.is_eligible(text, rules="strict")


def test_dolma_punctuation_is_every_p_and_s_character_but_not_vs16_or_zwj() -> None:
    import unicodedata

    dolma = rules.rule_set("dolma")
    for ch in "!«—€→─˘©🤔🏽🇫":  # Po Pi Pd Sc Sm So Sk So So Sk So
        assert dolma.only_punctuation_whitespace_emoji(ch * 3), (ch, unicodedata.category(ch))
    for ch in ("\ufe0f", "\u200d", "\u20e3", "Ⓜ", "x", "λ", "１"):
        assert not dolma.only_punctuation_whitespace_emoji("!" + ch + "!"), hex(ord(ch))


def test_one_letter_or_digit_makes_a_paragraph_content() -> None:
    text = "!!! ... ??? --- ;;; ::: ,,, ... !!! ??? --- ;;; ::: a"
    for name in rules.RULE_SETS:
        assert not rules.only_punctuation_whitespace_emoji(text, name)
        assert rules.is_eligible(text, rules=name)
        assert rules.is_eligible("1 2 3 4 5 6 7 8 9 10 11 12 13", rules=name)


def test_every_whitespace_character_starts_a_new_segment() -> None:
    """The lower bound in count_reaches relies on UAX #29 breaking before every whitespace character but U+202F."""
    before = ["a", "Z", "1", ".", "'", "_", "日", "カ", "\u05d0", "\u0627", "\u0301", "\u200d", "👍", "🇫", "\u00ad"]
    for space in sorted(rules.PYTHON_WHITESPACE - {rules.NARROW_NO_BREAK_SPACE}):
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


@pytest.mark.parametrize("name", rules.RULE_SETS)
def test_fast_count_agrees_with_full_segmentation_on_mixed_script_text(name: str) -> None:
    """count_reaches(text, k) must equal count_word_segments(text) >= k on arbitrary, tricky text: bounds,
    growing prefixes and the ASCII path alike (long unspaced runs exercise the prefixes)."""
    letters = "aZé1٣.,:;'\"-_ \t\u00a0\u3000\u202f\u200d\u200b\u0301\ufe0f日本カタひらが한국ภไ\x1c\x1f"
    extras = ["👍", "🏽", "🇫", "🇷", "\u20e3", "\u05d0", "\u05f3", "\u0627", "\u2060", "’", " word ", "  ", "─", "€"]
    runs = ["我们今天在公园里散步看到很多花" * 4, "カタカナ" * 10, "ภาษาไทย" * 8, "👩\u200d💻" * 9, "🇫🇷" * 9]
    pool = [*letters, *extras]
    rng = random.Random(1234)
    for trial in range(600):
        parts = [rng.choice(pool) for _ in range(rng.randint(0, 40))]
        if trial % 3 == 0:
            parts.insert(rng.randint(0, len(parts)), rng.choice(runs))
        text = "".join(parts)
        count = rules.count_word_segments(text, name)
        for k in (5, 13, count, count + 1):
            assert rules.count_reaches(text, k, name) == (count >= k), (text, k, count)


def test_normalised_key_folds_case_and_whitespace_only() -> None:
    assert rules.normalise("  The\tQuick\u00a0 BROWN  fox ") == "the quick brown fox"
    assert rules.match_key("  A  b ", "exact") == "  A  b "
    assert rules.normalise("Straße") == rules.normalise("STRASSE")


@pytest.mark.parametrize("name", rules.RULE_SETS)
def test_ascii_fast_path_agrees_with_full_segmentation(name: str) -> None:
    """ASCII paragraphs are counted by a regular expression; it must agree with UAX #29 on every ASCII mix."""
    pool = [*"aZ09_.,;:'\" \t-!?()@#\x1c\x1f\x7f\x0b", "word", "U.S.A", "3.14", "1,000", "don't", "a_b", "  "]
    rng = random.Random(99)
    for _ in range(1500):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 30)))
        count = rules.count_word_segments(text, name)
        assert rules.count_reaches(text, count, name) and not rules.count_reaches(text, count + 1, name), (text, count)
