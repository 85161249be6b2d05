"""Real text and Paloma-layout folders for the decontamination tests (no network, no downloaded data)."""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

# Evaluation paragraphs (each has at least 13 word segments), keyed by where they will live.
EVAL_C4 = "The town council voted on Tuesday evening to extend the library's opening hours through the winter months."
EVAL_C4_TEST = (
    "Farmers in the valley reported that the late frost had damaged nearly a third of the apple blossoms this year."
)
EVAL_WIKI = "The river rises in the northern hills and flows for about two hundred kilometres before reaching the sea."
EVAL_REDDIT = "Honestly the best advice I ever got about running was to slow down and stop worrying about my pace."
EVAL_CODE = "def add_one(value):  # returns the value plus one, used by the scheduler for retry counters and logs"
EVAL_TRUNCATED = "This sentence was cut off by the token budget and sits only in the metadata of the last document."
PUNCTUATION_ONLY = "!!! ... ??? --- ;;; ::: ,,, ... !!! ??? --- ;;; :::"
EMOJI_ONLY = "👍 🎉 😀 👍 🎉 😀 👍 🎉 😀 👍 🎉 😀 👍 🎉"
SHORT_12 = "One two three four five six seven eight nine ten eleven twelve"
SHORT_13 = "One two three four five six seven eight nine ten eleven twelve thirteen"

# Training paragraphs that appear in no evaluation document.
CLEAN = [
    "Our bakery opens at seven and the sourdough usually sells out before noon on Saturdays and Sundays.",
    "The museum's new wing houses a collection of maps drawn by sailors during the eighteenth century voyages.",
    "Please remember to bring a packed lunch, a water bottle and sturdy shoes for the field trip on Friday.",
    "A short note.",
    "",
    "   ",
]


def write_jsonl_gz(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    return path


def make_paloma(root: Path) -> Path:
    """A small folder in Paloma's release layout: three text sources and one code source, both splits."""
    write_jsonl_gz(
        root / "c4_en" / "val" / "val-00000000.jsonl.gz",
        [
            {"text": f"A title\n{EVAL_C4}\n{SHORT_12}\n{SHORT_13}", "id": "c4-val-1"},
            {
                "text": f"{PUNCTUATION_ONLY}\n{EMOJI_ONLY}",
                "id": "c4-val-2",
                "metadata": {"truncated_portion": EVAL_TRUNCATED},
            },
        ],
    )
    write_jsonl_gz(root / "c4_en" / "test" / "test-00000000.jsonl.gz", [{"text": EVAL_C4_TEST, "id": 7}])
    write_jsonl_gz(
        root / "m2d2_wikipedia_unsplit" / "val" / "val_Geography.jsonl.gz",
        [{"text": f"{EVAL_WIKI}\n\n{EVAL_C4}", "id": "wiki-1", "subdomain": "Geography"}],
    )
    write_jsonl_gz(
        root / "dolma_100_subreddits" / "test" / "test_01_AskReddit.jsonl.gz",
        [{"text": EVAL_REDDIT, "id": "r-1", "subdomain": "01_AskReddit"}],
    )
    write_jsonl_gz(
        root / "dolma_100_programing_languages" / "val" / "val_06_python.jsonl.gz",
        [{"text": EVAL_CODE, "id": "py-1", "subdomain": "06_python"}],
    )
    return root


def training_docs() -> list[dict]:
    """Documents in which contamination hides among clean paragraphs, and near misses that must be kept."""
    return [
        {"id": "clean-1", "text": "\n".join(CLEAN[:3])},
        {"id": "dirty-middle", "text": f"{CLEAN[0]}\n{EVAL_C4}\n{CLEAN[1]}"},
        {"id": "dirty-last", "text": f"{CLEAN[2]}\n\n{EVAL_REDDIT}"},
        {"id": "near-one-char", "text": EVAL_C4.replace("Tuesday", "Tuesdey")},
        {"id": "near-space-inside", "text": EVAL_C4.replace("voted on", "voted  on")},
        {"id": "near-trailing-space", "text": EVAL_C4 + " "},
        {"id": "near-case", "text": EVAL_C4.upper()},
        {"id": "short-12", "text": SHORT_12},
        {"id": "short-13", "text": SHORT_13},
        {"id": "code", "text": EVAL_CODE},
        {"id": "truncated", "text": EVAL_TRUNCATED},
        {"id": "dirty-test-split", "text": f"{EVAL_C4_TEST}\n{CLEAN[3]}"},
        {"id": "blank", "text": ""},
        {"id": "unicode", "text": "Ünïcödé tëxt wïth äccents 日本語の文章です。 and emoji 👍🏽 in one paragraph ok."},
    ]


# Ids the reference rules remove from training_docs().
EXPECTED_REMOVED = {"dirty-middle", "dirty-last", "short-13", "dirty-test-split"}


# ---- rule cases: one evaluation paragraph each, with the decision of each rule set ---------------------------
# `dolma` is what dolma 1.2.1 did with the paragraph when run as AI2's pipeline for the Paloma baselines
# (observed by benchmarks/decon_vs_dolma.py, which re-checks this table against the real dolma on every run);
# `strict` is paloma's corrected reading (paloma.decon.rules). A training document made of filler, the
# paragraph and filler is removed exactly when the paragraph is indexed (tests/test_decon_rules.py).
@dataclass(frozen=True)
class RuleCase:
    name: str
    paragraph: str
    dolma: bool  # indexed by dolma 1.2.1 (so a training document containing it is removed)
    strict: bool  # indexed under --rules strict
    why: str


_WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
]


