"""paloma.outputs: one resumable-output helper, the same contract on local folders and fsspec URLs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fsspec
import pytest

from paloma.io import _host_tag
from paloma.outputs import Outputs


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(params=["local", "memory"])
def out(request, tmp_path: Path):
    if request.param == "local":
        yield Outputs(tmp_path / "out")
        return
    root = f"memory://outputs-test-{tmp_path.name}"
    yield Outputs(root)
    fs = fsspec.filesystem("memory")
    if fs.exists(root[len("memory://") :]):
        fs.rm(root[len("memory://") :], recursive=True)


def test_an_output_is_committed_whole_or_not_at_all(out: Outputs):
    with out.open("a/b.bin") as handle:
        handle.write(b"whole")
        assert not out.exists("a/b.bin")  # nothing at the target while writing
    assert out.exists("a/b.bin")
    with pytest.raises(RuntimeError), out.open("a/c.bin") as handle:
        handle.write(b"half")
        raise RuntimeError("killed")
    assert not out.exists("a/c.bin")
    assert out.clean_folder_temporaries("a") == []  # the failed write left no temporary


def test_json_state_round_trips_and_a_missing_or_broken_one_is_none(out: Outputs):
    out.write_json("state/x.json", {"value": float("nan"), "n": 1})
    assert out.read_json("state/x.json") == {"value": None, "n": 1}
    assert out.read_json("state/none.json") is None
    with out.open("state/bad.json") as handle:
        handle.write(b"{not json")
    assert out.read_json("state/bad.json") is None


def test_a_killed_writers_temporary_is_removed_and_a_live_ones_kept(out: Outputs):
    out.write_json("f.json", {})
    dead = f".f.json.{_host_tag()}-{_dead_pid()}.abcd1234.tmp"
    live = f".f.json.{_host_tag()}-{__import__('os').getpid()}.efgh5678.tmp"
    for name in (dead, live):
        with out.open(name) as handle:  # stand-ins for what the writers left
            handle.write(b"partial")
    removed = out.clean_temporaries("f.json")
    assert [r.rsplit("/", 1)[-1] for r in removed] == [dead]
    assert out.exists(live) and out.exists("f.json")


def test_remove_and_is_empty(out: Outputs):
    assert out.is_empty()
    out.write_json("kept/sub/a.json", [1])
    assert not out.is_empty()
    out.remove("kept")
    out.remove("kept")  # absent is fine
    assert not out.exists("kept/sub/a.json")
