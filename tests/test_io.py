"""Atomic writes: readable like any other file, and a killed writer's leftovers are cleaned by the next run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from paloma.errors import PalomaError
from paloma.io import (
    atomic_dir,
    atomic_write,
    check_not_overlapping,
    check_output_dir,
    check_output_file,
    remove_stale_temporaries,
)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_files_and_folders_honour_the_umask(tmp_path, umask022):
    with atomic_write(tmp_path / "a.json") as handle:
        handle.write("{}")
    with atomic_dir(tmp_path / "site") as staging:
        (staging / "index.html").write_text("x")
    assert mode(tmp_path / "a.json") == 0o644
    assert mode(tmp_path / "site") == 0o755


def test_private_files_written_by_libraries_become_readable(tmp_path, umask022):
    import torch
    from safetensors.torch import save_file

    with atomic_dir(tmp_path / "model") as staging:
        save_file({"w": torch.zeros(2)}, staging / "model.safetensors")  # safetensors writes 0600
        (staging / "run.sh").write_text("#!/bin/sh\n")
        (staging / "run.sh").chmod(0o700)
    assert mode(tmp_path / "model" / "model.safetensors") == 0o644
    assert mode(tmp_path / "model" / "run.sh") == 0o755


def test_a_stricter_umask_is_honoured_too(tmp_path):
    old = os.umask(0o077)
    try:
        with atomic_write(tmp_path / "a", "wb") as handle:
            handle.write(b"x")
    finally:
        os.umask(old)
    assert mode(tmp_path / "a") == 0o600


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_write(tmp_path / "a") as handle:
        handle.write("half")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_refuses_a_non_empty_folder_unless_replacing(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old").write_text("keep")
    with pytest.raises(PalomaError, match="not empty"), atomic_dir(tmp_path / "out") as staging:
        (staging / "new").write_text("x")
    assert (tmp_path / "out" / "old").read_text() == "keep"
    with atomic_dir(tmp_path / "out", replace=True) as staging:
        (staging / "new").write_text("x")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["new"]


KILLED_WRITER = """
import os, sys
from paloma.io import atomic_write, atomic_dir
with atomic_write(sys.argv[1] + "/results.json") as handle:
    handle.write("x" * 1000)
    handle.flush()
    with atomic_dir(sys.argv[1] + "/site") as staging:
        open(os.path.join(staging, "page.html"), "w").write("half a site")
        os.kill(os.getpid(), 9)
"""


def test_leftovers_of_a_killed_writer_are_removed_by_the_next_write(tmp_path):
    proc = subprocess.run([sys.executable, "-c", KILLED_WRITER, str(tmp_path)], capture_output=True)
    assert proc.returncode == -9
    leftovers = sorted(p.name for p in tmp_path.iterdir())
    assert len(leftovers) == 2 and all(name.endswith(".tmp") for name in leftovers)
    with atomic_write(tmp_path / "results.json") as handle:
        handle.write("{}")
    with atomic_dir(tmp_path / "site") as staging:
        (staging / "page.html").write_text("whole")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "site"]


def test_a_live_writers_temporary_is_never_removed(tmp_path):
    with atomic_write(tmp_path / "shared.bin", "wb") as handle:
        handle.write(b"partial")
        assert remove_stale_temporaries(tmp_path) == []  # this process is alive
        assert len(list(tmp_path.iterdir())) == 1
    assert (tmp_path / "shared.bin").read_bytes() == b"partial"


def test_other_files_are_never_taken_for_temporaries(tmp_path):
    for name in (".gitignore", "x.tmp", ".cache", "notes.txt"):
        (tmp_path / name).write_text("mine")
    assert remove_stale_temporaries(tmp_path) == []


def test_an_output_that_contains_or_is_an_input_is_refused(tmp_path):
    (tmp_path / "out" / "kept").mkdir(parents=True)
    (tmp_path / "out" / "kept" / "shard.jsonl").write_text("{}\n")
    with pytest.raises(PalomaError, match="contains the input"):
        check_not_overlapping(tmp_path / "out", [tmp_path / "out" / "kept" / "shard.jsonl"])
    with pytest.raises(PalomaError, match="lies inside the input folder"):
        check_not_overlapping(tmp_path / "out" / "kept" / "new", [tmp_path / "out" / "kept"])
    with pytest.raises(PalomaError, match="is also an input"):
        check_output_file(tmp_path / "out" / "kept" / "shard.jsonl", [tmp_path / "out" / "kept" / "shard.jsonl"])
    check_not_overlapping(tmp_path / "elsewhere", [tmp_path / "out"])


def test_output_locations_of_the_wrong_kind_are_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(PalomaError, match="is a file"):
        check_output_dir(tmp_path / "file")
    with pytest.raises(PalomaError, match="is a folder"):
        check_output_file(tmp_path)
    with pytest.raises(PalomaError, match="is not a folder"):
        check_output_dir(tmp_path / "file" / "below")
    with pytest.raises(PalomaError, match="is not a folder"):
        check_output_file(Path("/dev/null/x"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_an_unwritable_location_is_refused(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(PalomaError, match="not writable"):
        check_output_dir(locked / "out")