def _words(n: int, sep: str = " ") -> str:
    return sep.join(_WORDS[i % len(_WORDS)] + ("" if i < len(_WORDS) else str(i)) for i in range(n))


RULE_CASES = [
    RuleCase("prose-13-words", _words(13), True, True, "13 UAX #29 word segments: indexed"),
    RuleCase("prose-12-words", _words(12), False, False, "12 segments: too short"),
    RuleCase("prose-sentence", EVAL_WIKI, True, True, "ordinary prose"),
    RuleCase(
        "punctuation-counts-as-words",
        "Wait, what? No, no, no. Yes! Fine.",
        True,
        True,
        "punctuation marks are segments",
    ),
    RuleCase("ascii-punctuation-only", PUNCTUATION_ONLY, False, False, "only ASCII punctuation"),
    RuleCase("unicode-punctuation-only", "« » ¿ ¡ — – … · ‘ ’ “ ” 「 」 『 』 、 。 ！ ？", False, False, "only P*"),
    RuleCase("ascii-symbols-only", "$ + = < > ^ ` | ~ % & * # @ ! ? . , ; :", False, False, "ASCII symbols"),
    RuleCase("box-drawing-line", "─" * 40, False, False, "So: [[:punct:]]"),
    RuleCase("box-drawing-frame", "┌──────────────┐ │ ══════ │ └──────────────┘", False, False, "So box drawing"),
    RuleCase("math-symbols", "→ ∑ ± ≤ ≥ ∞ ∫ √ ≈ ≠ ∂ ∇ × ÷", False, False, "Sm: [[:punct:]] in dolma"),
    RuleCase("currency-symbols", "€ € £ ¥ ₹ € € £ ¥ ₹ € € £ ¥", False, False, "Sc: [[:punct:]] in dolma"),
    RuleCase("modifier-symbols", "˘ ˙ ˚ ˛ ˜ ˝ ¨ ¯ ´ ¸ ˘ ˙ ˚ ˛", False, False, "Sk: [[:punct:]] in dolma"),
    RuleCase("dingbats", "✂ ✈ ✉ ✏ ✒ ✔ ✖ ✝ ✡ ✨ ✳ ✴ ❄ ❇", False, False, "dingbats: in dolma's emoji blocks"),
    RuleCase("copyright-marks", "© ® ™ © ® ™ © ® ™ © ® ™ © ®", False, False, "So, and emoji in strict"),
    RuleCase("emoji-plain", EMOJI_ONLY, False, False, "emoji in dolma's blocks"),
    RuleCase("emoji-outside-dolma-blocks", "🤔 🥰 🦄 🧠 🤖 🥳 🦋 🧩 🤝 🥇 🦊 🧀 🤯 🥑", False, False, "So"),
    RuleCase("emoji-skin-tones", "👍🏽 " * 14, False, False, "skin-tone modifiers are Sk"),
    RuleCase("emoji-flags", "🇫🇷 🇩🇪 🇯🇵 🇧🇷 🇮🇳 🇨🇦 🇲🇽 🇰🇷 🇮🇹 🇪🇸 🇳🇬 🇦🇺 🇿🇦 🇸🇪", False, False, "regional indicators: So"),
    RuleCase("emoji-vs16", "❤️ " * 14, True, False, "U+FE0F is Mn, not in dolma's pattern: content"),
    RuleCase("emoji-zwj", "👩\u200d💻 " * 14, True, False, "U+200D is Cf, not in dolma's pattern: content"),
    RuleCase("emoji-keycaps", "1️⃣ 2️⃣ 3️⃣ 4️⃣ 5️⃣ 6️⃣ 7️⃣ 8️⃣ 9️⃣ 0️⃣ 1️⃣ 2️⃣ 3️⃣ 4️⃣", True, True, "ASCII digits"),
    RuleCase("circled-letters", "Ⓐ Ⓑ Ⓒ Ⓓ Ⓔ Ⓕ Ⓖ Ⓗ Ⓘ Ⓙ Ⓚ Ⓛ Ⓝ Ⓞ", True, True, "So but alphabetic: not [[:punct:]]"),
    RuleCase("circled-m", "Ⓜ " * 14, True, False, "alphabetic for dolma, Extended_Pictographic for strict"),
    RuleCase("symbols-and-a-letter", "→ ∑ ± ≤ ≥ ∞ ∫ √ ≈ ≠ ∂ ∇ × x", True, True, "one ASCII letter makes content"),
    RuleCase("symbols-and-greek", "→ ∑ ± ≤ ≥ ∞ ∫ √ ≈ ≠ ∂ ∇ × λ", True, True, "a non-ASCII letter makes content"),
    RuleCase("fullwidth-digits", "１２３ → ４５６ → ７８９ → ０１２ → ３４５ → ６７８ → ９", True, True, "Nd"),
    RuleCase("file-separator-joined", _words(8, "\x1c"), False, False, "U+001C: whitespace to str.strip"),
    RuleCase("unit-separator-joined", _words(7, "\x1f"), False, False, "U+001F: whitespace to str.strip"),
    RuleCase("group-separator-tail", _words(12) + " \x1d", False, False, "a trailing U+001D is whitespace"),
    RuleCase("record-separator-edges", "\x1e" + _words(13) + "\x1e", True, True, "13 words either way"),
    RuleCase("cjk-no-spaces", "我们今天在公园里散步看到很多花", True, True, "each ideograph is a segment"),
    RuleCase("cjk-12-ideographs", "我们今天在公园里散步看到", False, False, "12 ideographs"),
    RuleCase("cjk-long", "我们今天在公园里散步看到很多花。" * 20, True, True, "long CJK: decided from a prefix"),
    RuleCase(
        "japanese-mixed", "日本語のテキストとカタカナのコンピューターを使います", True, True, "katakana runs join"
    ),
    RuleCase("thai", "ภาษาไทยเป็นภาษาที่สวยงาม", True, True, "Thai letters are segments"),
    RuleCase(
        "korean",
        "한국어 텍스트는 띄어쓰기를 사용합니다 그리고 단어가 많습니다 " * 2,
        True,
        True,
        "Hangul",
    ),
    RuleCase("accents-combining", "Cafe\u0301 cre\u0300me bru\u0302le\u0301e " + _words(11), True, True, "marks"),
    RuleCase("narrow-no-break-space", "\u202f".join(_WORDS[:14]), False, False, "U+202F joins words"),
    RuleCase("no-break-space", "\u00a0".join(_WORDS[:13]), True, True, "U+00A0 separates words"),
    RuleCase("ideographic-space", "\u3000".join(_WORDS[:13]), True, True, "U+3000 separates words"),
    RuleCase("tabs", "\t".join(_WORDS[:13]), True, True, "tabs separate words"),
    RuleCase("line-separator-inside", _words(7) + "\u2028" + _words(6), True, True, "U+2028 stays in the line"),
    RuleCase("leading-trailing-spaces", "   " + _words(13) + "  ", True, True, "indexed with its spaces"),
    RuleCase("zero-width-spaces", "\u200b" * 14, True, True, "U+200B is neither space nor punctuation"),
    RuleCase("numbers-with-separators", "1,000.50 2,000.75 3.14 42 7 8 9 10 11 12 13 14 15", True, True, "numbers"),
    RuleCase("emoji-run-then-letter", "🎉" * 30 + "é", True, True, "a letter after emoji"),
    RuleCase("carriage-return-inside", _words(13) + "\r", True, True, "\\r is part of the paragraph"),
]


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: object, check: bool = False) -> CliResult:
    """`paloma ARGS` in this process (through paloma.cli.main, what the entry point calls), output captured.

    A subprocess would spend seconds importing every command's dependencies; the decon tests run dozens.
    """
    import contextlib
    import io

    from paloma.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse exits by itself
            code = exit_.code if isinstance(exit_.code, int) else 2
    result = CliResult(code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"paloma {' '.join(map(str, args))} failed:\n{result.stdout}\n{result.stderr}")
    return result


