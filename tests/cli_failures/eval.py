"""Failure cases of `paloma eval`, `paloma aggregate` and `paloma convert`.

Argument ranges are argparse's (before anything else); the device, the output location and the run state of the
output are checked before any data is read (cases pointing --data at a missing path show it: the error is about
the earlier problem); the layout, the split and every glob are checked before anything is tokenized.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from cli_failures import Case

EVAL = ("eval", "--model", "{model}", "--data", "{data}", "--max-length", "16", "--no-progress", "--no-cache")
NOWHERE = ("eval", "--model", "{model}", "--data", "{tmp}/no-such-data", "--no-progress")


def _file(name: str):
    def setup(tmp: Path) -> None:
        (tmp / name).write_text("not a folder\n")

    return setup


def _killed_run(tmp: Path) -> None:
    """What a crash leaves: run.json and an empty records file."""
    (tmp / "o" / "records").mkdir(parents=True)
    (tmp / "o" / "run.json").write_text(json.dumps({"protocol": {}, "data": {}, "model": {}}) + "\n")
    (tmp / "o" / "records" / "rank0-of1-attempt1.jsonl").write_text("")


def _finished_run(tmp: Path) -> None:
    _killed_run(tmp)
    (tmp / "o" / "results.json").write_text("{}\n")


def _test_only_release(tmp: Path) -> None:
    folder = tmp / "d" / "c4_en" / "test"
    folder.mkdir(parents=True)
    with gzip.open(folder / "test-00000000.jsonl.gz", "wt") as handle:
        handle.write(json.dumps({"text": "hello", "id": "0"}) + "\n")


def _lfs_clone(tmp: Path) -> None:
    """What `git clone` without Git LFS leaves in place of a data file."""
    folder = tmp / "d" / "c4_en" / "test"
    folder.mkdir(parents=True)
    pointer = "version https://git-lfs.github.com/spec/v1\noid sha256:" + "ab" * 32 + "\nsize 123456\n"
    (folder / "test-00000000.jsonl.gz").write_text(pointer)


def _corrupt_zstd(tmp: Path) -> None:
    import zstandard

    folder = tmp / "d" / "c4_en" / "test"
    folder.mkdir(parents=True)
    lines = "\n".join(json.dumps({"text": f"doc {i} " * 40}) for i in range(300))
    data = bytearray(zstandard.compress(lines.encode()))
    for i in range(20, len(data) - 20, 5):
        data[i] ^= 0x55
    (folder / "test-00000000.jsonl.zst").write_bytes(bytes(data))


def _run_folder(records: list[str]):
    def setup(tmp: Path) -> None:
        (tmp / "run" / "records").mkdir(parents=True)
        (tmp / "run" / "run.json").write_text(json.dumps({"protocol": {}, "data": {}, "model": {}}) + "\n")
        (tmp / "run" / "records" / "rank0-of1-attempt1.jsonl").write_text("".join(r + "\n" for r in records))

    return setup


_RECORD = {"key": "c4_en/c4_en/0", "id": "0", "source": "c4_en", "domain": "c4_en", "tokens": 3, "bytes": 5,
           "chars": 5, "words": 1}  # fmt: skip


def _non_empty(tmp: Path) -> None:
    (tmp / "out").mkdir()
    (tmp / "out" / "keep.txt").write_text("mine\n")


CASES = [
    # argument ranges (argparse types), before any work
    Case("eval-max-length-zero", (*EVAL, "--output", "{tmp}/o", "--max-length", "0"), "--max-length: must be ≥ 1"),
    Case("eval-max-length-negative", (*EVAL, "--output", "{tmp}/o", "--max-length", "-5"), "must be ≥ 1, got -5"),
    Case("eval-limit-negative", (*EVAL, "--output", "{tmp}/o", "--limit", "-1"), "/--limit: must be ≥ 1"),
    Case("eval-limit-zero", (*EVAL, "--output", "{tmp}/o", "--limit", "0"), "/--limit: must be ≥ 1"),
    Case(
        "eval-max-documents-zero",
        (*EVAL, "--output", "{tmp}/o", "--max-documents-per-domain", "0"),
        "argument --max-documents-per-domain/--limit: must be ≥ 1",
    ),
    Case(
        "eval-max-tokens-zero",
        (*EVAL, "--output", "{tmp}/o", "--max-tokens-per-domain", "0"),
        "argument --max-tokens-per-domain: must be ≥ 1",
    ),
    Case(
        "eval-wandb-dry-run",
        (*EVAL, "--output", "{tmp}/o", "--dry-run", "--tensorboard", "{tmp}/tb"),
        "report a run: pass --output, not --dry-run",
    ),
    Case("eval-bootstrap-negative", (*EVAL, "--output", "{tmp}/o", "--bootstrap", "-1"), "--bootstrap: must be ≥ 0"),
    Case("eval-batch-tokens-zero", (*EVAL, "--output", "{tmp}/o", "--batch-tokens", "0"), "--batch-tokens: must be"),
    Case("eval-flush-seconds-zero", (*EVAL, "--output", "{tmp}/o", "--flush-seconds", "0"), "--flush-seconds"),
    Case("eval-batch-below-a-window", (*EVAL, "--output", "{tmp}/o", "--batch-tokens", "8"), "below one window"),
    Case("eval-model-args-malformed", (*EVAL, "--output", "{tmp}/o", "--model-args", "device_map"), "not key=value"),
    Case("eval-model-args-revision", (*EVAL, "--output", "{tmp}/o", "--model-args", "revision=x"), "--revision"),
    Case("eval-resume-and-overwrite", (*EVAL, "--output", "{tmp}/o", "--resume", "--overwrite"), "contradict"),
    # the device and the output, before any data is read (the data path does not even exist)
    Case("eval-device-without-it", (*NOWHERE, "--output", "{tmp}/o", "--device", "cuda:99"), "--device cuda:99"),
    Case("eval-device-unknown", (*NOWHERE, "--output", "{tmp}/o", "--device", "quantum"), "not a device"),
    Case("eval-output-missing", NOWHERE, "--output is required"),
    Case("eval-output-under-dev-null", (*NOWHERE, "--output", "/dev/null/x"), "is not a folder"),
    Case("eval-output-is-a-file", (*NOWHERE, "--output", "{tmp}/f"), "is a file", _file("f")),
    Case("eval-output-under-a-file", (*NOWHERE, "--output", "{tmp}/f/run"), "is not a folder", _file("f")),
    Case("eval-output-is-the-data", (*EVAL, "--output", "{data}"), "is also an input"),
    Case("eval-output-inside-the-model", (*EVAL, "--output", "{model}/run"), "lies inside the input folder"),
    Case(
        "eval-killed-run-says-how-to-go-on",
        (*NOWHERE, "--output", "{tmp}/o"),
        "pass --resume to continue it, or --overwrite to start over",
        _killed_run,
    ),
    Case(
        "eval-finished-run-says-how-to-go-on",
        (*NOWHERE, "--output", "{tmp}/o"),
        "--overwrite to start over",
        _finished_run,
    ),
    Case("eval-resume-of-nothing", (*NOWHERE, "--output", "{tmp}/o", "--resume"), "holds no run to continue"),
    Case("eval-peft-missing", (*NOWHERE, "--output", "{tmp}/o", "--peft", "{tmp}/no-adapter"), "--peft"),
    # the data: layout, split and globs, before anything is tokenized
    Case("eval-data-missing", (*NOWHERE, "--output", "{tmp}/o"), "no such file or folder"),
    Case(
        "eval-data-is-a-source-folder",
        (*EVAL[:4], "{data}/c4_en", "--output", "{tmp}/o"),
        "looks like one source's folder",
    ),
    Case(
        "eval-split-the-data-lacks",
        (*EVAL[:4], "{tmp}/d", "--split", "val", "--output", "{tmp}/o"),
        "has no <source>/val/ folder",
        _test_only_release,
    ),
    Case(
        "eval-generic-data-has-no-split",
        (*EVAL, "--layout", "generic", "--split", "val", "--output", "{tmp}/o"),
        "generic data, which has no splits",
    ),
    Case(
        "eval-source-glob-matches-nothing",
        (*EVAL, "--sources", "c4_en", "c4-en", "--output", "{tmp}/o"),
        "--sources 'c4-en' matches none",
    ),
    Case(
        "eval-domain-glob-matches-nothing",
        (*EVAL, "--domains", "Physics", "Phyics", "--output", "{tmp}/o"),
        "--domains 'Phyics' matches none",
    ),
    Case("eval-max-length-beyond-the-model", (*EVAL, "--output", "{tmp}/o", "--max-length", "65"), "64 positions"),
    # inputs that once ended in tracebacks or vague lines (issue 19)
    Case("eval-lfs-pointer", (*EVAL[:4], "{tmp}/d", "--output", "{tmp}/o"), "git lfs pull", _lfs_clone),
    Case("eval-corrupt-zstd", (*EVAL[:4], "{tmp}/d", "--output", "{tmp}/o"), "corrupt zstd data", _corrupt_zstd),
    Case("eval-lm-eval-model-args", (*EVAL, "--model_args", "pretrained=x"), "--model-args K=V"),
    Case("eval-lm-eval-output-path", (*EVAL, "--output_path", "{tmp}/o"), "pass --output FOLDER"),
    Case("eval-lm-eval-batch-size", (*EVAL, "--batch_size", "auto"), "pass --batch-tokens N"),
    Case("eval-lm-eval-tasks", (*EVAL, "--tasks", "paloma_c4_en"), "--data allenai/paloma --sources c4_en"),
    Case("eval-lm-eval-log-samples", (*EVAL, "--output", "{tmp}/o", "--log_samples"), "OUTPUT/records/"),
    # paloma aggregate
    Case("aggregate-missing-folder", ("aggregate", "{tmp}/nowhere"), "no such folder"),
    Case("aggregate-not-a-run", ("aggregate", "{tmp}"), "not a paloma eval output"),
    Case("aggregate-bootstrap-negative", ("aggregate", "{tmp}", "--bootstrap", "-3"), "--bootstrap: must be ≥ 0"),
    Case("aggregate-no-records", ("aggregate", "{tmp}/run"), "no per-document records", _run_folder([])),
    Case(
        "aggregate-unknown-registry",
        ("aggregate", "{tmp}/run", "--registry", "nope"),
        "no registry named 'nope'",
        _run_folder([json.dumps({**_RECORD, "nll_sum": 4.0})]),
    ),
    Case("aggregate-corrupt-record", ("aggregate", "{tmp}/run"), "corrupt record", _run_folder(["{oops"])),
    Case(
        "aggregate-non-finite-record",
        ("aggregate", "{tmp}/run"),
        "not a finite number",
        _run_folder([json.dumps({**_RECORD, "nll_sum": float("nan")})]),
    ),
    # paloma convert
    Case("convert-no-format", ("convert",), "required: FORMAT"),
    Case("convert-unknown-format", ("convert", "gguf", "{tmp}/a", "{tmp}/b"), "invalid choice: 'gguf'"),
    Case("convert-missing-source", ("convert", "hf-olmo", "{tmp}/nope", "{tmp}/out"), "not a hub id"),
    Case("convert-not-hf-olmo", ("convert", "hf-olmo", "{model}", "{tmp}/out"), "not an hf_olmo checkpoint"),
    Case("convert-destination-is-a-file", ("convert", "hf-olmo", "{model}", "{tmp}/f"), "is a file", _file("f")),
    Case("convert-destination-under-dev-null", ("convert", "hf-olmo", "{model}", "/dev/null/x"), "is not a folder"),
    Case(
        "convert-destination-inside-source",
        ("convert", "hf-olmo", "{model}", "{model}/converted"),
        "lies inside the input folder",
    ),
    Case("convert-destination-not-empty", ("convert", "hf-olmo", "{model}", "{tmp}/out"), "not empty", _non_empty),
]
