"""No lost or mixed document, ever: every integrity defect of `paloma decon filter` and `info` found in issue 13.

The invariant behind all of them: for every input file, kept + removed + bad is the input, document for
document and byte for byte, and the report describes exactly the files on disk.
"""

from __future__ import annotations

import errno
import gzip
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from paloma.decon import build_index
from paloma.decon.filter import REPORT_NAME, STATE_DIR, filter_files
from paloma.errors import PalomaError
from tests.conftest import paloma_env
from tests.decon_data import EVAL_C4, EVAL_REDDIT, make_paloma, run_cli, training_docs


@pytest.fixture(scope="module")
def indexes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two indexes that remove different documents: the full one, and one of the Reddit source only."""
    root = make_paloma(tmp_path_factory.mktemp("paloma"))
    folder = tmp_path_factory.mktemp("indexes")
    return {
        "all": build_index(root, progress=False).save(folder / "all.decon"),
        "reddit": build_index(root, sources=["dolma_100_subreddits"], progress=False).save(folder / "reddit.decon"),
    }


def lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = gzip.decompress(data)
    elif path.name.endswith(".zst"):
        data = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
    return data.splitlines(keepends=True)


def jsonl(docs: list[dict]) -> bytes:
    return b"".join(json.dumps(d, ensure_ascii=False).encode() + b"\n" for d in docs)


BAD_LINES = [b'{"text": "cut off\n', b'{"id": "no-text"}\n']


def mixed_corpus(folder: Path) -> dict[str, bytes]:
    """JSONL, gzip and zstd inputs holding clean, contaminated and bad lines; returns each file's raw lines."""
    lines = jsonl(training_docs()).splitlines(keepends=True)
    data = b"".join(lines[:4] + BAD_LINES[:1] + lines[4:] + BAD_LINES[1:])
    files = {"a.jsonl": data, "sub/b.jsonl.gz": gzip.compress(data), "sub/c.jsonl.zst": zstd_frames(data, 3)}
    for name, raw in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(raw)
    return {name: data for name in files}