def jsonl_lines(records: list[dict]) -> bytes:
    """Records as JSON lines, the bytes a filter input holds."""
    return b"".join(json.dumps(record, ensure_ascii=False).encode() + b"\n" for record in records)


# ---- training-side cases: how a document carrying the indexed paragraph EVAL_WIKI is decided ----------------
@dataclass(frozen=True)
class TrainingCase:
    name: str
    text: str
    dolma: bool  # removed by dolma 1.2.1's read-only dedupe (observed by benchmarks/decon_vs_dolma.py)
    why: str


TRAINING_CASES = [
    TrainingCase("whole-text", EVAL_WIKI, True, "the document is the paragraph"),
    TrainingCase("middle", f"{CLEAN[0]}\n{EVAL_WIKI}\n{CLEAN[1]}", True, "between two paragraphs"),
    TrainingCase("last-no-newline", f"{CLEAN[0]}\n{EVAL_WIKI}", True, "last line, no newline"),
    TrainingCase("first-then-blank", f"{EVAL_WIKI}\n\n\n{CLEAN[1]}\n", True, "blank lines around"),
    TrainingCase("twice", f"{EVAL_WIKI}\n{CLEAN[2]}\n{EVAL_WIKI}", True, "two hits, one document"),
    TrainingCase("trailing-space", f"{CLEAN[0]}\n{EVAL_WIKI} ", False, "exact match: a space more"),
    TrainingCase("leading-tab", f"\t{EVAL_WIKI}", False, "exact match: a tab more"),
    TrainingCase("crlf", f"{CLEAN[0]}\r\n{EVAL_WIKI}\r\n{CLEAN[1]}", False, "the paragraph ends in \\r"),
    TrainingCase("cr-only", f"{CLEAN[0]}\r{EVAL_WIKI}\r{CLEAN[1]}", False, "\\r does not split paragraphs"),
    TrainingCase("line-separator", f"{CLEAN[0]}\u2028{EVAL_WIKI}", False, "U+2028 does not split paragraphs"),
    TrainingCase("upper-case", EVAL_WIKI.upper(), False, "exact match: case"),
    TrainingCase("double-space", EVAL_WIKI.replace(" ", "  ", 1), False, "exact match: spacing"),
    TrainingCase("nbsp", EVAL_WIKI.replace(" ", "\u00a0", 1), False, "exact match: U+00A0 for a space"),
    TrainingCase("prefix-only", EVAL_WIKI[:-1], False, "exact match: one character short"),
    TrainingCase("whitespace-paragraphs", f" \n\t\n{EVAL_WIKI}\n\u3000", True, "blank-looking paragraphs skipped"),
]


