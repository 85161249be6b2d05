"""The filter: reference decisions, every input format round-tripped, reports, resume, workers and bad input."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from paloma.decon import ContaminationIndex, build_index
from paloma.decon.filter import REPORT_NAME, filter_files
from paloma.decon.verify import verify_files
from tests.decon_data import EVAL_C4, EVAL_REDDIT, EXPECTED_REMOVED, make_paloma, run_cli, training_docs


@pytest.fixture(scope="module")
def index_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_paloma(tmp_path_factory.mktemp("paloma"))
    return build_index(root, progress=False).save(tmp_path_factory.mktemp("index") / "paloma.decon")


@pytest.fixture(scope="module")
def index(index_path: Path) -> ContaminationIndex:
    return ContaminationIndex.load(index_path)


def jsonl_bytes(docs: list[dict]) -> bytes:
    return b"".join(json.dumps(d, ensure_ascii=False).encode() + b"\n" for d in docs)


def write_corpus(folder: Path, docs: list[dict]) -> dict[str, Path]:
    """The same documents in every supported format."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = jsonl_bytes(docs)
    paths = {
        "jsonl": folder / "plain.jsonl",
        "jsonl.gz": folder / "sub" / "gzipped.jsonl.gz",
        "jsonl.zst": folder / "sub" / "zstd.jsonl.zst",
        "parquet": folder / "table.parquet",
    }
    paths["jsonl"].write_bytes(raw)
    paths["jsonl.gz"].parent.mkdir()
    paths["jsonl.gz"].write_bytes(gzip.compress(raw))
    paths["jsonl.zst"].write_bytes(zstandard.ZstdCompressor().compress(raw))
    pq.write_table(
        pa.Table.from_pylist([{**d, "id": str(d["id"])} for d in docs]), paths["parquet"], compression="zstd"
    )
    return paths


def read_docs(path: Path) -> list[dict]:
    """Documents of an output in any format, for comparison with the input."""
    if path.is_dir():
        from datasets import DatasetDict, load_from_disk

        loaded = load_from_disk(str(path))
        if isinstance(loaded, DatasetDict):
            return [{"split": s, **row} for s, ds in loaded.items() for row in ds]
        return list(loaded)
    if path.suffix == ".parquet":
        return pq.read_table(path).to_pylist()
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    elif path.suffix == ".zst":
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_reference_decisions_per_document(index: ContaminationIndex) -> None:
    removed = {d["id"] for d in training_docs() if index.is_contaminated(d["text"])}
    assert removed == EXPECTED_REMOVED


def test_every_format_round_trips_and_kept_plus_removed_is_the_input(index_path: Path, tmp_path: Path) -> None:
    docs = training_docs()
    inputs = tmp_path / "corpus"
    paths = write_corpus(inputs, docs)
    before = tree_digest(inputs)
    report = filter_files(index_path, [inputs], tmp_path / "out", progress=False)
    assert tree_digest(inputs) == before  # inputs are never modified
    expected_kept = [d for d in docs if d["id"] not in EXPECTED_REMOVED]
    expected_removed = [d for d in docs if d["id"] in EXPECTED_REMOVED]
    for fmt, path in paths.items():
        rel = path.relative_to(inputs)
        kept, removed = read_docs(tmp_path / "out" / "kept" / rel), read_docs(tmp_path / "out" / "removed" / rel)
        as_input = (lambda d: {**d, "id": str(d["id"])}) if fmt == "parquet" else (lambda d: d)
        assert kept == [as_input(d) for d in expected_kept], fmt
        assert removed == [as_input(d) for d in expected_removed], fmt
    # JSON lines are copied byte for byte
    assert (tmp_path / "out" / "kept" / "plain.jsonl").read_bytes() == jsonl_bytes(expected_kept)
    totals = report["totals"]
    assert totals["files"] == 4 and totals["documents"] == 4 * len(docs)
    assert totals["removed_documents"] == 4 * len(EXPECTED_REMOVED)
    assert totals["kept_documents"] + totals["removed_documents"] == totals["documents"]
    text_bytes = sum(len(d["text"].encode()) for d in docs)
    removed_bytes = sum(len(d["text"].encode()) for d in expected_removed)
    assert (totals["bytes"], totals["removed_bytes"]) == (4 * text_bytes, 4 * removed_bytes)
    assert totals["removal_rate_documents"] == pytest.approx(len(EXPECTED_REMOVED) / len(docs))
    assert totals["removal_rate_bytes"] == pytest.approx(removed_bytes / text_bytes)


