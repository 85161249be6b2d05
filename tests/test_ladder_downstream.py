"""Step 2 of a ladder prediction: lm-evaluation-harness results, the loss-to-metric sigmoid, and the chain.

The downstream files are written by lm-eval's own writer (`EvaluationTracker.save_results_aggregated`) with
the results structure its evaluator produces for a multiple-choice task, so the reader sees exactly what
lm-eval 0.4 puts on disk.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from eval_folders import write_eval_output
from test_ladder import PAPER_D, PAPER_N, TARGETS, TRUE

from paloma.analysis.ladder.downstream import (
    chained,
    fit_sigmoid,
    lm_eval_model,
    match_results,
    metric_key,
    read_lm_eval,
    sigmoid,
)
from paloma.analysis.runs import load_run
from paloma.errors import PalomaError

TASK = "tinyqa"
STEP2 = {"a": -0.55, "x0": 2.6, "k": 5.0, "b": 0.8}  # accuracy falls from 0.8 towards 0.25 as the loss grows


def write_lm_eval(folder: Path, model: str, acc_norm: float, acc: float | None = None) -> Path:
    """One lm-eval results file for `model`, through lm-eval's writer (as `lm_eval --output_path` does)."""
    from lm_eval.loggers import EvaluationTracker

    model_args = f"pretrained={model},dtype=float32"
    tracker = EvaluationTracker(output_path=str(folder))
    tracker.general_config_tracker.log_experiment_args(
        model_source="hf",
        model_args=model_args,
        system_instruction=None,
        chat_template=None,
        fewshot_as_multiturn=False,
    )
    acc = acc_norm - 0.02 if acc is None else acc
    results = {
        "results": {
            TASK: {
                "name": TASK,
                "alias": TASK,
                "sample_len": 1000,
                "acc,none": acc,
                "acc_stderr,none": math.sqrt(acc * (1 - acc) / 1000),
                "acc_norm,none": acc_norm,
                "acc_norm_stderr,none": math.sqrt(acc_norm * (1 - acc_norm) / 1000),
            }
        },
        "group_subtasks": {TASK: []},
        "configs": {
            TASK: {
                "task": TASK,
                "dataset_path": "json",
                "test_split": "test",
                "doc_to_text": "Question: {{question}}\nAnswer:",
                "doc_to_target": "label",
                "doc_to_choice": "{{choices}}",
                "output_type": "multiple_choice",
                "num_fewshot": 0,
                "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
                "metadata": {"version": 1.0},
            }
        },
        "versions": {TASK: 1.0},
        "n-shot": {TASK: 0},
        "higher_is_better": {TASK: {"acc": True, "acc_norm": True}},
        "n-samples": {TASK: {"original": 1000, "effective": 1000}},
        "config": {
            "model": "hf",
            "model_args": model_args,
            "model_num_parameters": 1000,
            "model_dtype": "torch.float32",
            "batch_size": 8,
            "batch_sizes": [],
            "device": "cpu",
            "limit": None,
            "bootstrap_iters": 100000,
            "random_seed": 0,
            "numpy_seed": 1234,
            "torch_seed": 1234,
            "fewshot_seed": 1234,
        },
        "git_hash": None,
        "date": 1733000000.0,
        "lm_eval_version": "0.4.13",
    }
    tracker.save_results_aggregated(results=results, samples=None)
    written = sorted((folder / tracker.general_config_tracker.model_name_sanitized).glob("results_*.json"))
    return written[-1]


def test_a_file_written_by_lm_eval_reads_back(tmp_path):
    path = write_lm_eval(tmp_path, "/models/190M-1xC", acc_norm=0.4321, acc=0.41)
    raw = read_lm_eval(path)
    assert path.name.startswith("results_") and path.parent.name == "__models__190M-1xC"
    assert lm_eval_model(raw, path) == "/models/190M-1xC"
    assert raw["results"][TASK][metric_key(raw, path, TASK, None)] == 0.4321  # acc_norm by default
    assert raw["results"][TASK][metric_key(raw, path, TASK, "acc")] == 0.41
    with pytest.raises(PalomaError, match=r"no results for task 'hellaswag' \(tasks: tinyqa\)"):
        metric_key(raw, path, "hellaswag", None)
    with pytest.raises(PalomaError, match=r"has no metric 'f1' \(metrics: acc,none, acc_norm,none\)"):
        metric_key(raw, path, TASK, "f1")


def test_the_sigmoid_is_recovered_from_exact_points():
    x = np.linspace(2.2, 3.2, 12)
    fit = fit_sigmoid(x, sigmoid(x, **STEP2))
    for name, value in STEP2.items():
        assert fit["params"][name] == pytest.approx(value, rel=1e-4), name
    assert fit["rmse"] < 1e-8


def test_a_loss_outside_the_fitted_losses_is_flagged_as_extrapolation():
    """The bug: step 2 extrapolated beyond its fitted losses without a word, and under-covered there."""
    x = np.linspace(2.4, 3.2, 12)
    step2 = fit_sigmoid(x, sigmoid(x, **STEP2) + np.random.default_rng(0).normal(0, 0.005, len(x)))
    assert step2["loss_range"] == [2.4, 3.2]
    assert chained(step2, 2.8, 0.01, 0.95)["extrapolated"] is False
    assert chained(step2, 2.4, 0.01, 0.95)["extrapolated"] is False
    assert chained(step2, 2.3, 0.01, 0.95)["extrapolated"] is True
    assert chained(step2, 3.3, 0.01, 0.95)["extrapolated"] is True


