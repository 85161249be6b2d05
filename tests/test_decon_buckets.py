"""`paloma decon filter` where corpora live: inputs and outputs in buckets (issue 22, item 1).

Against a real S3 API (moto's server on 127.0.0.1, started and stopped here) and fsspec's `memory://`, the
filter must make the same decisions and write the same bytes as on local files, commit every output whole
(temporary object, then rename), and resume a broken run by redoing exactly the files whose state never
committed, removing what killed writers left.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from paloma.decon import build_index
from paloma.decon.filter import REPORT_NAME, STATE_DIR, filter_files
from paloma.decon.verify import verify_files
from paloma.errors import PalomaError
from tests.buckets import BUCKET, s3_bucket, s3_server
from tests.decon_data import EXPECTED_REMOVED, jsonl_lines, make_paloma, run_cli, training_docs

s3fs = pytest.importorskip("s3fs")
pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def index_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_paloma(tmp_path_factory.mktemp("paloma"))
    return build_index(root, progress=False).save(tmp_path_factory.mktemp("index") / "paloma.decon")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def s3(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch):
    """An empty bucket on the local server; `s3://paloma-test/...` URLs reach it."""
    yield s3_bucket(s3_endpoint, monkeypatch)
    s3fs.S3FileSystem.clear_instance_cache()


def corpus_files() -> dict[str, bytes]:
    """Three input files: plain, gzip, and one more plain in a subfolder (names relative to the corpus)."""
    docs = training_docs()
    return {
        "a.jsonl": jsonl_lines(docs),
        "b.jsonl.gz": gzip.compress(jsonl_lines(list(reversed(docs))), mtime=0),
        "sub/c.jsonl": jsonl_lines(docs[:3]),
    }


def local_corpus(folder: Path) -> Path:
    for rel, data in corpus_files().items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    return folder


def upload(fs, prefix: str) -> str:
    for rel, data in corpus_files().items():
        fs.pipe(f"{prefix}/{rel}", data)
    return f"s3://{prefix}"


def outputs_of(read: callable, names: list[str]) -> dict[str, bytes]:
    """kept/ and removed/ bytes per file (gzip outputs compared decompressed: the codec may stamp nothing else)."""
    found = {}
    for name in names:
        data = read(name)
        if data is not None:
            found[name] = gzip.decompress(data) if name.endswith(".gz") else data
    return found


def output_names() -> list[str]:
    return [f"{part}/{rel}" for part in ("kept", "removed") for rel in corpus_files()]


def local_reader(root: Path) -> callable:
    return lambda name: (root / name).read_bytes() if (root / name).is_file() else None


def s3_reader(fs, prefix: str) -> callable:
    fs.invalidate_cache()
    return lambda name: fs.cat(f"{prefix}/{name}") if fs.exists(f"{prefix}/{name}") else None


def decisions(report: dict) -> list[tuple]:
    keys = ("documents", "kept_documents", "removed_documents", "matched_paragraphs", "bytes", "removed_bytes")
    return [(f["file"], *(f[k] for k in keys)) for f in report["files"]]


def test_s3_inputs_and_outputs_give_the_local_decisions_and_bytes(s3, index_path: Path, tmp_path: Path):
    local = filter_files(index_path, [local_corpus(tmp_path / "corpus")], tmp_path / "out", progress=False)
    corpus = upload(s3, f"{BUCKET}/corpus")
    remote = filter_files(index_path, [corpus], f"s3://{BUCKET}/out", progress=False)

    assert decisions(remote) == decisions(local)
    assert remote["totals"]["removed_documents"] == local["totals"]["removed_documents"] > 0
    expected = outputs_of(local_reader(tmp_path / "out"), output_names())
    assert outputs_of(s3_reader(s3, f"{BUCKET}/out"), output_names()) == expected
    removed_ids = {json.loads(line)["id"] for line in expected["removed/a.jsonl"].splitlines()}
    assert removed_ids == EXPECTED_REMOVED
    assert json.loads(s3.cat(f"{BUCKET}/out/{REPORT_NAME}"))["totals"] == remote["totals"]
    assert not [name for name in s3.find(BUCKET) if name.endswith(".tmp")]  # every temporary was committed
    verified = verify_files(index_path, [f"s3://{BUCKET}/out/kept"])
    assert verified["clean"] and verified["documents_checked"] == remote["totals"]["kept_documents"]


def test_the_index_may_live_in_the_bucket_too(s3, index_path: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PALOMA_DECON_CACHE", str(tmp_path / "cache"))
    s3.put(str(index_path), f"{BUCKET}/paloma.decon")
    corpus = upload(s3, f"{BUCKET}/corpus")
    result = run_cli(
        "decon", "filter", corpus, "-i", f"s3://{BUCKET}/paloma.decon", "-o", f"s3://{BUCKET}/out", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    local = filter_files(index_path, [local_corpus(tmp_path / "corpus")], tmp_path / "out", progress=False)
    s3.invalidate_cache()
    remote = json.loads(s3.cat(f"{BUCKET}/out/{REPORT_NAME}"))
    assert decisions(remote) == decisions(local)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_broken_s3_run_resumes_redoing_only_unfinished_files(s3, index_path: Path, tmp_path: Path):
    from paloma.io import _host_tag

    corpus = upload(s3, f"{BUCKET}/corpus")
    s3.pipe(f"{BUCKET}/corpus/b.jsonl.gz", gzip.compress(jsonl_lines(training_docs()))[:-30])  # cut short
    out = f"s3://{BUCKET}/out"
    with pytest.raises(PalomaError, match=r"truncated.*rerun with --resume"):
        filter_files(index_path, [corpus], out, progress=False)
    s3.invalidate_cache()
    state = f"{BUCKET}/out/{STATE_DIR}"
    assert s3.exists(f"{state}/a.jsonl.json") and not s3.exists(f"{state}/b.jsonl.gz.json")
    a_state = s3.cat(f"{state}/a.jsonl.json")
    # what a writer killed mid-file leaves: a temporary object of a dead process, and no state for the file
    leftover = f"{BUCKET}/out/kept/sub/.c.jsonl.{_host_tag()}-{_dead_pid()}.abcd1234.tmp"
    s3.pipe(leftover, b'{"text": "half a docu')

    upload(s3, f"{BUCKET}/corpus")  # the damaged file is repaired
    resumed = filter_files(index_path, [corpus], out, progress=False, resume=True)

    assert [f["file"] for f in resumed["files"] if f.get("resumed")] == ["a.jsonl"]
    s3.invalidate_cache()
    assert s3.cat(f"{state}/a.jsonl.json") == a_state  # the finished file was not redone
    assert not s3.exists(leftover)
    local = filter_files(index_path, [local_corpus(tmp_path / "corpus")], tmp_path / "out", progress=False)
    assert decisions(resumed) == decisions(local)
    expected = outputs_of(local_reader(tmp_path / "out"), output_names())
    assert outputs_of(s3_reader(s3, f"{BUCKET}/out"), output_names()) == expected


def test_a_plain_rerun_into_an_s3_run_is_refused(s3, index_path: Path):
    corpus = upload(s3, f"{BUCKET}/corpus")
    filter_files(index_path, [corpus], f"s3://{BUCKET}/out", progress=False)
    with pytest.raises(PalomaError, match="use --resume to continue it or --overwrite"):
        filter_files(index_path, [corpus], f"s3://{BUCKET}/out", progress=False)
    with pytest.raises(PalomaError, match="lies inside the input folder"):
        filter_files(index_path, [corpus], f"{corpus}/out", progress=False)


def test_memory_filesystem_round_trip(index_path: Path, tmp_path: Path):
    import fsspec

    fs = fsspec.filesystem("memory")
    for rel, data in corpus_files().items():
        fs.pipe(f"/mem-corpus/{rel}", data)
    try:
        remote = filter_files(index_path, ["memory://mem-corpus"], "memory://mem-out", progress=False)
        local = filter_files(index_path, [local_corpus(tmp_path / "corpus")], tmp_path / "out", progress=False)
        assert decisions(remote) == decisions(local)
        read = lambda name: fs.cat(f"/mem-out/{name}") if fs.exists(f"/mem-out/{name}") else None  # noqa: E731
        assert outputs_of(read, output_names()) == outputs_of(local_reader(tmp_path / "out"), output_names())
    finally:
        fs.rm("/mem-corpus", recursive=True)
        fs.rm("/mem-out", recursive=True)


def test_a_run_killed_mid_way_in_s3_resumes_to_the_local_result(s3, index_path: Path, tmp_path: Path):
    """SIGKILL, not an exception: the run stops wherever it is, mid-object included."""
    import os
    import signal
    import time

    docs = training_docs()
    files = {f"part-{k:02d}.jsonl": jsonl_lines(docs * 40) for k in range(30)}
    (tmp_path / "corpus").mkdir()
    for name, data in files.items():
        (tmp_path / "corpus" / name).write_bytes(data)
        s3.pipe(f"{BUCKET}/corpus/{name}", data)
    command = [sys.executable, "-m", "paloma", "decon", "filter", f"s3://{BUCKET}/corpus", "-i", str(index_path)]
    # its own process group, killed whole as a scheduler kills a job: no worker of it outlives the kill
    child = subprocess.Popen([*command, "-o", f"s3://{BUCKET}/out", "--quiet"], env=dict(os.environ),
                             start_new_session=True)  # fmt: skip
    state = f"{BUCKET}/out/{STATE_DIR}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        s3.invalidate_cache()
        if [n for n in s3.find(state) if n.endswith(".jsonl.json")]:
            break
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "the run ended before it could be killed"

    resumed = filter_files(index_path, [f"s3://{BUCKET}/corpus"], f"s3://{BUCKET}/out", progress=False, resume=True)
    skipped = [f["file"] for f in resumed["files"] if f.get("resumed")]
    assert 0 < len(skipped) < len(files)
    local = filter_files(index_path, [tmp_path / "corpus"], tmp_path / "out", progress=False)
    assert decisions(resumed) == decisions(local)
    s3.invalidate_cache()
    for part in ("kept", "removed"):
        for name in files:
            assert s3.cat(f"{BUCKET}/out/{part}/{name}") == (tmp_path / "out" / part / name).read_bytes()
    assert not [name for name in s3.find(BUCKET) if name.endswith(".tmp")]


def test_file_urls_are_local_paths_with_the_local_checks(index_path: Path, tmp_path: Path):
    corpus = local_corpus(tmp_path / "corpus")
    with pytest.raises(PalomaError, match="lies inside the input folder"):
        filter_files(index_path, [corpus.as_uri()], (corpus / "out").as_uri(), progress=False)
    by_url = filter_files(index_path, [corpus.as_uri()], (tmp_path / "a").as_uri(), progress=False)
    by_path = filter_files(index_path, [corpus], tmp_path / "b", progress=False)
    assert decisions(by_url) == decisions(by_path)
    assert outputs_of(local_reader(tmp_path / "a"), output_names()) == outputs_of(
        local_reader(tmp_path / "b"), output_names()
    )
