"""Training end to end on CPU: the loss falls, resume is exact, data order ignores the process count,
the export scores the same under `paloma eval`, and bad input stops the run before any compute."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from baselines.config import load_config
from baselines.export import load_export
from baselines.model import count_parameters
from baselines.train import train
from paloma.errors import PalomaError
from tests.baselines_helpers import stdlib_documents, train_tokenizer, write_corpus
from tests.conftest import paloma_env, run_paloma

# A small, fast variant of `tiny` for the bookkeeping tests (accumulation: 2 micro-batches per step).
SMALL = ["train.global_batch_size=4", "train.micro_batch_size=2", "train.seq_len=32", "train.log_interval=1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus")
    docs = stdlib_documents()
    return {
        "train": write_corpus(root / "train.jsonl", docs[:-12]),
        "heldout": write_corpus(root / "heldout.jsonl", docs[-12:]),
        "tokenizer": train_tokenizer(docs, root / "tokenizer", vocab_size=512),
    }


def tiny_overrides(corpus: dict[str, Path], *extra: str) -> list[str]:
    """The tiny config with the local tokenizer (512 tokens) instead of GPT-NeoX's, which needs the hub."""
    return [f"data.corpus={corpus['train']}", f"data.tokenizer={corpus['tokenizer']}", "model.vocab_size=512", *extra]


def read_log(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory: pytest.TempPathFactory):
    """The tiny config trained for 24 steps on real text, then scored on held-out documents."""
    run = tmp_path_factory.mktemp("tiny")
    overrides = tiny_overrides(corpus, "train.log_interval=1", "train.max_steps=24")
    result = train("tiny", output_dir=run, overrides=overrides, eval_corpus=str(corpus["heldout"]), quiet=True)
    return run, result


def test_tiny_config_trains_on_real_text_and_its_loss_falls(trained) -> None:
    run, result = trained
    losses = [r["loss"] for r in read_log(run)]
    assert len(losses) == 24 and result.steps == 24
    assert losses[0] > 6.0  # about ln 512 = 6.24 (plus the spread of the initial logits)
    assert sum(losses[-5:]) / 5 < losses[0] - 1.0
    assert result.final_loss == losses[-1]


def test_export_records_what_a_submission_needs(trained, corpus) -> None:
    _, result = trained
    info = json.loads((result.export_dir / "paloma_training.json").read_text())
    config = load_config("tiny", tiny_overrides(corpus))
    params = count_parameters(config.model)
    assert info["parameters"] == {"total": params.total, "non_embedding": params.non_embedding}
    assert info["training_tokens"] == 24 * 8 * 128 and info["steps"] == 24
    assert info["schedule_fraction"] == 24 / 120 and info["data_order_seed"] == 6198
    assert info["config"] == "tiny" and info["tokenizer"]["vocab_size"] == 512
    documents = len(corpus["train"].read_text().splitlines())
    assert info["decontamination"] == {"index_checksum": None, "documents_read": documents, "documents_removed": 0}


