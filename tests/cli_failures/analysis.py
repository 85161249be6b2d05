"""Failure cases of the analysis commands: compare, ladder, merge, tokens, reweight, rank-stability.

Eval outputs are written by `setup` into the case's folder with the same helper the analysis tests use
(`eval_folders.write_eval_output`); every refusal here happens before any fit, bootstrap or model load.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
from eval_folders import synthetic_records, write_eval_output

from cli_failures import Case

DOMAINS = {("c4_en", "c4_en"): 6, ("m2d2_s2orc", "Physics"): 4}


def _runs(*names: str, data: dict | None = None, model: Callable[[int], dict] | None = None) -> Callable:
    """Setup: eval outputs `names` in the case folder (same documents, shifted losses)."""

    def setup(tmp: Path) -> None:
        records = synthetic_records(np.random.default_rng(0), DOMAINS, dict.fromkeys(DOMAINS, 3.0))
        for i, name in enumerate(names):
            shifted = [{**r, "nll_sum": r["nll_sum"] * (1 - 0.01 * i)} for r in records]
            folder = write_eval_output(tmp / name, shifted, model=model(i) if model else None)
            if data is not None:
                results = json.loads((folder / "results.json").read_text())
                (folder / "results.json").write_text(json.dumps({**results, "data": data}))

    return setup


def _ladder_model(i: int) -> dict:
    """Nine runs: three sizes × three token budgets (runs 0-5 have only two), as the demo's ladder."""
    return {"non_embedding_parameters": (1e6, 4e6, 16e6)[i % 3], "training_tokens": (1e7, 2e7, 4e7)[i // 3]}


def _schedules(i: int) -> dict:
    return {**_ladder_model(i), "training": {"schedule_fraction": 1.0 if i else 0.5}}


LADDER = tuple(f"r{i}" for i in range(9))


def _and(*setups: Callable) -> Callable:
    def setup(tmp: Path) -> None:
        for step in setups:
            step(tmp)

    return setup


def _file(name: str, text: str = "not a folder\n") -> Callable:
    def setup(tmp: Path) -> None:
        (tmp / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp / name).write_text(text)

    return setup


def _folder(name: str) -> Callable:
    def setup(tmp: Path) -> None:
        (tmp / name).mkdir(parents=True)

    return setup


AB = _runs("a", "b")
RUNS = ("{tmp}/a", "{tmp}/b")
LADDER_ARGS = tuple(f"{{tmp}}/{name}" for name in LADDER)
LADDER_RUNS = _runs(*LADDER, model=_ladder_model)

CASES = [
    # compare
    Case("compare-bootstrap-negative", ("compare", *RUNS, "--bootstrap", "-1"), "argument --bootstrap: must be ≥ 0"),
    Case("compare-level-above-one", ("compare", *RUNS, "--level", "1.5"), "argument --level: must be a finite"),
    Case("compare-level-zero", ("compare", *RUNS, "--level", "0"), "0 < x < 1, got 0"),
    Case("compare-seed-negative", ("compare", *RUNS, "--seed", "-3"), "argument --seed: must be ≥ 0"),
    Case("compare-output-is-a-file", ("compare", *RUNS, "--output", "{tmp}/f"), "is a file", _and(AB, _file("f"))),
    Case(
        "compare-output-inside-an-input",
        ("compare", *RUNS, "--output", "{tmp}/a/cmp"),
        "lies inside the input folder",
        AB,
    ),
    Case("compare-missing-run", ("compare", "{tmp}/a", "{tmp}/nope"), "nope: no such eval output", AB),
    Case("compare-unknown-registry", ("compare", *RUNS, "--registry", "nope"), "no registry named 'nope'", AB),
    # ladder
    Case("ladder-last-k-zero", ("ladder", "fit", *LADDER_ARGS, "--last-k", "0"), "argument --last-k: must be ≥ 1"),
    Case("ladder-jobs-zero", ("ladder", "fit", *LADDER_ARGS, "--jobs", "0"), "argument --jobs: must be ≥ 1"),
    Case("ladder-level-one", ("ladder", "fit", *LADDER_ARGS, "--level", "1"), "argument --level: must be a finite"),
    Case("ladder-predict-negative", ("ladder", "fit", *LADDER_ARGS, "--predict", "-1", "5"), "argument --predict"),
    Case("ladder-unknown-level", ("ladder", "fit", *LADDER_ARGS, "--levels", "suite,nope"), "unknown level 'nope'"),
    Case(
        "ladder-output-is-a-file",
        ("ladder", "fit", *LADDER_ARGS, "--output", "{tmp}/f"),
        "is a file",
        _and(LADDER_RUNS, _file("f")),
    ),
    Case(
        "ladder-output-inside-a-run",
        ("ladder", "fit", *LADDER_ARGS, "--output", "{tmp}/r0/fits"),
        "lies inside the input folder",
        LADDER_RUNS,
    ),
    Case("ladder-missing-tokens-csv", ("ladder", "fit", *LADDER_ARGS, "--tokens", "{tmp}/t.csv"), "no such file"),
    Case(
        "ladder-downstream-without-task",
        ("ladder", "fit", *LADDER_ARGS, "--downstream", "{tmp}/lm.json"),
        "--downstream and --task go together",
        _file("lm.json", "{}"),
    ),
    Case(
        "ladder-same-run-five-times",
        ("ladder", "fit", *(["{tmp}/r0"] * 5)),
        "given twice",
        LADDER_RUNS,
    ),
    Case(
        "ladder-two-token-budgets",
        ("ladder", "fit", *LADDER_ARGS[:6]),
        "the ladder has 2 distinct token counts D",
        LADDER_RUNS,
    ),
    Case(
        "ladder-other-release",
        ("ladder", "fit", *LADDER_ARGS),
        "evaluated against release 'paloma-demo', but --registry gives 'paloma'",
        _runs(*LADDER, data={"release": "paloma-demo"}, model=_ladder_model),
    ),
    Case(
        "ladder-mixed-schedules",
        ("ladder", "fit", *LADDER_ARGS),
        "different fractions of their LR schedule",
        _runs(*LADDER, model=_schedules),
    ),
    Case(
        "ladder-count-output-embedding-with-total",
        ("ladder", "fit", *LADDER_ARGS, "--parameters", "total", "--count-output-embedding"),
        "total parameters already include it",
    ),
    # merge
    Case(
        "merge-missing-model",
        ("merge", "{model}", "/nonexistent/ckpt", "--output", "{tmp}/m"),
        "/nonexistent/ckpt: no such model folder",
    ),
    Case(
        "merge-negative-weight",
        ("merge", "{model}", "{model}", "--weights", "1", "-1", "--output", "{tmp}/m"),
        "argument --weights",
    ),
    Case("merge-one-model", ("merge", "{model}", "--output", "{tmp}/m"), "give at least two models"),
    Case("merge-output-is-a-file", ("merge", "{model}", "{model}", "--output", "{tmp}/f"), "is a file", _file("f")),
    Case(
        "merge-output-not-empty",
        ("merge", "{model}", "{model}", "--output", "{tmp}/m"),
        "exists and is not empty",
        _file("m/keep.txt"),
    ),
    Case(
        "merge-output-inside-a-model",
        ("merge", "{model}", "{model}", "--output", "{model}/m"),
        "lies inside the input folder",
    ),
    Case(
        "merge-not-a-model-folder",
        ("merge", "{model}", "{tmp}/empty", "--output", "{tmp}/m"),
        "no config.json",
        _folder("empty"),
    ),
    # tokens
    Case("tokens-top-negative", ("tokens", "report", "{tmp}/a", "--top", "-1"), "argument --top: must be ≥ 0"),
    Case(
        "tokens-min-count-zero",
        ("tokens", "report", "{tmp}/a", "--min-count", "0"),
        "argument --min-count: must be ≥ 1",
    ),
    Case("tokens-output-is-a-folder", ("tokens", "report", "{tmp}/a", "--output", "{tmp}/a"), "is a folder", AB),
    Case("tokens-missing-run", ("tokens", "report", "{tmp}/nope"), "no such eval output or token_stats.npz"),
    Case("tokens-run-without-token-stats", ("tokens", "report", "{tmp}/a"), "run paloma eval with --token-stats", AB),
    # reweight
    Case("reweight-top-negative", ("reweight", "{tmp}/a", "--shares-from", "{tmp}/b", "--top", "-2"), "must be ≥ 0"),
    Case("reweight-missing-shares", ("reweight", "{tmp}/a", "--shares", "{tmp}/s.json"), "s.json: no such file", AB),
    Case("reweight-needs-shares", ("reweight", "{tmp}/a"), "one of the arguments --shares --shares-from is required"),
    Case(
        "reweight-output-is-the-shares",
        ("reweight", "{tmp}/a", "--shares", "{tmp}/s.json", "--output", "{tmp}/s.json"),
        "is also an input",
        _and(AB, _file("s.json", '{"c4_en": 1}')),
    ),
    Case(
        "reweight-output-is-a-folder",
        ("reweight", "{tmp}/a", "--shares-from", "{tmp}/b", "--output", "{tmp}"),
        "is a folder",
        AB,
    ),
    # rank-stability
    Case(
        "rank-stability-bootstrap-zero",
        ("rank-stability", *RUNS, "--bootstrap", "0"),
        "argument --bootstrap: must be ≥ 1",
    ),
    Case(
        "rank-stability-level-above-one",
        ("rank-stability", *RUNS, "--level", "2"),
        "argument --level: must be a finite",
    ),
    Case("rank-stability-output-is-a-folder", ("rank-stability", *RUNS, "--output", "{tmp}"), "is a folder", AB),
    Case("rank-stability-missing-run", ("rank-stability", "{tmp}/a", "{tmp}/nope"), "nope: no such eval output", AB),
    Case(
        "rank-stability-unknown-registry", ("rank-stability", *RUNS, "--registry", "nope"), "no registry named 'nope'"
    ),
    Case("rank-stability-one-run", ("rank-stability", "{tmp}/a"), "needs at least two submissions", AB),
]
