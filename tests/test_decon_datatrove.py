"""The datatrove step makes the same decisions as `paloma decon filter` (run with datatrove's local executor)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

pytest.importorskip("datatrove")

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from paloma.decon import build_index
from paloma.decon.datatrove import PalomaDeconFilter
from paloma.decon.remote import local_index_file
from paloma.errors import PalomaError
from tests.decon_data import EXPECTED_REMOVED, make_paloma, run_cli, training_docs


def _ids(folder: Path) -> list[str]:
    ids = []
    for path in sorted(folder.rglob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            ids += [json.loads(line)["id"] for line in handle]
    return ids


def test_datatrove_pipeline_matches_the_cli(tmp_path: Path) -> None:
    index_path = build_index(make_paloma(tmp_path / "paloma"), progress=False).save(tmp_path / "paloma.decon")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # datatrove's readers drop documents with empty text, so the corpus has none
    per_shard = [d for d in training_docs() if d["text"]]
    docs = [{**d, "id": f"{shard}-{d['id']}"} for shard in range(3) for d in per_shard]
    for shard in range(3):
        with gzip.open(corpus / f"shard-{shard}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for doc in docs[shard * len(per_shard) : (shard + 1) * len(per_shard)]:
                handle.write(json.dumps(doc) + "\n")

    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(corpus), glob_pattern="*.jsonl.gz"),
            PalomaDeconFilter(index_path, exclusion_writer=JsonlWriter(str(tmp_path / "dt" / "removed"))),
            JsonlWriter(str(tmp_path / "dt" / "kept")),
        ],
        tasks=2,
        workers=1,
        logging_dir=str(tmp_path / "dt" / "logs"),
    ).run()
    run_cli("decon", "filter", corpus, "-i", index_path, "-o", tmp_path / "cli", "--quiet", check=True)

    assert sorted(_ids(tmp_path / "dt" / "kept")) == sorted(_ids(tmp_path / "cli" / "kept"))
    assert sorted(_ids(tmp_path / "dt" / "removed")) == sorted(_ids(tmp_path / "cli" / "removed"))
    assert {i.split("-", 1)[1] for i in _ids(tmp_path / "dt" / "removed")} == EXPECTED_REMOVED
    assert len(_ids(tmp_path / "dt" / "kept")) + len(_ids(tmp_path / "dt" / "removed")) == len(docs)


def _corpus(folder: Path) -> list[dict]:
    folder.mkdir(parents=True)
    docs = [{**d, "id": f"{shard}-{d['id']}"} for shard in range(4) for d in training_docs() if d["text"]]
    per_shard = len(docs) // 4
    for shard in range(4):
        with gzip.open(folder / f"shard-{shard}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for doc in docs[shard * per_shard : (shard + 1) * per_shard]:
                handle.write(json.dumps(doc) + "\n")
    return docs


def _run(step: PalomaDeconFilter, corpus: Path, out: Path, workers: int) -> None:
    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(corpus), glob_pattern="*.jsonl.gz"),
            step,
            JsonlWriter(str(out / "kept")),
        ],
        tasks=4,
        workers=workers,
        logging_dir=str(out / "logs"),
    ).run()


def test_a_step_built_with_a_relative_path_runs_in_worker_processes_elsewhere(tmp_path: Path, monkeypatch) -> None:
    """Issue 13: the step kept the index path relative; unpickled in another working directory it failed."""
    build_index(make_paloma(tmp_path / "paloma"), progress=False).save(tmp_path / "here" / "paloma.decon")
    docs = _corpus(tmp_path / "corpus")
    monkeypatch.chdir(tmp_path / "here")
    step = PalomaDeconFilter("paloma.decon")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # worker processes start here, where "paloma.decon" does not exist
    _run(step, tmp_path / "corpus", tmp_path / "dt", workers=2)
    kept = _ids(tmp_path / "dt" / "kept")
    assert sorted(kept) == sorted(d["id"] for d in docs if d["id"].split("-", 1)[1] not in EXPECTED_REMOVED)


def test_a_remote_index_is_fetched_once_into_the_cache_verified_and_memory_mapped(tmp_path: Path) -> None:
    """A `file://` URL goes through fsspec like `s3://` would: fetched into the cache, named by checksum."""
    index = build_index(make_paloma(tmp_path / "paloma"), progress=False)
    index.save(tmp_path / "store" / "paloma.decon")
    url = (tmp_path / "store" / "paloma.decon").as_uri()
    docs = _corpus(tmp_path / "corpus")
    cache = tmp_path / "cache"
    step = PalomaDeconFilter(url, cache_dir=cache, checksum=index.checksum)
    _run(step, tmp_path / "corpus", tmp_path / "dt", workers=2)
    kept = _ids(tmp_path / "dt" / "kept")
    assert sorted(kept) == sorted(d["id"] for d in docs if d["id"].split("-", 1)[1] not in EXPECTED_REMOVED)
    cached = sorted(cache.iterdir())
    assert [p.name for p in cached] == [index.checksum.split(":", 1)[1] + ".decon"]
    assert cached[0].read_bytes() == (tmp_path / "store" / "paloma.decon").read_bytes()


def test_remote_indexes_are_checked_against_the_expected_checksum(tmp_path: Path) -> None:
    import fsspec

    index = build_index(make_paloma(tmp_path / "paloma"), progress=False)
    data = index.save(tmp_path / "paloma.decon").read_bytes()
    with fsspec.open("memory://indexes/paloma.decon", "wb") as handle:
        handle.write(data)
    cache = tmp_path / "cache"
    path = local_index_file("memory://indexes/paloma.decon", cache, checksum=index.checksum)
    assert path.parent == cache and path.read_bytes() == data
    step = PalomaDeconFilter("memory://indexes/paloma.decon", cache_dir=cache)
    assert step.index.checksum == index.checksum and step.index.path == path
    with pytest.raises(PalomaError, match="is not the expected blake2b-256:0000"):
        local_index_file("memory://indexes/paloma.decon", cache, checksum="blake2b-256:" + "0" * 64)
    # a damaged copy in the cache is fetched again; a damaged remote file is refused
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    assert local_index_file("memory://indexes/paloma.decon", cache).read_bytes() == data
    with fsspec.open("memory://indexes/paloma.decon", "wb") as handle:
        handle.write(data[:-1] + bytes([data[-1] ^ 1]))
    path.unlink()
    with pytest.raises(PalomaError, match="does not match its checksum"):
        local_index_file("memory://indexes/paloma.decon", cache)
    assert not list(cache.iterdir())
    with pytest.raises(PalomaError, match="cannot read the index"):
        local_index_file("memory://indexes/missing.decon", cache)


def test_the_cli_filters_and_verifies_with_an_index_url(tmp_path: Path, monkeypatch) -> None:
    index = build_index(make_paloma(tmp_path / "paloma"), progress=False)
    url = index.save(tmp_path / "store" / "paloma.decon").as_uri()
    monkeypatch.setenv("PALOMA_DECON_CACHE", str(tmp_path / "cache"))
    docs = _corpus(tmp_path / "corpus")
    run_cli("decon", "filter", tmp_path / "corpus", "-i", url, "-o", tmp_path / "out", "--quiet", check=True)
    report = json.loads((tmp_path / "out" / "decon-report.json").read_text())
    assert report["index"]["checksum"] == index.checksum
    assert report["totals"]["removed_documents"] == sum(d["id"].split("-", 1)[1] in EXPECTED_REMOVED for d in docs)
    assert run_cli("decon", "verify", tmp_path / "out" / "kept", "-i", url).returncode == 0
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [index.checksum.split(":", 1)[1] + ".decon"]