def test_exported_model_scores_the_same_under_paloma_eval(trained, corpus, tmp_path: Path) -> None:
    run, result = trained
    proc = run_paloma(
        "eval", "--model", result.export_dir, "--data", corpus["heldout"], "--source-name", "heldout",
        "--registry", "none", "--max-length", "128", "--output", tmp_path / "eval", "--no-progress", "--no-cache",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    theirs = {}
    for file in (tmp_path / "eval" / "records").glob("*.jsonl"):
        for line in file.read_text().splitlines():
            record = json.loads(line)
            theirs[int(record["id"])] = record
    ours = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert len(theirs) == len(ours) == 12
    for i, record in enumerate(ours):
        assert theirs[i]["tokens"] == record["tokens"]
        assert theirs[i]["nll_sum"] == pytest.approx(record["nll_sum"], rel=1e-5)
    assert sum(r["tokens"] for r in ours) > 12 * 128  # some documents span several windows
    # what `paloma submit` reads from results.json: the recipe's parameter counts and the training tokens
    model = json.loads((tmp_path / "eval" / "results.json").read_text())["model"]
    training = json.loads((result.export_dir / "paloma_training.json").read_text())
    assert model["parameters"] == training["parameters"]["total"] == result.metrics["parameters"]
    assert model["non_embedding_parameters"] == training["parameters"]["non_embedding"]
    assert model["training_tokens"] == result.tokens == 24 * 8 * 128


def train_small(corpus, run: Path, steps: int, *extra: str) -> None:
    overrides = tiny_overrides(corpus, *SMALL, *extra)
    train("tiny", output_dir=run, overrides=overrides, max_steps=steps, export=False, quiet=True)


def test_a_stopped_and_resumed_run_is_bit_identical_to_an_uninterrupted_one(corpus, tmp_path: Path) -> None:
    train_small(corpus, tmp_path / "straight", 6)
    train_small(corpus, tmp_path / "resumed", 3)
    assert json.loads((tmp_path / "resumed/checkpoints/step-0000003/trainer_state.json").read_text())["step"] == 3
    train_small(corpus, tmp_path / "resumed", 6)
    a = load_file(tmp_path / "straight/checkpoints/step-0000006/model.safetensors")
    b = load_file(tmp_path / "resumed/checkpoints/step-0000006/model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    opt_a = torch.load(tmp_path / "straight/checkpoints/step-0000006/optimizer.bin", weights_only=True)
    opt_b = torch.load(tmp_path / "resumed/checkpoints/step-0000006/optimizer.bin", weights_only=True)
    assert all(torch.equal(opt_a["state"][i]["exp_avg"], opt_b["state"][i]["exp_avg"]) for i in opt_a["state"])
    assert read_log(tmp_path / "straight")[3:] == [
        {**r, "tokens_per_second": s["tokens_per_second"]}
        for r, s in zip(read_log(tmp_path / "resumed")[3:], read_log(tmp_path / "straight")[3:], strict=True)
    ]  # steps 4-6 logged the same losses, LRs and gradient norms


def test_an_intermediate_checkpoint_exports_with_its_own_step(corpus, tmp_path: Path) -> None:
    train_small(corpus, tmp_path / "run", 4, "train.checkpoint_interval=2")
    proc = run_paloma("baselines", "export", tmp_path / "run/checkpoints/step-0000002", "--output", tmp_path / "s2")
    assert proc.returncode == 0, proc.stderr
    info = json.loads((tmp_path / "s2" / "paloma_training.json").read_text())
    assert (info["steps"], info["training_tokens"], info["schedule_fraction"]) == (2, 2 * 4 * 32, 2 / 120)
    weights = load_file(tmp_path / "run/checkpoints/step-0000002/model.safetensors")
    _, exported = load_export(tmp_path / "s2")
    assert torch.equal(exported["transformer.blocks.1.ff_proj.weight"], weights["transformer.blocks.1.ff_proj.weight"])
    proc = run_paloma("baselines", "export", tmp_path / "run" / "checkpoints", "--output", tmp_path / "bad")
    assert proc.returncode == 2 and "not a checkpoint" in proc.stderr


def test_only_the_newest_checkpoints_are_kept_when_asked(corpus, tmp_path: Path) -> None:
    train_small(corpus, tmp_path, 4, "train.checkpoint_interval=1", "train.keep_checkpoints=2")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000003", "step-0000004"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_on_the_same_data_per_step_as_one(corpus, tmp_path: Path) -> None:
    args = ["--config", "tiny", "--no-export", "--quiet", "--max-steps", "3"]
    for item in tiny_overrides(corpus, *SMALL, "train.record_order=true"):
        args += ["--set", item]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_machines", "1"]
    launch += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]
    env = paloma_env(OMP_NUM_THREADS="1")
    for world in (1, 2):
        command = [
            *launch,
            "--num_processes",
            str(world),
            "-m",
            "baselines.train",
            *args,
            "--output",
            tmp_path / str(world),
        ]
        proc = subprocess.run(list(map(str, command)), capture_output=True, text=True, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    one, two = ((tmp_path / str(w) / "order.jsonl").read_text().splitlines() for w in (1, 2))
    assert one == two and len(one) == 3
    # the same global batch gives the same loss at step 1 (same initial weights, sums over the same tokens)
    assert read_log(tmp_path / "2")[0]["loss"] == pytest.approx(read_log(tmp_path / "1")[0]["loss"], rel=1e-6)
    # the recorded order is the global seeded permutation, cut into batches of 4
    from baselines.data import GlobalOrder

    packed = next((tmp_path / "1" / "data").glob("*/manifest.json"))
    order = GlobalOrder(sum(s["instances"] for s in json.loads(packed.read_text())["shards"]), seed=6198)
    assert [json.loads(line)["instances"] for line in one] == [order.step_instances(s, 4) for s in (1, 2, 3)]


def test_init_from_a_larger_model_keeps_the_chosen_layers(trained, corpus, tmp_path: Path) -> None:
    _, result = trained
    overrides = tiny_overrides(corpus, *SMALL, "model.n_layers=1", "train.seq_len=128")
    out = train(
        "tiny", output_dir=tmp_path, overrides=overrides, max_steps=0, init_from=str(result.export_dir),
        keep_layers="1", quiet=True,
    )  # fmt: skip
    _, source = load_export(result.export_dir)
    _, student = load_export(out.export_dir)
    assert torch.equal(student["transformer.blocks.0.ff_proj.weight"], source["transformer.blocks.1.ff_proj.weight"])
    assert torch.equal(student["transformer.ff_out.bias"], source["transformer.ff_out.bias"])
    info = json.loads((out.export_dir / "paloma_training.json").read_text())
    assert info["keep_layers"] == "1" and info["init_from"] == str(result.export_dir)


def test_bad_input_is_refused_before_any_compute(corpus, tmp_path: Path) -> None:
    cases = {
        "tokenizer has 512 tokens but model.vocab_size is 256": tiny_overrides(corpus, "model.vocab_size=256"),
        "has EOS id 0 but model.eos_token_id is 3": tiny_overrides(corpus, "model.eos_token_id=3"),
        "no such file or folder": tiny_overrides(corpus, f"data.corpus={tmp_path / 'missing.jsonl'}"),
        "unknown key train.batch_size": tiny_overrides(corpus, "train.batch_size=3"),
    }
    for message, overrides in cases.items():
        with pytest.raises(PalomaError, match=message):
            train("tiny", output_dir=tmp_path / "run", overrides=overrides, quiet=True)
        assert not (tmp_path / "run").exists()  # nothing written
    proc = run_paloma("train", "--config", "c4", "--output", tmp_path / "c4")  # offline: the hub is unreachable
    assert proc.returncode == 2 and "corpus allenai/c4: cannot open it on the hub" in proc.stderr
    assert not (tmp_path / "c4").exists()


def test_a_checkpoint_from_another_recipe_is_refused(corpus, tmp_path: Path) -> None:
    train_small(corpus, tmp_path, 1)
    with pytest.raises(PalomaError, match="different recipe"):
        train_small(corpus, tmp_path, 2, "optimizer.lr=1e-3")
    proc = run_paloma("train", "--config", "tiny", "--output", tmp_path, "--set", "train.seed=1",
                      *[a for item in tiny_overrides(corpus, *SMALL) for a in ("--set", item)])  # fmt: skip
    assert proc.returncode == 2 and "different recipe" in proc.stderr and proc.stderr.count("\n") == 1