# ---- n-gram overlap: a planted corpus and datatrove's n-gram decontamination as the independent reference ----
PLANT_PUNCTUATION = ",.;:!?\"'()-"  # ASCII punctuation both normalisations drop (paloma: P*/S*; datatrove's set)


@dataclass(frozen=True)
class NgramCorpus:
    eval_texts: list[str]
    train_texts: list[str]
    planted: list[str]  # per training document: "none", "full" (an n-gram planted) or "short" (n - 1 words)


def ngram_corpus(
    seed: int,
    n: int = 13,
    eval_docs: int = 60,
    train_docs: int = 600,
    words: int = 120,
    letters: str = "abcdefghijklmnopqrstuvwxyzéü",
) -> NgramCorpus:
    """Evaluation and training documents of random words where some training documents copy n (or n - 1)
    consecutive evaluation words, re-cased, re-punctuated and re-spaced (newlines too), at random places.

    The vocabulary is random letter strings, so no n-gram is shared by chance; the copies are the only overlap.
    """
    import random

    rng = random.Random(seed)
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 9))) for _ in range(3000)]

    def dress(word_list: list[str]) -> str:
        out = []
        for word in word_list:
            word = word.upper() if rng.random() < 0.1 else word.capitalize() if rng.random() < 0.1 else word
            if rng.random() < 0.15:
                word += rng.choice(PLANT_PUNCTUATION)
            out.append(word + rng.choice([" ", " ", " ", "  ", "\n", "\t"]))
        return "".join(out).strip()

    eval_words = [[rng.choice(vocab) for _ in range(words)] for _ in range(eval_docs)]
    train_texts, planted = [], []
    for _ in range(train_docs):
        body = [rng.choice(vocab) for _ in range(rng.randint(5, words))]
        kind = rng.choice(["none", "none", "full", "short"])
        if kind != "none":
            source = rng.choice(eval_words)
            length = n if kind == "full" else n - 1
            start = rng.randint(0, len(source) - length)
            at = rng.randint(0, len(body))
            body[at:at] = source[start : start + length]
        train_texts.append(dress(body))
        planted.append(kind)
    return NgramCorpus([dress(w) for w in eval_words], train_texts, planted)


