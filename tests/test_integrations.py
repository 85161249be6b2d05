"""Paloma where teams look: in a `transformers.Trainer`, an accelerate loop, W&B, TensorBoard, lm-eval's layout.

- a tiny Trainer runs a few steps with `PalomaCallback`: the values in its `log_history` at the evaluated steps
  equal `evaluator.evaluate` on the weights of those steps, and its TensorBoard reporter received them;
- `evaluate_and_log` logs through an Accelerator's trackers;
- `paloma eval --lm-eval-results --wandb --tensorboard` writes lm-evaluation-harness's results layout (its
  aggregation recomputed here from the records), a W&B offline run and TensorBoard events.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from fixtures import pydoc_paragraphs, write_release
from transformers import AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments

from paloma import Evaluator
from paloma.cli import main
from paloma.eval.records import load_records

L = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    p = pydoc_paragraphs()
    documents = {("c4_en", None): p[:6], ("m2d2_s2orc", "math"): p[6:10], ("m2d2_s2orc", "cs"): p[10:14]}
    return write_release(tmp_path_factory.mktemp("data"), documents)


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found: dict[str, list] = {}
    for events in sorted(folder.rglob("events.out.tfevents.*")):
        accumulator = EventAccumulator(str(events.parent))
        accumulator.Reload()
        for tag in accumulator.Tags()["scalars"]:
            found[tag] = [(e.step, e.value) for e in accumulator.Scalars(tag)]
    return found


def wandb_value(raw: bytes, key: str) -> str:
    """The JSON value logged under `key` in an offline W&B run file: each history item is its key, then
    field 16 (tag bytes 0x82 0x01) holding the value's JSON, length-prefixed."""
    at = raw.index(key.encode() + b"\x82\x01") + len(key) + 2
    return raw[at + 1 : at + 1 + raw[at]].decode()


class Snapshots(TrainerCallback):
    """Copies of the model at given steps (after the optimizer step, as PalomaCallback sees it)."""

    def __init__(self, steps):
        self.steps, self.models = set(steps), {}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step in self.steps:
            self.models[state.global_step] = copy.deepcopy(model)


def test_the_trainer_callback_logs_what_the_evaluator_computes(tiny, data, tmp_path):
    from paloma.integrations.transformers import PalomaCallback

    tokenizer = tiny["tokenizer"]
    model = AutoModelForCausalLM.from_pretrained(tiny["models"]["llama"])
    texts = pydoc_paragraphs()[20:28]
    ids = [tokenizer.encode(t, add_special_tokens=False)[:24] for t in texts]
    dataset = [{"input_ids": torch.tensor(x), "labels": torch.tensor(x)} for x in ids if len(x) == 24]
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=5, per_device_train_batch_size=2,
                             learning_rate=1e-2, logging_steps=1, report_to=["tensorboard"], save_strategy="no",
                             use_cpu=True, disable_tqdm=True)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=dataset)
    evaluator = Evaluator(data, tokenizer, max_length=L, registry="none", cache_dir=None)
    callback = PalomaCallback(evaluator, every=2).attach(trainer)
    snapshots = Snapshots({2, 4, 5})
    trainer.add_callback(snapshots)
    trainer.train()

    logged = {e["step"]: e for e in trainer.state.log_history if "paloma/suite/bpb" in e}
    assert sorted(logged) == [2, 4, 5]  # every 2 steps, and the last
    for step, snapshot in snapshots.models.items():
        expected = evaluator.evaluate(snapshot).scalars()
        assert {k: logged[step][k] for k in expected} == expected
    assert logged[2]["paloma/suite/bpb"] != logged[4]["paloma/suite/bpb"]  # the model trained in between
    assert model.training  # the Trainer's mode, restored after each evaluation
    assert [s for s, _ in callback.history] == [2, 4, 5]
    board = tensorboard_scalars(tmp_path / "run")
    assert [s for s, _ in board["train/paloma/suite/bpb"]] == [2, 4, 5]  # the Trainer's reporter received them
    assert board["train/paloma/c4_en/bpb"][0][1] == pytest.approx(logged[2]["paloma/c4_en/bpb"], rel=1e-6)


