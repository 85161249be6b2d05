"""Whole runs in subprocesses: two processes under accelerate, a killed run resumed, hub data offline."""

from __future__ import annotations

import http.server
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import paloma_env, run_paloma
from fixtures import pydoc_paragraphs, write_release

from paloma.eval.records import load_records, record_files

L = "16"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def many_documents(tmp_path_factory):
    paragraphs = pydoc_paragraphs()
    rng = random.Random(0)
    corpus = {
        ("c4_en", None): rng.sample(paragraphs, 60),
        ("redpajama", "arxiv"): rng.sample(paragraphs, 40),
        ("redpajama", "books"): [" ".join(rng.sample(paragraphs, 4)) for _ in range(10)],
    }
    return write_release(tmp_path_factory.mktemp("many"), corpus)


def records(output: Path) -> dict[str, dict]:
    return {r["key"]: r for r in load_records(output)}


def assert_same_records(a: dict, b: dict, rel: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert (a[key]["tokens"], a[key]["bytes"]) == (b[key]["tokens"], b[key]["bytes"])
        assert b[key]["nll_sum"] == pytest.approx(a[key]["nll_sum"], rel=rel, abs=1e-9)


@pytest.mark.slow
def test_two_processes_under_accelerate_equal_one(tiny, many_documents, tmp_path):
    model = tiny["models"]["llama"]
    common = ["--model", model, "--data", many_documents, "--max-length", L, "--no-progress", "--no-cache"]
    run_paloma("eval", *common, "--output", tmp_path / "one", check=True)
    launch = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(free_port()), "-m", "paloma", "eval", *map(str, common),
        "--device", "cpu", "--output", str(tmp_path / "two"),
    ]  # fmt: skip
    proc = subprocess.run(launch, capture_output=True, text=True, env=paloma_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sorted(p.name for p in record_files(tmp_path / "two")) == [
        "rank0-of2-attempt1.jsonl",
        "rank1-of2-attempt1.jsonl",
    ]
    for path in record_files(tmp_path / "two"):  # each process did a share of the work
        assert path.read_text().count("\n") > 10
    assert_same_records(records(tmp_path / "one"), records(tmp_path / "two"), rel=1e-5)
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    two = json.loads((tmp_path / "two" / "results.json").read_text())
    assert two["speed"]["processes"] == 2
    assert two["suite"]["macro_ppl"] == pytest.approx(one["suite"]["macro_ppl"], rel=1e-6)


@pytest.mark.slow
def test_killed_run_resumes_to_identical_results(tiny, many_documents, tmp_path):
    model = tiny["models"]["gpt_neox"]
    common = ["--model", model, "--data", many_documents, "--max-length", L, "--dtype", "float64", "--no-progress"]
    common += ["--cache-dir", tmp_path / "cache"]
    run_paloma("eval", *common, "--output", tmp_path / "whole", check=True)

    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "paloma", "eval", *map(str, common), "--output", str(out)]
    argv += ["--batch-tokens", L, "--flush-seconds", "0.001"]
    proc = subprocess.Popen(argv, env=paloma_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        files = record_files(out)
        if files and files[0].read_text().count("\n") >= 20:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(load_records(out))
    assert 20 <= partial < 110
    assert not (out / "results.json").exists()

    # resume with another batch size; only the missing documents are scored
    run_paloma("eval", *common, "--output", out, "--resume", "--batch-tokens", 5 * int(L), check=True)
    assert len(record_files(out)) == 2
    keys = [r["key"] for path in record_files(out) for r in map(json.loads, path.read_text().splitlines())]
    assert len(keys) == len(set(keys)) == 110  # no document scored twice
    assert_same_records(records(tmp_path / "whole"), records(out), rel=1e-10)
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["sources"] == whole["sources"] or _close(resumed["sources"], whole["sources"])


def _close(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == pytest.approx(b, rel=1e-10)
    return a == b


def test_hub_dataset_from_the_local_cache_offline(tiny, many_documents, tmp_path):
    """`--data allenai/paloma` goes through huggingface_hub's snapshot logic; a local cache stands in."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "datasets--allenai--paloma"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(many_documents, repo / "snapshots" / commit)
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    proc = run_paloma(
        "eval", "--model", tiny["models"]["llama"], "--data", "allenai/paloma", "--sources", "c4_en",
        "--max-length", L, "--output", tmp_path / "out", "--no-progress", "--no-cache", env=env, check=True,
    )  # fmt: skip
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["data"]["hub_commit"] == commit  # provenance; the identity is the files' content
    assert results["protocol"]["data_revision"].startswith("sha256:")
    assert list(results["sources"]) == ["c4_en"], proc.stdout


class _GatedHandler(http.server.BaseHTTPRequestHandler):
    """A stand-in hub that answers every request like a gated repository the user has not accepted."""

    def _refuse(self):
        self.send_response(403)
        self.send_header("X-Error-Code", "GatedRepo")
        self.send_header("X-Error-Message", "Access to dataset allenai/paloma is restricted.")
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "Access to dataset allenai/paloma is restricted."}')

    do_GET = do_HEAD = _refuse

    def log_message(self, *args):
        pass


def test_gated_dataset_refusal_says_how_to_get_access(tiny, tmp_path):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _GatedHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {
            "HF_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
            "HF_HUB_OFFLINE": "0",
            "HF_HUB_CACHE": str(tmp_path / "hub"),
            "HF_HUB_ETAG_TIMEOUT": "5",
            "HF_HUB_DOWNLOAD_TIMEOUT": "5",
        }
        env = {**env, **{k: "" for k in ("HF_TOKEN",) if k in os.environ}}
        proc = run_paloma(
            "eval", "--model", tiny["models"]["llama"], "--data", "allenai/paloma", "--output", tmp_path / "o",
            env=env, timeout=120,
        )  # fmt: skip
    finally:
        server.shutdown()
    assert proc.returncode == 2
    line = proc.stderr.strip().splitlines()[-1]
    assert "gated dataset 'allenai/paloma'" in line and "accept its licence" in line and "token" in line


def test_outputs_are_readable_like_any_other_file_under_umask_022(tiny, many_documents, tmp_path):
    """results.json, run.json, domains.csv, token_stats.npz, the records and the token cache: 0644 / 0755."""
    common = ["--model", tiny["models"]["llama"], "--data", many_documents, "--max-length", L, "--no-progress"]
    run_paloma("eval", *common, "--output", tmp_path / "out", "--cache-dir", tmp_path / "cache", "--token-stats",
               preexec_fn=lambda: os.umask(0o022), check=True)  # fmt: skip
    paths = [p for root in (tmp_path / "out", tmp_path / "cache") for p in [root, *root.rglob("*")]]
    names = {p.name for p in paths}
    assert {"results.json", "run.json", "domains.csv", "token_stats.npz", "ids.bin", "offsets.npy"} <= names
    assert any(p.suffix == ".jsonl" for p in paths)
    for path in paths:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o755 if path.is_dir() else 0o644), f"{path}: {oct(mode)}"


def test_the_next_run_removes_a_killed_runs_temporaries(tiny, many_documents, tmp_path):
    out = tmp_path / "out"
    (out / "records").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid, host = int(dead.stdout), socket.gethostname()
    host = "".join(c if c.isalnum() or c == "-" else "-" for c in host)[:40]
    leftovers = [out / f".results.json.{host}-{pid}.abc123xy.tmp", out / f".run.json.{host}-{pid}.zz99aa11.tmp"]
    for path in leftovers:
        path.write_bytes(b"x" * 1000)
    common = ["--model", tiny["models"]["llama"], "--data", many_documents, "--max-length", L, "--no-progress"]
    run_paloma("eval", *common, "--no-cache", "--output", out, check=True)
    assert not any(p.exists() for p in leftovers)
    assert not list(out.rglob("*.tmp"))


def test_a_write_failure_is_one_line_naming_the_file(tiny, many_documents, tmp_path):
    """A full disk (here: a file size limit) while writing is `PATH: strerror`, exit 2, no traceback."""
    import resource

    def limit_file_size():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # fail the write with EFBIG instead of killing the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (2000, 2000))

    common = ["--model", tiny["models"]["llama"], "--data", many_documents, "--max-length", L, "--no-progress"]
    run_paloma("eval", *common, "--output", tmp_path / "warm", "--cache-dir", tmp_path / "cache", check=True)
    proc = run_paloma("eval", *common, "--output", tmp_path / "out", "--cache-dir", tmp_path / "cache",
                      "--flush-seconds", "0.001", preexec_fn=limit_file_size)  # fmt: skip
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and str(tmp_path / "out") in lines[0] and "File too large" in lines[0], lines


def test_resuming_a_run_whose_run_json_is_unreadable_is_refused_in_one_line(tiny, many_documents, tmp_path):
    """The resume check reads run.json through the resumable-output helper; a damaged one is not skipped."""
    out = tmp_path / "out"
    common = ["--model", tiny["models"]["llama"], "--data", many_documents, "--max-length", L, "--no-progress"]
    run_paloma("eval", *common, "--no-cache", "--output", out, check=True)
    (out / "results.json").unlink()
    (out / "run.json").write_text('{"protocol": ')
    proc = run_paloma("eval", *common, "--no-cache", "--output", out, "--resume")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "run.json is unreadable" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
