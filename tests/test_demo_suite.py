"""The demo suite: Paloma's layout and budgets, disjoint train/eval text, planted leaks, reproducibility."""

from __future__ import annotations

import gzip
import json
import tokenize
from collections import defaultdict
from pathlib import Path

import pytest

from paloma.demo import texts
from paloma.demo.suite import SPLITS, SuiteConfig, build_suite, cut_to_budget, eval_paragraphs
from paloma.demo.texts import Document, group_pieces, python_top_level_blocks, stdlib_dir
from paloma.registry import load_registry_file


def read_gz(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return build_suite(tmp_path_factory.mktemp("demo"), progress=False)


@pytest.fixture(scope="module")
def tokenizer(suite):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(suite.tokenizer_dir))


@pytest.fixture(scope="module")
def eval_records(suite) -> dict[tuple[str, str, str], list[dict]]:
    """(source, domain, split) -> records, read from the files alone (the layout Paloma has)."""
    found = defaultdict(list)
    for path in sorted(suite.suite_dir.glob("*/*/*.jsonl.gz")):
        source, split = path.parts[-3], path.parts[-2]
        for record in read_gz(path):
            found[(source, record.get("subdomain", source), split)].append(record)
    return dict(found)


@pytest.fixture(scope="module")
def train_records(suite) -> list[dict]:
    return read_gz(suite.train_dir / suite.manifest["train"]["file"])


# --- pure pieces ------------------------------------------------------------------------------------


def whitespace_offsets(text: str) -> list[tuple[int, int]]:
    """A tokenizer stand-in: one token per whitespace-separated word, offsets starting at the word."""
    offsets, pos = [], 0
    for word in text.split():
        start = text.index(word, pos)
        offsets.append((start, start + len(word)))
        pos = start + len(word)
    return offsets


def test_cut_to_budget_cuts_the_last_document_and_keeps_the_rest():
    docs = [Document(f"d{i}", "s", "s", " ".join(f"w{i}_{j}" for j in range(5))) for i in range(4)]
    records, used = cut_to_budget(docs, 12, whitespace_offsets)
    assert used == 3
    assert [len(r["text"].split()) for r in records] == [5, 5, 2]
    assert records[2]["text"] + records[2]["metadata"]["truncated_portion"] == docs[2].text
    assert all("truncated_portion" not in r["metadata"] for r in records[:2])
    assert all("subdomain" not in r for r in records)  # single-domain source


def test_cut_to_budget_on_an_exact_fit_truncates_nothing():
    docs = [Document(f"d{i}", "s", "dom", "a b c") for i in range(3)]
    records, used = cut_to_budget(docs, 6, whitespace_offsets)
    assert used == 2 and all(r["metadata"] == {} and r["subdomain"] == "dom" for r in records)


def test_group_pieces_keeps_text_exactly_and_bounds_sizes():
    pieces = ["x" * 100 + "\n"] * 50 + ["para one\n\n" + "y" * 5000 + "\n" + "z" * 2000 + "\n"]
    docs = list(group_pieces(pieces, min_bytes=600, max_bytes=3000))
    assert "".join(docs) == "".join(pieces)
    assert all(len(d) <= 5001 for d in docs)  # only a single over-long line may exceed the maximum
    assert all(len(d) >= 600 for d in docs[:-1])


def test_python_blocks_start_at_top_level_definitions():
    source = "import os\n\nX = 1\n\n@dec\ndef f():\n    pass\n\n\nclass C:\n    def m(self):\n        pass\n"
    blocks = python_top_level_blocks(source)
    assert "".join(blocks) == source
    assert [b.split("\n", 1)[0] for b in blocks] == ["import os", "@dec", "class C:"]


def test_eval_paragraphs_need_thirteen_words_with_letters():
    text = "short line\n" + " ".join(["word"] * 13) + "\n" + " ".join(["--"] * 20)
    assert eval_paragraphs(text) == [" ".join(["word"] * 13)]


# --- the built suite --------------------------------------------------------------------------------


def test_registry_describes_the_files(suite, eval_records):
    registry = load_registry_file(suite.registry_path)
    assert registry.release == "paloma-demo"
    assert [s.name for s in registry.sources] == ["python_reference", "licenses", "stdlib_docstrings", "stdlib_code"]
    pairs = set(registry.domain_pairs())
    assert {(s, d) for s, d, _ in eval_records} == pairs
    assert all((s, d, split) in eval_records for s, d in pairs for split in SPLITS)
    assert len(pairs) >= 24  # dozens of domains
    code = registry.get("stdlib_code")
    assert code.is_code and {"asyncio", "email", "json"} <= set(code.domains)
    assert not any(s.code_domains for s in registry.sources if s.name != "stdlib_code")
    assert registry.get("licenses").single_domain
    assert {p.name for p in (suite.suite_dir / "licenses" / "val").iterdir()} == {"val-00000000.jsonl.gz"}
    assert (suite.suite_dir / "stdlib_code" / "test" / "test_asyncio.jsonl.gz").is_file()