def zstd_frames(data: bytes, frames: int) -> bytes:
    """`data` as several concatenated zstd frames (as `cat a.zst b.zst` or parallel compressors write)."""
    step = -(-len(data) // frames)
    return b"".join(zstandard.ZstdCompressor().compress(data[i : i + step]) for i in range(0, len(data), step))


def assert_nothing_lost_or_mixed(out: Path, inputs: dict[str, bytes]) -> dict:
    """kept + removed + bad = input for every file, in input order within each part; the report agrees."""
    report = json.loads((out / REPORT_NAME).read_text())
    per_file = {f["file"]: f for f in report["files"]}
    assert set(per_file) == set(inputs)
    for name, data in inputs.items():
        original = data.splitlines(keepends=True)
        parts = {p: lines_of(out / p / name) if (out / p / name).exists() else [] for p in ("kept", "removed", "bad")}
        assert sorted(parts["kept"] + parts["removed"] + parts["bad"]) == sorted(original), name
        for part in parts.values():  # each part keeps the input's order
            remaining = iter(original)
            assert all(line in remaining for line in part), name  # a subsequence of the input
        stats = per_file[name]
        assert (len(parts["kept"]), len(parts["removed"]), len(parts["bad"])) == (
            stats["kept_documents"],
            stats["removed_documents"],
            stats["bad_lines"],
        ), name
    written = {str(p.relative_to(out / part)) for part in ("kept", "removed", "bad") for p in (out / part).rglob("*")}
    assert {name for name in written if name != "sub"} <= set(inputs), "a file no input accounts for"
    return report


# ---- an output that contains an input -------------------------------------------------------------------
def test_filtering_a_runs_own_kept_folder_into_that_run_is_refused(indexes, tmp_path: Path) -> None:
    """Issue 13: `filter OUT/kept -i other.decon -o OUT` rewrote its own input (1,159 → 847 documents)."""
    corpus = tmp_path / "corpus"
    inputs = mixed_corpus(corpus)
    out = tmp_path / "out"
    run_cli("decon", "filter", corpus, "-i", indexes["reddit"], "-o", out, "--skip-bad-lines", "--quiet", check=True)
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    for again in ((), ("--overwrite",), ("--resume",)):
        proc = run_cli("decon", "filter", out / "kept", "-i", indexes["all"], "-o", out, "--quiet", *again)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert "contains the input" in proc.stderr
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert_nothing_lost_or_mixed(out, inputs)


def test_an_output_inside_an_input_folder_or_equal_to_the_index_is_refused(indexes, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    mixed_corpus(corpus)
    inside = run_cli("decon", "filter", corpus, "-i", indexes["all"], "-o", corpus / "sub" / "out")
    assert inside.returncode == 2 and "lies inside the input folder" in inside.stderr
    assert not (corpus / "sub" / "out").exists()
    with pytest.raises(PalomaError, match="contains the input"):
        filter_files(indexes["all"], [corpus], indexes["all"].parent, progress=False)


# ---- reruns: resume the same run or start clean ---------------------------------------------------------
def test_a_rerun_with_another_index_is_refused_and_overwrite_leaves_no_old_document(indexes, tmp_path: Path) -> None:
    """Issue 13: a rerun with another index left the old removed/ and bad/ files (684 documents in both)."""
    corpus = tmp_path / "corpus"
    inputs = mixed_corpus(corpus)
    out = tmp_path / "out"
    first = filter_files(indexes["all"], [corpus], out, skip_bad_lines=True, progress=False)
    assert first["totals"]["removed_documents"] == 3 * 4 and (out / "bad").is_dir()

    refused = run_cli("decon", "filter", corpus, "-i", indexes["reddit"], "-o", out, "--quiet")
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1
    assert "holds an earlier `paloma decon filter` run" in refused.stderr
    assert "--resume" in refused.stderr and "--overwrite" in refused.stderr
    cannot = run_cli("decon", "filter", corpus, "-i", indexes["reddit"], "-o", out, "--quiet", "--resume")
    assert cannot.returncode == 2 and "other index" in cannot.stderr and "--overwrite" in cannot.stderr

    (out / "notes.txt").write_text("not ours\n")
    second = filter_files(indexes["reddit"], [corpus], out, overwrite=True, skip_bad_lines=True, progress=False)
    assert second["totals"]["removed_documents"] == 3  # dirty-last only, once per file
    report = assert_nothing_lost_or_mixed(out, inputs)
    assert report["index"]["checksum"] == second["index"]["checksum"]
    assert (out / "notes.txt").read_text() == "not ours\n"  # --overwrite removes the run, not the folder


def test_resume_skips_finished_files_and_refuses_other_options_or_inputs(indexes, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    inputs = mixed_corpus(corpus)
    out = tmp_path / "out"
    filter_files(indexes["all"], [corpus], out, skip_bad_lines=True, progress=False)
    stamp = (out / "kept" / "a.jsonl").stat().st_mtime_ns
    resumed = filter_files(indexes["all"], [corpus], out, skip_bad_lines=True, resume=True, progress=False)
    assert all(f["resumed"] for f in resumed["files"])
    assert (out / "kept" / "a.jsonl").stat().st_mtime_ns == stamp
    assert_nothing_lost_or_mixed(out, inputs)
    with pytest.raises(PalomaError, match="other options"):
        filter_files(indexes["all"], [corpus], out, resume=True, progress=False)  # without --skip-bad-lines
    with pytest.raises(PalomaError, match=r"other input files \(not given now: sub/b.jsonl.gz"):
        filter_files(indexes["all"], [corpus / "a.jsonl"], out, skip_bad_lines=True, resume=True, progress=False)
    with pytest.raises(PalomaError, match="holds no earlier run to resume"):
        filter_files(indexes["all"], [corpus], tmp_path / "new", resume=True, progress=False)


def test_a_redone_file_loses_its_old_removed_documents(indexes, tmp_path: Path) -> None:
    """A file changed since the run is redone; if it now removes nothing, its old removed/ file must go."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_bytes(jsonl(training_docs()))
    out = tmp_path / "out"
    filter_files(indexes["all"], [corpus], out, progress=False)
    assert (out / "removed" / "a.jsonl").exists()
    clean = [d for d in training_docs() if d["id"] == "clean-1"]
    (corpus / "a.jsonl").write_bytes(jsonl(clean))
    filter_files(indexes["all"], [corpus], out, resume=True, progress=False)
    assert not (out / "removed" / "a.jsonl").exists()
    assert_nothing_lost_or_mixed(out, {"a.jsonl": jsonl(clean)})


# ---- truncated compressed input -------------------------------------------------------------------------
def _truncated(folder: Path, name: str, data: bytes) -> Path:
    packed = gzip.compress(data) if name.endswith(".gz") else zstd_frames(data, 1)
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(packed[: len(packed) // 2])
    return path


@pytest.mark.parametrize("name", ["cut.jsonl.zst", "cut.jsonl.gz"])
@pytest.mark.parametrize("skip_bad_lines", [False, True])
def test_a_truncated_compressed_file_is_an_error_and_never_marked_done(
    indexes, tmp_path: Path, name: str, skip_bad_lines: bool
) -> None:
    """Issue 13: a cut .jsonl.zst read as 0 documents, exit 0, marked done; a resume skipped it forever."""
    data = jsonl(training_docs() * 40)
    path = _truncated(tmp_path / "corpus", name, data)
    (tmp_path / "corpus" / "a-fine.jsonl").write_bytes(jsonl(training_docs()))  # filtered first
    out = tmp_path / "out"
    argv = ["decon", "filter", tmp_path / "corpus", "-i", indexes["all"], "-o", out, "--quiet"]
    proc = run_cli(*argv, *(["--skip-bad-lines"] if skip_bad_lines else []))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert name in proc.stderr and "truncated" in proc.stderr and "rerun with --resume" in proc.stderr
    assert not (out / STATE_DIR / f"{name}.json").exists() and not (out / REPORT_NAME).exists()
    # the file is repaired: a resume redoes it (and keeps the finished one)
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else zstd_frames(data, 4))
    report = filter_files(indexes["all"], [tmp_path / "corpus"], out, skip_bad_lines=skip_bad_lines, resume=True)
    assert {f["file"]: f["documents"] for f in report["files"]} == {name: 40 * 14, "a-fine.jsonl": 14}
    assert [f["file"] for f in report["files"] if f.get("resumed")] == ["a-fine.jsonl"]


def test_multi_frame_zstd_files_are_read_to_the_end(indexes, tmp_path: Path) -> None:
    data = jsonl(training_docs() * 30)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "frames.jsonl.zst").write_bytes(zstd_frames(data, 7))
    report = filter_files(indexes["all"], [tmp_path / "in"], tmp_path / "out", progress=False)
    assert report["totals"]["documents"] == 30 * 14
    assert_nothing_lost_or_mixed(tmp_path / "out", {"frames.jsonl.zst": data})


def test_a_truncated_evaluation_file_stops_the_index_build(tmp_path: Path) -> None:
    root = make_paloma(tmp_path / "paloma")
    data = jsonl([{"text": EVAL_C4, "id": str(i)} for i in range(2000)])
    _truncated(root / "c4_en" / "test", "test-1.jsonl.zst", data)
    with pytest.raises(PalomaError, match=r"test-1\.jsonl\.zst.*truncated"):
        build_index(root, progress=False)


# ---- a failed run leaves nothing; a killed run's temporaries go on the next run ---------------------------
def test_a_run_that_fails_before_any_file_finished_leaves_nothing(indexes, tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.jsonl").write_bytes(jsonl(training_docs()) + b"[1, 2]\n")
    proc = run_cli("decon", "filter", tmp_path / "in", "-i", indexes["all"], "-o", tmp_path / "out", "--quiet")
    assert proc.returncode == 2 and "bad.jsonl:15: expected a JSON object" in proc.stderr
    assert not (tmp_path / "out").exists()
    # the same folder can be used again at once, with no flag
    (tmp_path / "in" / "bad.jsonl").write_bytes(jsonl(training_docs()))
    run_cli("decon", "filter", tmp_path / "in", "-i", indexes["all"], "-o", tmp_path / "out", "--quiet", check=True)


def test_a_killed_run_resumes_and_leaves_no_temporary_file(indexes, tmp_path: Path) -> None:
    """Issue 13: SIGKILL left `.<name>.<random>.tmp` files that later runs never removed."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.jsonl").write_bytes(jsonl(training_docs()))
    fifo = corpus / "b.jsonl"  # a reader that blocks after its first batch, so the kill lands mid-file
    os.mkfifo(fifo)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "paloma", "decon", "filter", str(corpus), "-i", str(indexes["all"]), "-o", str(out)]
    proc = subprocess.Popen([*cmd, "--quiet"], env=paloma_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    batch = jsonl(training_docs() * 200)  # 2,800 documents: more than one batch of 2,048
    with os.fdopen(_open_fifo_for_writing(fifo, proc), "wb") as writer:
        writer.write(batch)
        writer.flush()
        deadline = time.monotonic() + 60
        while not list((out / "kept").glob(".b.jsonl.*.tmp")) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert list((out / "kept").glob(".b.jsonl.*.tmp")), proc.stderr.read() if proc.poll() is not None else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    leftovers = sorted(p.name for p in out.rglob("*.tmp"))
    assert leftovers, "the kill should have left the writer's temporaries"
    fifo.unlink()
    (corpus / "b.jsonl").write_bytes(batch)
    refused = run_cli("decon", "filter", corpus, "-i", indexes["all"], "-o", out, "--quiet")
    assert refused.returncode == 2 and "--resume" in refused.stderr
    run_cli("decon", "filter", corpus, "-i", indexes["all"], "-o", out, "--quiet", "--resume", check=True)
    assert not list(out.rglob("*.tmp"))
    assert_nothing_lost_or_mixed(out, {"a.jsonl": jsonl(training_docs()), "b.jsonl": batch})


def _open_fifo_for_writing(fifo: Path, proc: subprocess.Popen) -> int:
    """Wait (at most a minute) until the filter opens the FIFO for reading; never block on a dead reader."""
    deadline = time.monotonic() + 60
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO or proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"the filter never read {fifo}: {proc.stderr.read() if proc.stderr else ''}"
                ) from None
            time.sleep(0.05)
            continue
        os.set_blocking(fd, True)
        return fd


# ---- info -------------------------------------------------------------------------------------------------
def _rewrite_header(path: Path, out: Path, change) -> Path:
    data = bytearray(path.read_bytes())
    length = int.from_bytes(data[8:16], "little")
    header = json.loads(data[16 : 16 + length])
    change(header)
    new = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()  # shorter than the original
    assert len(new) <= length, "the changed header must fit in place"
    data[16 : 16 + length] = new.ljust(length)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda h: h.pop("counts"), "index header is incomplete (no counts)"),
        (lambda h: h.pop("min_key_bytes"), "index header is incomplete (no min_key_bytes)"),
        (lambda h: h.update(sections=[1]), "index header is incomplete (no sections)"),
        (lambda h: h["sections"]["hi"].update(offset="0"), "sections.hi: offset and length must be counts"),
        (lambda h: h.update(checksum=7), "checksum must be 'blake2b-256:<hex>'"),
        (lambda h: h["rules"].pop("match"), "rules must be an object with a match mode"),
        (lambda h: h.update(domains=[["c4_en"]]), "domains must be a list of [source, domain]"),
    ],
)
def test_malformed_headers_are_one_line_errors_everywhere(indexes, tmp_path: Path, change, message: str) -> None:
    """Issue 13: a header missing keys gave a KeyError traceback."""
    damaged = _rewrite_header(indexes["all"], tmp_path / "damaged.decon", change)
    (tmp_path / "c.jsonl").write_bytes(jsonl(training_docs()))
    for argv in (("info", damaged), ("filter", tmp_path / "c.jsonl", "-i", damaged, "--dry-run")):
        proc = run_cli("decon", *argv)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
        assert message in proc.stderr and "Traceback" not in proc.stderr


