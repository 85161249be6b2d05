"""Building, saving and loading the contamination index: contents, stability, identity and damaged files."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import xxhash

from paloma.decon import ContaminationIndex, build_index
from paloma.decon.hashing import digests_to_halves, encode, paragraph_digest
from paloma.decon.index import MAGIC
from paloma.errors import PalomaError
from tests.conftest import paloma_env
from tests.decon_data import (
    EVAL_C4,
    EVAL_C4_TEST,
    EVAL_CODE,
    EVAL_REDDIT,
    EVAL_TRUNCATED,
    EVAL_WIKI,
    SHORT_12,
    SHORT_13,
    make_paloma,
    run_cli,
)


@pytest.fixture(scope="module")
def paloma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_paloma(tmp_path_factory.mktemp("paloma"))


@pytest.fixture(scope="module")
def index(paloma_dir: Path) -> ContaminationIndex:
    return build_index(paloma_dir, progress=False)


def test_index_holds_exactly_the_eligible_paragraphs_of_both_splits(index: ContaminationIndex) -> None:
    for paragraph in (EVAL_C4, EVAL_C4_TEST, EVAL_WIKI, EVAL_REDDIT, SHORT_13):
        assert paragraph in index
    for paragraph in (SHORT_12, "A title", EVAL_TRUNCATED, EVAL_CODE, "👍 🎉 😀 👍 🎉 😀 👍 🎉 😀 👍 🎉 😀 👍 🎉"):
        assert paragraph not in index
    assert len(index) == 5
    counts = index.header["counts"]
    assert counts["unique_paragraphs"] == 5
    assert counts["indexed_occurrences"] == 6  # EVAL_C4 is in two documents
    assert counts["too_few_words"] == 2  # "A title" and SHORT_12
    assert counts["only_punctuation_whitespace_emoji"] == 2
    assert index.min_key_bytes == len(SHORT_13.encode())


def test_code_sources_are_excluded_by_default_and_included_on_request(paloma_dir: Path, index) -> None:
    assert index.header["data"]["excluded_code_sources"] == ["dolma_100_programing_languages"]
    assert index.header["rules"]["code_excluded"] is True
    with_code = build_index(paloma_dir, include_code=True, progress=False)
    assert EVAL_CODE in with_code and len(with_code) == 6
    assert with_code.checksum != index.checksum


def test_min_words_option_changes_what_is_indexed(paloma_dir: Path) -> None:
    lenient = build_index(paloma_dir, min_words=12, progress=False)
    assert SHORT_12 in lenient
    assert lenient.header["rules"]["min_words"] == 12


def test_matches_map_back_to_source_domain_and_document(index: ContaminationIndex) -> None:
    matches = index.find(f"intro line\n{EVAL_C4}\n{EVAL_REDDIT}")
    assert [m.paragraph for m in matches] == [EVAL_C4, EVAL_REDDIT]
    assert {o.to_dict()["domain"] for o in matches[0].origins} == {"c4_en", "Geography"}
    assert {(o.source, o.split, o.doc_id) for o in matches[0].origins} == {
        ("c4_en", "val", "c4-val-1"),
        ("m2d2_wikipedia_unsplit", "val", "wiki-1"),
    }
    assert [o.to_dict() for o in matches[1].origins] == [
        {"source": "dolma_100_subreddits", "domain": "01_AskReddit", "split": "test", "id": "r-1"}
    ]
    # integer ids of older releases come back as strings
    assert index.find(EVAL_C4_TEST)[0].origins[0].doc_id == "7"


def test_hash_is_xxh3_128_of_utf8_and_matches_the_reference_vector() -> None:
    # XXH3-128 of the empty input, from the xxHash specification's test vectors
    assert xxhash.xxh3_128_hexdigest(b"") == "99aa06d3014798d86001c324468d497f"
    (hi,), (lo,) = digests_to_halves([paragraph_digest(encode("naïve café"))])
    digest = xxhash.xxh3_128_digest("naïve café".encode())
    assert (int(hi), int(lo)) == (int.from_bytes(digest[:8], "big"), int.from_bytes(digest[8:], "big"))


def test_hashes_are_identical_across_processes(index: ContaminationIndex) -> None:
    script = (
        "import sys, json; from paloma.decon.hashing import digests_to_halves, encode, paragraph_digest; "
        "halves = digests_to_halves([paragraph_digest(encode(p)) for p in json.load(sys.stdin)]); "
        "print(json.dumps([[int(hi), int(lo)] for hi, lo in zip(*halves)]))"
    )
    texts = [EVAL_C4, "日本語のテキスト", "👍🏽", "lone \ud800 surrogate"]
    runs = [
        subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            env=paloma_env(PYTHONHASHSEED=seed),
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1]
    halves = digests_to_halves([paragraph_digest(encode(t)) for t in texts])
    assert json.loads(runs[0]) == [[int(hi), int(lo)] for hi, lo in zip(*halves, strict=True)]


def test_save_and_load_round_trip_keeps_hashes_and_identity(index: ContaminationIndex, tmp_path: Path) -> None:
    path = index.save(tmp_path / "paloma.decon")
    loaded = ContaminationIndex.load(path)
    assert loaded.checksum == index.checksum
    assert np.array_equal(loaded.hi, index.hi) and np.array_equal(loaded.lo, index.lo)
    assert np.all(np.diff(loaded.hi.astype(np.float64)) >= 0)  # sorted by the high half
    assert isinstance(loaded.hi, np.memmap)
    assert loaded.find(EVAL_WIKI)[0].origins == index.find(EVAL_WIKI)[0].origins


def test_rebuilding_gives_a_byte_identical_file(paloma_dir: Path, tmp_path: Path) -> None:
    first = build_index(paloma_dir, progress=False).save(tmp_path / "a.decon")
    copy = shutil.copytree(paloma_dir, tmp_path / "elsewhere" / paloma_dir.name)
    second = build_index(copy, progress=False).save(tmp_path / "b.decon")
    assert first.read_bytes() == second.read_bytes()


def _damage(path: Path, tmp_path: Path, how: str) -> Path:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) - 10]
    elif how == "flipped":
        data[-20] ^= 0xFF
    elif how == "not-an-index":
        data = bytearray(b'{"text": "hello"}\n')
    elif how == "header":
        start = data.index(b"{")
        data[start] = ord("[")
    elif how == "version":
        length = int.from_bytes(data[8:16], "little")
        header = json.loads(data[16 : 16 + length])
        header["format_version"] = 2  # same length, so the header stays in place
        new = json.dumps(header, sort_keys=True).encode().ljust(length)
        data[16 : 16 + length] = new
    elif how == "incomplete":  # an index written before a section existed
        length = int.from_bytes(data[8:16], "little")
        header = json.loads(data[16 : 16 + length])
        del header["sections"]["doc_domain"]
        data[16 : 16 + length] = json.dumps(header, sort_keys=True).encode().ljust(length)
    out = tmp_path / f"{how}.decon"
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("truncated", "truncated"),
        ("flipped", "index is corrupt"),
        ("not-an-index", "not a paloma decontamination index"),
        ("header", "header is corrupt"),
        ("version", "format version 2"),
        ("incomplete", "header is incomplete"),
    ],
)
def test_damaged_index_files_fail_with_a_clear_message(index, tmp_path: Path, how: str, message: str) -> None:
    path = index.save(tmp_path / "good.decon")
    assert path.read_bytes()[:8] == MAGIC
    damaged = _damage(path, tmp_path, how)
    with pytest.raises(PalomaError, match=message):
        ContaminationIndex.load(damaged)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"text": "hello"}\n')
    for argv in (("filter", str(corpus), "--index", str(damaged), "--dry-run"), ("info", str(damaged))):
        proc = run_cli("decon", *argv)
        assert proc.returncode == 2, argv
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr


def test_cli_index_writes_a_file_with_rules_revision_and_counts(paloma_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli.decon"
    proc = run_cli("decon", "index", "--data", str(paloma_dir), "--output", str(out), "--quiet", check=True)
    assert "checksum blake2b-256:" in proc.stdout
    info = json.loads(run_cli("decon", "info", str(out), check=True).stdout)
    assert info["format_version"] == 1
    assert info["rules"]["min_words"] == 13 and info["rules"]["match"] == "exact"
    assert info["data"]["kind"] == "local" and info["data"]["fingerprint"].startswith("blake2b-256:")
    assert info["counts"]["unique_paragraphs"] == 5
    assert info["checksum"] == ContaminationIndex.load(out).checksum


def test_bad_evaluation_data_names_file_and_line(tmp_path: Path) -> None:
    split = tmp_path / "paloma" / "c4_en" / "val"
    split.mkdir(parents=True)
    (split / "val.jsonl").write_text('{"text": "fine"}\n{"text": 5}\n')
    with pytest.raises(PalomaError, match=r"val\.jsonl:2: field 'text' is a int"):
        build_index(tmp_path / "paloma", progress=False)
    with pytest.raises(PalomaError, match="no Paloma data found"):
        build_index(tmp_path, progress=False)


def test_hub_dataset_resolves_from_the_local_cache_offline(paloma_dir: Path, index, tmp_path: Path) -> None:
    """`--data allenai/paloma` goes through huggingface_hub.snapshot_download; here against a seeded cache."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "datasets--allenai--paloma"
    shutil.copytree(paloma_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    out = tmp_path / "hub.decon"
    env = paloma_env(HF_HUB_CACHE=str(tmp_path / "hub"), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "paloma", "decon", "index", "allenai/paloma", "-o", str(out), "--quiet"]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    hub = ContaminationIndex.load(out)
    assert hub.header["data"]["kind"] == "hub" and hub.header["data"]["revision"] == commit
    assert np.array_equal(hub.hi, index.hi) and np.array_equal(hub.lo, index.lo)
    missing = subprocess.run(
        [*cmd[:5], "allenai/paloma", "--revision", "v9", "-o", str(out)], env=env, capture_output=True, text=True
    )
    assert missing.returncode == 2 and "not in the hub cache" in missing.stderr


def test_domains_from_arrays_agree_with_the_documents_table(index: ContaminationIndex, tmp_path: Path) -> None:
    loaded = ContaminationIndex.load(index.save(tmp_path / "i.decon"))
    domains = [loaded.domains_of(position) for position in range(len(loaded))]
    assert "documents" not in loaded.__dict__  # attributing hits to domains never decodes the documents table
    assert domains == [{(o.source, o.domain) for o in loaded.origins(p)} for p in range(len(loaded))]
    assert {("c4_en", "c4_en"), ("m2d2_wikipedia_unsplit", "Geography")} in domains


def test_code_domains_of_prose_sources_are_indexed_by_dolma_rules_and_left_out_by_strict(tmp_path: Path) -> None:
    # dolma-v1_5 is prose except its stack_uniform domain (registry: code_domains); AI2's configuration fed all
    # of dolma-v1_5 into its filter, stack_uniform included
    from tests.decon_data import write_jsonl_gz

    records = [
        {"text": EVAL_C4, "id": "books-1", "subdomain": "books"},
        {"text": EVAL_CODE, "id": "stack-1", "subdomain": "stack_uniform"},
    ]
    write_jsonl_gz(tmp_path / "paloma" / "dolma-v1_5" / "test" / "test_mixed.jsonl.gz", records)
    dolma = build_index(tmp_path / "paloma", progress=False)
    assert EVAL_C4 in dolma and EVAL_CODE in dolma
    assert dolma.header["rules"]["code_domains_excluded"] is False
    strict = build_index(tmp_path / "paloma", rule_set="strict", progress=False)
    assert EVAL_C4 in strict and EVAL_CODE not in strict
    assert strict.header["data"]["excluded_code_domain_documents"] == {"dolma-v1_5/stack_uniform": 1}
    assert strict.header["rules"]["code_domains_excluded"] is True
    assert EVAL_CODE in build_index(tmp_path / "paloma", rule_set="strict", include_code=True, progress=False)


def test_header_records_the_rule_set_its_version_and_parameters(index: ContaminationIndex) -> None:
    header_rules = index.header["rules"]
    assert (header_rules["name"], header_rules["version"]) == ("dolma", 1)
    assert header_rules["parameters"] == {"min_words": 13, "excludes_code_domains": False}
    assert header_rules["regex_version"] and header_rules["uniseg_version"]
    # the fields an earlier paloma wrote are all still there
    for key in ("paragraph", "min_words", "word_segments", "excluded", "match", "code_excluded"):
        assert key in header_rules
    assert index.header["data"]["fingerprint"].startswith("blake2b-256:")


def test_rule_sets_give_indexes_of_different_identity(paloma_dir: Path, index: ContaminationIndex) -> None:
    strict = build_index(paloma_dir, rule_set="strict", progress=False)
    assert strict.header["rules"]["name"] == "strict"
    assert strict.checksum != index.checksum  # the rules are part of what the checksum covers


def test_the_prefix_bitmap_never_hides_an_indexed_hash() -> None:
    """lookup() skips the binary search for queries whose top bits no indexed hash has; it must agree with
    the exact search everywhere: present, absent, and two hashes sharing a high half."""
    rng = np.random.default_rng(7)
    for n in (1, 1000, 200_000):
        hi = np.sort(rng.integers(0, 2**64, n, dtype=np.uint64))
        lo = rng.integers(0, 2**64, n, dtype=np.uint64)
        if n > 1:
            hi[n // 2] = hi[n // 2 - 1]
        arrays = {
            "hi": hi,
            "lo": lo,
            "offsets": np.arange(n + 1, dtype=np.uint64),
            "origins": np.zeros(n, dtype=np.uint32),
            "doc_domain": np.zeros(1, dtype=np.uint32),
        }
        index = ContaminationIndex({"min_key_bytes": 0, "rules": {"match": "exact"}}, arrays, b"")
        picked = rng.integers(0, n, 300)
        q_hi = np.concatenate([hi[picked], rng.integers(0, 2**64, 5000, dtype=np.uint64), hi[picked]])
        q_lo = np.concatenate([lo[picked], rng.integers(0, 2**64, 5000, dtype=np.uint64), lo[picked] ^ 1])
        found = index.lookup(q_hi, q_lo)
        assert np.array_equal(found, index._search(q_hi, q_lo))
        assert np.array_equal(hi[found[:300]], hi[picked]) and np.array_equal(lo[found[:300]], lo[picked])
        assert (found[300:] == -1).all()
        table, _ = index._prefix_bits
        assert np.unpackbits(table).sum() <= len(table) * 8 / 16 + 1  # at most one bit in 16 is set