def test_the_callback_must_be_attached_to_log(tiny, data, tmp_path):
    from paloma.integrations.transformers import PalomaCallback

    model = AutoModelForCausalLM.from_pretrained(tiny["models"]["llama"])
    evaluator = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None)
    state = type("State", (), {"global_step": 2, "max_steps": 10})()
    with pytest.raises(RuntimeError, match="attach"):
        PalomaCallback(evaluator, every=2).on_step_end(None, state, None, model=model)


def test_evaluate_and_log_reports_through_the_accelerators_trackers(tiny, data, tmp_path):
    from accelerate import Accelerator

    from paloma.integrations.accelerate import evaluate_and_log

    accelerator = Accelerator(cpu=True, log_with="tensorboard", project_dir=str(tmp_path))
    accelerator.init_trackers("run")
    model = accelerator.prepare(AutoModelForCausalLM.from_pretrained(tiny["models"]["llama"]))
    evaluator = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None)
    results = evaluate_and_log(evaluator, model, accelerator, step=7)
    accelerator.end_training()
    board = tensorboard_scalars(tmp_path)
    assert board["paloma/suite/bpb"] == [(7, pytest.approx(results.scalars()["paloma/suite/bpb"], rel=1e-6))]


def test_paloma_eval_reports_in_lm_eval_layout_to_wandb_and_tensorboard(tiny, data, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    (tmp_path / "wandb").mkdir()
    out = tmp_path / "eval"
    code = main(["eval", "--model", str(tiny["models"]["llama"]), "--data", str(data), "--max-length", str(L),
                 "--registry", "none", "--output", str(out), "--no-progress", "--no-cache", "--lm-eval-results",
                 "--wandb", "paloma-test", "--tensorboard", str(tmp_path / "tb"), "--step", "3"])  # fmt: skip
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    layout = json.loads((out / "lm_eval_results.json").read_text())
    assert set(layout["results"]) == {"paloma_c4_en", "paloma_m2d2_s2orc"}
    records = [r for r in load_records(out) if r["source"] == "m2d2_s2orc"]
    nll, n_bytes, words = (sum(r[k] for r in records) for k in ("nll_sum", "bytes", "words"))
    task = layout["results"]["paloma_m2d2_s2orc"]
    assert task["bits_per_byte,none"] == pytest.approx(nll / n_bytes / math.log(2), rel=1e-12)
    assert task["byte_perplexity,none"] == pytest.approx(math.exp(nll / n_bytes), rel=1e-12)
    assert task["word_perplexity,none"] == pytest.approx(math.exp(nll / words), rel=1e-12)
    assert layout["n-samples"]["paloma_m2d2_s2orc"]["original"] == len(records)
    assert layout["paloma"]["protocol"]["fingerprint"] == results["protocol"]["fingerprint"]

    board = tensorboard_scalars(tmp_path / "tb")
    expected = results["sources"]["c4_en"]["macro_bpb"]
    assert board["paloma/c4_en/bpb"] == [(3, pytest.approx(expected, rel=1e-6))]
    (run,) = (tmp_path / "wandb").rglob("offline-run-*/run-*.wandb")  # the offline run, synced later by the user
    raw = run.read_bytes()
    assert float(wandb_value(raw, "paloma/c4_en/bpb")) == pytest.approx(expected, rel=1e-12)
    assert wandb_value(raw, "_step") == "3"


def test_a_missing_logger_fails_before_any_work(tiny, data, tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    code = main(["eval", "--model", str(tiny["models"]["llama"]), "--data", str(data), "--registry", "none",
                 "--output", str(tmp_path / "eval"), "--wandb", "p"])  # fmt: skip
    assert code == 2 and "wandb package is not installed" in capsys.readouterr().err
    assert not (tmp_path / "eval").exists()
