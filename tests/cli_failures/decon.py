"""Failure cases of `paloma decon index`, `filter`, `verify` and `info` (issues 10 and 13).

Every case fails before any document is read or written: argument ranges (argparse types), output locations
of the wrong kind or overlapping an input, an output folder that holds another run, damaged indexes and
damaged inputs. Setups build a small index of their own with `tests.decon_data`.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import zstandard

from cli_failures import Case
from tests.decon_data import jsonl_lines, make_paloma, training_docs


def _index(tmp: Path) -> Path:
    from paloma.decon import build_index

    return build_index(make_paloma(tmp / "paloma"), progress=False).save(tmp / "p.decon")


def _corpus(tmp: Path) -> Path:
    (tmp / "corpus").mkdir(parents=True, exist_ok=True)
    (tmp / "corpus" / "a.jsonl").write_bytes(jsonl_lines(training_docs()))
    return tmp / "corpus"


def _with(*steps: Callable[[Path], object]) -> Callable[[Path], None]:
    def setup(tmp: Path) -> None:
        for step in steps:
            step(tmp)

    return setup


def _file(name: str, data: bytes = b"not an index\n") -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_bytes(data)

    return make


def _folder(name: str) -> Callable[[Path], None]:
    return lambda tmp: (tmp / name).mkdir(parents=True)


def _damaged_index(how: str) -> Callable[[Path], None]:
    def make(tmp: Path) -> None:
        data = bytearray(_index(tmp).read_bytes())
        if how == "flipped":
            data[-20] ^= 0xFF
        elif how == "truncated":
            data = data[:-10]
        elif how == "incomplete":
            length = int.from_bytes(data[8:16], "little")
            header = json.loads(data[16 : 16 + length])
            del header["counts"]
            data[16 : 16 + length] = json.dumps(header, separators=(",", ":")).encode().ljust(length)
        (tmp / f"{how}.decon").write_bytes(bytes(data))

    return make


def _earlier_run(tmp: Path) -> None:
    from paloma.decon import build_index
    from paloma.decon.filter import filter_files

    other = build_index(make_paloma(tmp / "paloma"), sources=["c4_en"], progress=False).save(tmp / "other.decon")
    filter_files(other, [_corpus(tmp)], tmp / "out", progress=False)


def _own_kept_folder(tmp: Path) -> None:
    from paloma.decon.filter import filter_files

    filter_files(_index(tmp), [_corpus(tmp)], tmp / "out", progress=False)


def _truncated_zst(tmp: Path) -> None:
    packed = zstandard.ZstdCompressor().compress(jsonl_lines(training_docs() * 50))
    (tmp / "corpus").mkdir(exist_ok=True)
    (tmp / "corpus" / "cut.jsonl.zst").write_bytes(packed[: len(packed) // 2])


def _gzip_input(tmp: Path) -> None:
    (tmp / "corpus").mkdir(exist_ok=True)
    (tmp / "corpus" / "a.jsonl.gz").write_bytes(gzip.compress(jsonl_lines(training_docs())))


INDEX = ("decon", "index", "{data}")
FILTER = ("decon", "filter", "{tmp}/corpus", "-i", "{tmp}/p.decon")
VERIFY = ("decon", "verify", "{tmp}/corpus", "-i", "{tmp}/p.decon")
READY = _with(_index, _corpus)

CASES = [
    # ---- decon index
    Case("decon-index-output-is-a-folder", (*INDEX, "-o", "{tmp}/dir"), "is a folder", _folder("dir")),
    Case("decon-index-output-under-a-file", (*INDEX, "-o", "{tmp}/f/i.decon"), "is not a folder", _file("f")),
    Case("decon-index-output-under-dev-null", (*INDEX, "-o", "/dev/null/i.decon"), "is not a folder"),
    Case("decon-index-output-inside-the-data", (*INDEX, "-o", "{data}/c4_en/i.decon"), "lies inside the input"),
    Case("decon-index-min-words-zero", (*INDEX, "-o", "{tmp}/i.decon", "--min-words", "0"), "must be ≥ 1"),
    Case("decon-index-min-words-text", (*INDEX, "-o", "{tmp}/i.decon", "--min-words", "ten"), "expected an integer"),
    Case("decon-index-unknown-rules", (*INDEX, "-o", "{tmp}/i.decon", "--rules", "loose"), "invalid choice: 'loose'"),
    Case("decon-index-ngram-zero", (*INDEX, "-o", "{tmp}/i.decon", "--ngram", "0"), "must be ≥ 1"),
    Case(
        "decon-index-extra-missing",
        (*INDEX, "-o", "{tmp}/i.decon", "--ngram", "13", "--extra", "{tmp}/none.jsonl"),
        "no such evaluation file",
    ),
    Case(
        "decon-index-extra-without-text",
        (*INDEX, "-o", "{tmp}/i.decon", "--extra", "{tmp}/tasks.jsonl"),
        "tasks.jsonl:2: field 'text' is missing",
        _file("tasks.jsonl", b'{"text": "fine"}\n{"question": "no text"}\n'),
    ),
    Case("decon-index-unknown-source", (*INDEX, "-o", "{tmp}/i.decon", "--source", "nope"), "no data for source(s)"),
    Case("decon-index-no-data", ("decon", "index", "{tmp}/none", "-o", "{tmp}/i.decon"), "no such folder"),
    Case(
        "decon-index-data-twice", (*INDEX, "--data", "{data}", "-o", "{tmp}/i.decon"), "give the evaluation data once"
    ),
    # ---- decon filter
    Case("decon-filter-output-is-a-file", (*FILTER, "-o", "{tmp}/f"), "is a file", _with(READY, _file("f"))),
    Case("decon-filter-output-under-dev-null", (*FILTER, "-o", "/dev/null/out"), "is not a folder", READY),
    Case("decon-filter-workers-zero", (*FILTER, "-o", "{tmp}/out", "--workers", "0"), "must be ≥ 1", READY),
    Case("decon-filter-samples-negative", (*FILTER, "-o", "{tmp}/out", "--samples", "-1"), "must be ≥ 0", READY),
    Case(
        "decon-filter-compression-level-too-high",
        (*FILTER, "-o", "{tmp}/out", "--compression-level", "23"),
        "must be ≤ 22",
        READY,
    ),
    Case(
        "decon-filter-gzip-level-out-of-range",
        (*FILTER, "-o", "{tmp}/out", "--compression-level", "12"),
        "gzip levels are 0-9",
        _with(READY, _gzip_input),
    ),
    Case(
        "decon-filter-output-contains-its-input",
        ("decon", "filter", "{tmp}/out/kept", "-i", "{tmp}/p.decon", "-o", "{tmp}/out", "--overwrite"),
        "contains the input",
        _own_kept_folder,
    ),
    Case("decon-filter-output-is-the-index-folder", (*FILTER, "-o", "{tmp}"), "contains the input", READY),
    Case(
        "decon-filter-output-holds-another-run",
        (*FILTER, "-o", "{tmp}/out"),
        "use --resume to continue it or --overwrite to start over",
        _with(_index, _earlier_run),
    ),
    Case(
        "decon-filter-resume-with-another-index",
        (*FILTER, "-o", "{tmp}/out", "--resume"),
        "holds a run with other index",
        _with(_index, _earlier_run),
    ),
    Case(
        "decon-filter-resume-and-overwrite",
        (*FILTER, "-o", "{tmp}/out", "--resume", "--overwrite"),
        "not allowed with argument",
        READY,
    ),
    Case("decon-filter-resume-nothing", (*FILTER, "-o", "{tmp}/out", "--resume"), "holds no earlier run", READY),
    Case(
        "decon-filter-corrupt-index",
        ("decon", "filter", "{tmp}/corpus", "-i", "{tmp}/flipped.decon", "-o", "{tmp}/out"),
        "index is corrupt",
        _with(_damaged_index("flipped"), _corpus),
    ),
    Case("decon-filter-missing-index", (*FILTER, "-o", "{tmp}/out"), "no such index file", _corpus),
    Case(  # issue 22: the index folder was called an input folder the output "lies inside"
        "decon-filter-index-is-a-folder-holding-the-output",
        ("decon", "filter", "{tmp}/corpus", "-i", "{tmp}/D", "-o", "{tmp}/D/o8"),
        "/D: is a folder, not an index file",
        _with(_corpus, _folder("D")),
    ),
    Case("decon-filter-missing-input", (*FILTER, "-o", "{tmp}/out"), "no such file or folder", _index),
    Case("decon-filter-no-output", FILTER, "--output is required unless --dry-run", READY),
    Case(
        "decon-filter-truncated-zstd-input",
        (*FILTER, "-o", "{tmp}/out", "--skip-bad-lines", "--quiet"),
        "truncated",
        _with(_index, _truncated_zst),
    ),
    # ---- decon verify
    Case("decon-verify-fraction-zero", (*VERIFY, "--fraction", "0"), "0 < x ≤ 1", READY),
    Case("decon-verify-fraction-above-one", (*VERIFY, "--fraction", "1.5"), "0 < x ≤ 1", READY),
    Case("decon-verify-fraction-nan", (*VERIFY, "--fraction", "nan"), "must be a finite number", READY),
    Case("decon-verify-seed-negative", (*VERIFY, "--seed", "-3"), "must be ≥ 0", READY),
    Case(
        "decon-verify-report-is-a-folder",
        (*VERIFY, "--report", "{tmp}/dir"),
        "is a folder",
        _with(READY, _folder("dir")),
    ),
    Case("decon-verify-report-is-the-index", (*VERIFY, "--report", "{tmp}/p.decon"), "is also an input", READY),
    Case("decon-verify-missing-input", VERIFY, "no such file or folder", _index),
    Case(
        "decon-verify-corrupt-index",
        ("decon", "verify", "{tmp}/corpus", "-i", "{tmp}/flipped.decon"),
        "index is corrupt",
        _with(_damaged_index("flipped"), _corpus),
    ),
    # ---- decon info
    Case("decon-info-missing-file", ("decon", "info", "{tmp}/none.decon"), "no such index file"),
    Case("decon-info-not-an-index", ("decon", "info", "{tmp}/f"), "not a paloma decontamination index", _file("f")),
    Case("decon-info-a-folder", ("decon", "info", "{tmp}/dir"), "is a folder, not an index file", _folder("dir")),
    Case("decon-info-corrupt", ("decon", "info", "{tmp}/flipped.decon"), "index is corrupt", _damaged_index("flipped")),
    Case("decon-info-truncated", ("decon", "info", "{tmp}/truncated.decon"), "truncated", _damaged_index("truncated")),
    Case(
        "decon-info-incomplete-header",
        ("decon", "info", "{tmp}/incomplete.decon"),
        "index header is incomplete (no counts)",
        _damaged_index("incomplete"),
    ),
]