def test_info_verifies_the_checksum(indexes, tmp_path: Path) -> None:
    """Issue 13: `info` printed a corrupt index's header checksum and exited 0."""
    good = run_cli("decon", "info", indexes["all"])
    assert good.returncode == 0 and "checksum verified" in good.stderr
    assert json.loads(good.stdout)["checksum"].startswith("blake2b-256:")
    data = bytearray(indexes["all"].read_bytes())
    data[-20] ^= 0xFF
    (tmp_path / "flipped.decon").write_bytes(bytes(data))
    bad = run_cli("decon", "info", tmp_path / "flipped.decon")
    assert bad.returncode == 2 and "index is corrupt" in bad.stderr and not bad.stdout


# ---- permissions ------------------------------------------------------------------------------------------
def test_decon_outputs_are_readable_by_others_under_umask_022(tmp_path: Path) -> None:
    from datasets import Dataset

    old = os.umask(0o022)
    try:
        index = build_index(make_paloma(tmp_path / "paloma"), progress=False).save(tmp_path / "i" / "p.decon")
        corpus = tmp_path / "corpus"
        mixed_corpus(corpus)
        pq.write_table(pa.Table.from_pylist(training_docs()[:-1]), corpus / "t.parquet")
        Dataset.from_list(training_docs()[:4]).save_to_disk(str(corpus / "ds"))
        filter_files(index, [corpus], tmp_path / "out", skip_bad_lines=True, progress=False)
        run_cli("decon", "verify", tmp_path / "out" / "kept", "-i", index, "--report", tmp_path / "v.json", check=True)
    finally:
        os.umask(old)
    paths = [index, tmp_path / "v.json", *(tmp_path / "out").rglob("*")]
    assert len(paths) > 20
    for path in paths:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    assert (tmp_path / "out" / "removed" / "ds").is_dir() and (tmp_path / "out" / "bad" / "a.jsonl").is_file()


def test_reddit_index_removes_only_reddit_paragraphs(indexes) -> None:
    """The two indexes of this module really differ (the rerun tests rely on it)."""
    from paloma.decon import ContaminationIndex

    reddit = ContaminationIndex.load(indexes["reddit"])
    assert EVAL_REDDIT in reddit and EVAL_C4 not in reddit