def datatrove_ngram_decisions(eval_texts: list[str], train_texts: list[str], n: int, folder: Path) -> list[bool]:
    """Which training texts datatrove's n-gram decontamination (NGramsDecontIndexer/Filter) removes.

    Its normalisation is configured to GPT-3's (lower case, punctuation to spaces, whitespace words; no number
    or diacritics folding) with a whitespace word tokenizer, so it decides by the same rule as paloma's n-gram
    mode but through its own code: its own normalisation, n-gram construction, hash (64-bit) and index files.
    """
    import numpy as np
    from datatrove.data import Document
    from datatrove.pipeline.decont.n_grams import NGramsDecontConfig, NGramsDecontFilter, NGramsDecontIndexer
    from datatrove.utils.hashing import HashConfig, create_hash_func
    from datatrove.utils.text import TextNormConfig

    config = NGramsDecontConfig(
        n_grams=n,
        find_query_ngrams=True,
        norm_config=TextNormConfig(norm_numbers=False, norm_unicode_diacritics=False),
        # datatrove's default xxhash path hashes str, which xxhash >= 4 refuses ("Strings must be encoded")
        hash_config=HashConfig(hash_fc="sha1"),
    )
    tokenizer = WhitespaceWords()
    # The indexer step needs lighteval to be built (for its task registry); its hashing method is used as is.
    indexer = SimpleNamespace(tokenizer=tokenizer, config=config, hash_func=create_hash_func(config.hash_config))
    hashes = sorted({h for text in eval_texts for h in NGramsDecontIndexer.compute_hashes(indexer, text)})
    folder.mkdir(parents=True, exist_ok=True)
    np.array(hashes, dtype=config.hash_config.np_descr).tofile(folder / "paloma.index.hashes")
    step = NGramsDecontFilter(str(folder), config=config, language=tokenizer)
    return [step.filter(Document(text=text, id=str(i))) is not True for i, text in enumerate(train_texts)]


def _word_tokenizer_base() -> type:
    from datatrove.utils.word_tokenizers import WordTokenizer

    return WordTokenizer


class WhitespaceWords(_word_tokenizer_base()):  # type: ignore[misc]
    """A datatrove word tokenizer that splits on whitespace (its English default needs NLTK data downloads)."""

    def __init__(self) -> None:
        super().__init__("en")

    def word_tokenize(self, text: str) -> list[str]:
        return text.split()

    def sent_tokenize(self, text: str) -> list[str]:
        return [text]

    def span_tokenize(self, text: str) -> list[tuple[int, int]]:
        return [(0, len(text))]