def test_a_metric_outside_zero_one_or_too_few_points_is_refused():
    with pytest.raises(PalomaError, match=r"must lie in \[0, 1\]"):
        fit_sigmoid(np.linspace(2, 3, 6), np.linspace(10, 60, 6))
    with pytest.raises(PalomaError, match="at least 5 checkpoints"):
        fit_sigmoid([2.0, 2.5, 3.0], [0.7, 0.5, 0.3])


def _run(tmp_path: Path, name: str, n: float, d: float, loss: float) -> Path:
    """An eval output whose only domain scores `loss` nats per token, for the model folder models/<name>."""
    record = {"id": "0", "source": "c4_en", "domain": "c4_en", "tokens": 1000, "bytes": 4000, "nll_sum": loss * 1000}
    (tmp_path / "models" / name).mkdir(parents=True)  # the checkpoint folder: runs are named after it
    model = {"name_or_path": str(tmp_path / "models" / name), "non_embedding_parameters": n, "training_tokens": d}
    return write_eval_output(tmp_path / "runs" / name, [record], model=model)


@pytest.fixture
def ladder_with_downstream(tmp_path):
    """The paper's ladder and two held-out runs on Chinchilla's law, each with an lm-eval result on STEP2."""
    runs, files = [], tmp_path / "lm-eval"
    for i, (n, d) in enumerate(zip(PAPER_N, PAPER_D, strict=True)):
        loss = float(TRUE(n, d))
        runs.append(_run(tmp_path, f"m{i}", n, d, loss))
        write_lm_eval(files, str(tmp_path / "models" / f"m{i}"), float(sigmoid(loss, **STEP2)))
    held = []
    for name, (n, d) in TARGETS.items():
        loss = float(TRUE(n, d))
        held.append(_run(tmp_path, name, n, d, loss))
        write_lm_eval(files, str(tmp_path / "models" / name), float(sigmoid(loss, **STEP2)))
    return runs, held, files


def test_both_steps_predict_the_held_out_runs_metric(ladder_with_downstream, tmp_path, paloma_cli):
    runs, held, files = ladder_with_downstream
    out = tmp_path / "fit"
    proc = paloma_cli(
        "ladder", "fit", *runs, "--holdout", *held, "--levels", "suite", "--downstream", files, "--task", TASK,
        "--predict", *map(str, TARGETS["7B-4T"]), "--output", out, check=True,
    )  # fmt: skip
    assert "step 2: tinyqa acc_norm,none" in proc.stdout
    # 7B-4T and 13B-5T have lower losses than any ladder run: step 2 extrapolates, and says so
    for name in ("the prediction", *TARGETS):
        assert f"warning: step 2 extrapolates for {name}: its predicted loss" in proc.stderr
    ladder = json.loads((out / "fits.json").read_text())
    step = ladder["downstream"]
    for name, value in STEP2.items():
        assert step["sigmoid"]["params"][name] == pytest.approx(value, rel=1e-3), name
    rows = {r["name"]: r for r in step["holdout"]}
    for name, (n, d) in TARGETS.items():
        expected = float(sigmoid(TRUE(n, d), **STEP2))
        assert rows[name]["observed"] == pytest.approx(expected, rel=1e-9)
        assert rows[name]["predicted"] == pytest.approx(expected, abs=1e-4)
        assert rows[name]["abs_error"] == pytest.approx(rows[name]["predicted"] - expected, abs=1e-12)
    assert step["prediction"]["predicted"] == pytest.approx(float(sigmoid(TRUE(*TARGETS["7B-4T"]), **STEP2)), abs=1e-4)
    with open(out / "downstream.csv", encoding="utf-8") as handle:
        table = list(csv.DictReader(handle))
    assert [r["run"] for r in table] == list(TARGETS)
    with open(out / "holdout.csv", encoding="utf-8") as handle:
        step1 = {r["run"]: r for r in csv.DictReader(handle)}
    for name, (n, d) in TARGETS.items():
        assert float(step1[name]["predicted"]) == pytest.approx(float(TRUE(n, d)), rel=1e-6)
        assert float(step1[name]["rel_error"]) == pytest.approx(0.0, abs=1e-6)


def test_every_run_needs_exactly_one_result(ladder_with_downstream, tmp_path):
    runs, held, files = ladder_with_downstream
    loaded = [load_run(p) for p in [*runs, *held]]
    everything = sorted(files.rglob("results_*.json"))
    with pytest.raises(PalomaError, match="no lm-evaluation-harness result names its model"):
        match_results(loaded, everything[1:])
    with pytest.raises(PalomaError, match="matches none of the runs"):
        match_results(loaded[1:], everything)
    # A model folder that moved is still found by its last path component.
    moved = write_lm_eval(tmp_path / "moved", "/elsewhere/m3", 0.5)
    others = [f for f in everything if "__m3" not in f.parent.name]
    assert match_results(loaded, [*others, moved])[str(loaded[3].path)][0] == moved
