"""Real text and Paloma-layout folders for the decontamination tests (no network, no downloaded data)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

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