def test_datasets_folders_round_trip(index_path: Path, tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    docs = training_docs()
    Dataset.from_list(docs[:8]).save_to_disk(str(tmp_path / "in" / "single"))
    DatasetDict({"train": Dataset.from_list(docs), "validation": Dataset.from_list(docs[8:])}).save_to_disk(
        str(tmp_path / "in" / "dict")
    )
    filter_files(index_path, [tmp_path / "in"], tmp_path / "out", progress=False)
    keep = [d for d in docs[:8] if d["id"] not in EXPECTED_REMOVED]
    assert read_docs(tmp_path / "out" / "kept" / "single") == keep
    assert read_docs(tmp_path / "out" / "removed" / "single") == [d for d in docs[:8] if d["id"] in EXPECTED_REMOVED]
    kept = read_docs(tmp_path / "out" / "kept" / "dict")
    removed = read_docs(tmp_path / "out" / "removed" / "dict")
    for split, part in (("train", docs), ("validation", docs[8:])):
        assert [d["id"] for d in kept if d["split"] == split] == [
            d["id"] for d in part if d["id"] not in EXPECTED_REMOVED
        ]
        assert [d["id"] for d in removed if d["split"] == split] == [
            d["id"] for d in part if d["id"] in EXPECTED_REMOVED
        ]


def test_report_cites_the_index_and_attributes_hits_to_domains(index_path: Path, index, tmp_path: Path) -> None:
    path = tmp_path / "in" / "docs.jsonl"
    path.parent.mkdir()
    path.write_bytes(jsonl_bytes(training_docs()))
    filter_files(index_path, [path], tmp_path / "out", progress=False, samples=2)
    report = json.loads((tmp_path / "out" / REPORT_NAME).read_text())
    assert report["index"]["checksum"] == index.checksum
    assert report["index"]["rules"]["min_words"] == 13 and report["index"]["rules"]["match"] == "exact"
    hits = {(h["source"], h["domain"]): h for h in report["hits_by_domain"]}
    # dirty-middle carries EVAL_C4, which occurs in c4_en and in m2d2's Geography domain; short-13 is c4_en too
    assert hits[("c4_en", "c4_en")]["documents"] == 3
    assert hits[("m2d2_wikipedia_unsplit", "Geography")]["documents"] == 1
    assert hits[("dolma_100_subreddits", "01_AskReddit")] == {
        "source": "dolma_100_subreddits",
        "domain": "01_AskReddit",
        "documents": 1,
        "paragraph_hits": 1,
    }
    assert len(report["samples"]) == 2
    first = report["samples"][0]
    assert (first["file"], first["location"], first["id"], first["paragraph"]) == (
        "docs.jsonl",
        2,
        "dirty-middle",
        EVAL_C4,
    )
    assert {o["source"] for o in first["origins"]} == {"c4_en", "m2d2_wikipedia_unsplit"}
    assert report["samples"][1]["paragraph"] == EVAL_REDDIT


def test_rerun_skips_finished_files_and_redoes_changed_ones(index_path: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "a.jsonl").write_bytes(jsonl_bytes(training_docs()))
    (inputs / "b.jsonl").write_bytes(jsonl_bytes(training_docs()[:3]))
    first = filter_files(index_path, [inputs], tmp_path / "out", progress=False)
    # b.jsonl (clean-1, dirty-middle, dirty-last) loses two documents; a file with no removals gets no removed file
    (inputs / "c.jsonl").write_bytes(jsonl_bytes(training_docs()[:1]))
    filter_files(index_path, [inputs / "c.jsonl"], tmp_path / "out-c", progress=False)
    assert (tmp_path / "out-c" / "kept" / "c.jsonl").read_bytes() == jsonl_bytes(training_docs()[:1])
    assert not (tmp_path / "out-c" / "removed").exists()
    (inputs / "c.jsonl").unlink()
    kept_a = tmp_path / "out" / "kept" / "a.jsonl"
    stamp = kept_a.stat().st_mtime_ns
    (inputs / "b.jsonl").write_bytes(jsonl_bytes(training_docs()[:2]))
    second = filter_files(index_path, [inputs], tmp_path / "out", progress=False, resume=True)
    resumed = {f["file"]: f.get("resumed", False) for f in second["files"]}
    assert resumed == {"a.jsonl": True, "b.jsonl": False}
    assert kept_a.stat().st_mtime_ns == stamp
    assert second["totals"]["documents"] == first["totals"]["documents"] - 1


def test_dry_run_writes_no_documents(index_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl.gz"
    path.write_bytes(gzip.compress(jsonl_bytes(training_docs())))
    proc = run_cli(
        "decon", "filter", str(path), "--index", str(index_path), "--dry-run", "--output", str(tmp_path / "o")
    )
    assert proc.returncode == 0, proc.stderr
    assert "dry run" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [REPORT_NAME]
    report = json.loads((tmp_path / "o" / REPORT_NAME).read_text())
    assert report["dry_run"] and report["totals"]["removed_documents"] == len(EXPECTED_REMOVED)


def test_two_workers_give_the_same_outputs_as_one(index_path: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    write_corpus(inputs, training_docs())
    for workers in ("1", "2"):
        proc = run_cli(
            "decon", "filter", str(inputs), "-i", str(index_path), "-o", str(tmp_path / workers), "--workers", workers
        )
        assert proc.returncode == 0, proc.stderr
    one, two = tree_digest(tmp_path / "1" / "kept"), tree_digest(tmp_path / "2" / "kept")
    assert one == two and len(one) == 4
    assert tree_digest(tmp_path / "1" / "removed") == tree_digest(tmp_path / "2" / "removed")


def test_normalised_match_is_stricter_than_the_reference(tmp_path: Path) -> None:
    root = make_paloma(tmp_path / "paloma")
    normalised = build_index(root, match="normalised", progress=False)
    removed = {d["id"] for d in training_docs() if normalised.is_contaminated(d["text"])}
    assert removed == EXPECTED_REMOVED | {"near-space-inside", "near-trailing-space", "near-case"}
    assert normalised.header["rules"]["match"] == "normalised"


def test_verify_passes_on_kept_and_fails_on_removed(index_path: Path, tmp_path: Path) -> None:
    path = tmp_path / "in" / "docs.jsonl"
    path.parent.mkdir()
    path.write_bytes(jsonl_bytes(training_docs() * 20))
    filter_files(index_path, [path], tmp_path / "out", progress=False)
    clean = run_cli("decon", "verify", str(tmp_path / "out" / "kept"), "-i", str(index_path))
    assert clean.returncode == 0 and clean.stdout.startswith("clean: 0 of 200 checked")
    dirty = run_cli(
        "decon",
        "verify",
        str(tmp_path / "out" / "removed"),
        "-i",
        str(index_path),
        "--report",
        str(tmp_path / "v.json"),
    )
    assert dirty.returncode == 1 and "CONTAMINATED: 80 of 80" in dirty.stdout
    assert json.loads((tmp_path / "v.json").read_text())["contaminated_documents"] == 80
    sample = verify_files(index_path, [path], fraction=0.5, seed=3)
    assert sample == verify_files(index_path, [path], fraction=0.5, seed=3)
    assert 40 <= sample["documents_checked"] <= 240 and sample["contaminated_documents"] > 0


# ---- bad input ---------------------------------------------------------------------------------------------
def _bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    good = jsonl_bytes(training_docs()[:3])
    cases = {
        "invalid-json": (b'{"text": "ok", "id": 1}\n{"text": "broken\n', "invalid-json.jsonl:2: invalid JSON"),
        "missing-text": (b'{"id": 1}\n', "missing-text.jsonl:1: text field 'text' is missing"),
        "number-text": (good + b'{"text": 12}\n', "number-text.jsonl:4: text field 'text' is int, not a string"),
        "not-object": (b"[1, 2]\n", "not-object.jsonl:1: expected a JSON object, got list"),
    }
    out = {name: (folder / f"{name}.jsonl", msg) for name, (data, msg) in cases.items()}
    for name, (data, _) in cases.items():
        (folder / f"{name}.jsonl").write_bytes(data)
    gz = gzip.compress(good * 50)
    (folder / "truncated.jsonl.gz").write_bytes(gz[: len(gz) // 2])
    out["truncated-gz"] = (folder / "truncated.jsonl.gz", "truncated.jsonl.gz")
    (folder / "garbage.jsonl.zst").write_bytes(b"\x28\xb5\x2f\xfd" + b"not zstd at all" * 10)
    out["corrupt-zst"] = (folder / "garbage.jsonl.zst", "garbage.jsonl.zst")
    (folder / "broken.parquet").write_bytes(b"PAR1" + b"\0" * 100)
    out["unreadable-parquet"] = (folder / "broken.parquet", "broken.parquet: unreadable Parquet")
    pq.write_table(pa.table({"text": [1, 2]}), folder / "ints.parquet")
    out["int-column"] = (folder / "ints.parquet", "ints.parquet: column 'text' has type int64, expected strings")
    return out


@pytest.mark.parametrize(
    "case",
    [
        "invalid-json",
        "missing-text",
        "number-text",
        "not-object",
        "truncated-gz",
        "corrupt-zst",
        "unreadable-parquet",
        "int-column",
    ],
)
def test_bad_input_gives_one_line_naming_the_file_and_writes_nothing(
    index_path: Path, tmp_path: Path, case: str
) -> None:
    path, message = _bad_inputs(tmp_path / "in")[case]
    out = tmp_path / "out"
    proc = run_cli("decon", "filter", str(path), "-i", str(index_path), "-o", str(out), "--quiet")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("paloma decon: error: ")
    assert message in proc.stderr
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]


def test_skip_bad_lines_counts_them_and_sets_them_aside(index_path: Path, tmp_path: Path) -> None:
    docs = training_docs()
    lines = jsonl_bytes(docs).splitlines(keepends=True)
    bad = [b'{"text": "unterminated\n', b'{"id": "no-text"}\n', b'{"text": null}\n']
    data = b"".join(lines[:3] + bad[:2] + lines[3:] + bad[2:])
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "mixed.jsonl").write_bytes(data)
    report = filter_files(index_path, [tmp_path / "in"], tmp_path / "out", skip_bad_lines=True, progress=False)
    assert report["totals"]["bad_lines"] == 3
    examples = report["files"][0]["bad_examples"]
    assert [e["location"] for e in examples] == [4, 5, len(docs) + 3]
    assert examples[0]["reason"].startswith("invalid JSON")
    assert examples[1]["reason"] == "text field 'text' is missing"
    out = tmp_path / "out"
    assert (out / "bad" / "mixed.jsonl").read_bytes() == b"".join(bad)
    kept = (out / "kept" / "mixed.jsonl").read_bytes().splitlines(keepends=True)
    removed = (out / "removed" / "mixed.jsonl").read_bytes().splitlines(keepends=True)
    assert sorted(kept + removed + bad) == sorted(data.splitlines(keepends=True))  # nothing is lost


def test_output_inside_the_input_folder_is_refused(index_path: Path, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(jsonl_bytes(training_docs()))
    proc = run_cli("decon", "filter", str(tmp_path / "in"), "-i", str(index_path), "-o", str(tmp_path / "in" / "out"))
    assert proc.returncode == 2 and "lies inside the input folder" in proc.stderr
    assert not (tmp_path / "in" / "out").exists()


def test_json_escaped_lone_surrogates_are_valid_documents(index_path: Path, tmp_path: Path) -> None:
    # JSON allows "\ud800" escapes that orjson refuses; the standard parser accepts them, so they are documents
    line = b'{"id": "s", "text": "odd \\ud800 text\\n' + EVAL_C4.encode() + b'"}\n'
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "s.jsonl").write_bytes(line)
    report = filter_files(index_path, [tmp_path / "in"], tmp_path / "out", progress=False)
    assert report["totals"]["removed_documents"] == 1 and report["totals"]["bad_lines"] == 0
    assert (tmp_path / "out" / "removed" / "s.jsonl").read_bytes() == line


def test_skip_bad_lines_sets_null_parquet_texts_aside(index_path: Path, tmp_path: Path) -> None:
    docs = training_docs()
    rows = [{"id": d["id"], "text": d["text"]} for d in docs] + [{"id": "null", "text": None}]
    (tmp_path / "in").mkdir()
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "in" / "t.parquet")
    failed = run_cli("decon", "filter", str(tmp_path / "in"), "-i", str(index_path), "-o", str(tmp_path / "o1"))
    assert failed.returncode == 2 and f"t.parquet: row {len(docs)}: text field 'text' is null" in failed.stderr
    report = filter_files(index_path, [tmp_path / "in"], tmp_path / "out", skip_bad_lines=True, progress=False)
    assert report["totals"]["bad_lines"] == 1
    parts = {name: read_docs(tmp_path / "out" / name / "t.parquet") for name in ("kept", "removed", "bad")}
    assert parts["bad"] == [{"id": "null", "text": None}]
    assert {d["id"] for d in parts["removed"]} == EXPECTED_REMOVED
    assert sorted(d["id"] for p in parts.values() for d in p) == sorted(r["id"] for r in rows)