def test_every_domain_split_meets_its_token_budget(suite, eval_records, tokenizer):
    budget = SuiteConfig().tokens_per_split
    registry = load_registry_file(suite.registry_path)
    for (source, domain, split), records in eval_records.items():
        tokens = sum(len(tokenizer(r["text"], add_special_tokens=False)["input_ids"]) for r in records)
        assert budget - 5 <= tokens <= budget + 2, (source, domain, split, tokens)
        assert tokens == suite.manifest["domains"][source][domain][split]["tokens"]
        truncated = [i for i, r in enumerate(records) if "truncated_portion" in r["metadata"]]
        assert truncated in ([], [len(records) - 1])  # only the last document is cut
    for source in registry.sources:
        counted = sum(suite.manifest["domains"][source.name][d][s]["tokens"] for d in source.domains for s in SPLITS)
        assert source.tokens_val_test == counted


def test_train_and_eval_are_disjoint_documents(eval_records, train_records):
    eval_ids = [r["id"] for records in eval_records.values() for r in records]
    train_ids = [r["id"] for r in train_records]
    assert len(set(eval_ids)) == len(eval_ids) and len(set(train_ids)) == len(train_ids)
    assert not set(eval_ids) & set(train_ids)


def test_code_files_are_split_without_losing_or_repeating_text(eval_records, train_records):
    """Every standard-library file of a code domain is exactly the concatenation of its documents."""
    parts: dict[str, dict[int, str]] = defaultdict(dict)
    for (source, _, _), records in eval_records.items():
        for r in records if source == "stdlib_code" else ():
            parts[r["id"].split("#")[0]][int(r["id"].split("#")[1])] = r["text"] + r["metadata"].get(
                "truncated_portion", ""
            )
    for r in train_records:
        if r["source"] == "stdlib_code":
            parts[r["id"].split("#")[0]][int(r["id"].split("#")[1])] = r["text"]
    assert len(parts) > 100
    for file_id, pieces in parts.items():
        assert sorted(pieces) == list(range(len(pieces))), file_id
        with tokenize.open(stdlib_dir() / file_id.removeprefix("code/")) as handle:
            assert "".join(pieces[i] for i in range(len(pieces))) == handle.read(), file_id


def test_planted_paragraphs_are_in_train_and_eval(suite, eval_records, train_records):
    planted = suite.manifest["planted_contamination"]
    assert len(planted) == SuiteConfig().planted
    train_by_id = {r["id"]: r for r in train_records}
    eval_by_id = {r["id"]: (r, split) for (_, _, split), records in eval_records.items() for r in records}
    for leak in planted:
        record, split = eval_by_id[leak["eval_id"]]
        assert split == leak["split"]
        assert leak["paragraph"] in record["text"].split("\n")
        assert leak["paragraph"] in train_by_id[leak["train_id"]]["text"].split("\n")
        assert record["source"] != "stdlib_code"  # decontamination leaves code out


def test_tokenizer_follows_the_baselines_conventions(tokenizer, eval_records):
    assert tokenizer.eos_token_id == 0 and tokenizer.bos_token_id == 0 and tokenizer.pad_token_id == 1
    assert len(tokenizer) == SuiteConfig().vocab_size
    text = next(iter(eval_records.values()))[0]["text"]
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert 0 not in ids and tokenizer.decode(ids) == text  # byte-level: lossless, no special tokens added


def test_rebuilding_is_reproducible_and_reuse_is_free(suite, tmp_path):
    again = build_suite(tmp_path, progress=False)
    assert again.revision == suite.revision
    assert again.revision.startswith("python-")
    for name in suite.manifest["files"]:
        assert (tmp_path / "suite" / name).read_bytes() == (suite.suite_dir / name).read_bytes()
    stamp = (tmp_path / "suite" / "manifest.json").stat().st_mtime_ns
    assert build_suite(tmp_path, progress=False).revision == suite.revision
    assert (tmp_path / "suite" / "manifest.json").stat().st_mtime_ns == stamp


def test_licences_come_from_paloma_dependencies_without_duplicates():
    docs = texts.license_documents()
    files = {d.id.split("#")[0] for d in docs}
    assert any(f.startswith("licenses/transformers/") for f in files)
    texts_by_file = defaultdict(str)
    for d in sorted(docs, key=lambda d: (d.id.split("#")[0], int(d.id.split("#")[1]))):
        texts_by_file[d.id.split("#")[0]] += d.text
    normalised = [" ".join(t.split()) for t in texts_by_file.values()]
    assert len(set(normalised)) == len(normalised)
