"""Training end to end on CPU: the loss falls, resume is exact and logs each step once, two real processes
train as one, the export scores the same under `paloma eval`, FSDP checkpoints export, and bad input stops
the run before any compute."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from paloma.cli import main as cli_main
from paloma.errors import PalomaError
from paloma_baselines.config import load_config
from paloma_baselines.export import export_checkpoint, load_export
from paloma_baselines.model import count_parameters
from paloma_baselines.train import train
from tests.baselines_helpers import stdlib_documents, tiny_tokens, train_tokenizer, write_corpus
from tests.conftest import REPO_ROOT, paloma_env, run_paloma

# A small, fast variant of `tiny` for the bookkeeping tests (accumulation: 2 micro-batches per step).
SMALL = ["train.global_batch_size=4", "train.micro_batch_size=2", "train.seq_len=32", "train.log_interval=1"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("corpus")
    docs = stdlib_documents()
    paths = {
        "train": write_corpus(root / "train.jsonl", docs[:-12]),
        "heldout": write_corpus(root / "heldout.jsonl", docs[-12:]),
        "tokenizer": train_tokenizer(docs, root / "tokenizer", vocab_size=512),
    }
    tiny_tokens(paths["train"], paths["tokenizer"], root / "tokens")
    return {**paths, "tokens": root / "tokens", "documents": len(docs) - 12}


def tiny_overrides(corpus: dict[str, Path], *extra: str) -> list[str]:
    """The tiny config with the local tokenizer (512 tokens) instead of GPT-NeoX's, which needs the hub."""
    return [f"data.tokens={corpus['tokens']}", f"data.tokenizer={corpus['tokenizer']}", "model.vocab_size=512", *extra]


def read_log(run: Path, name: str = "log.jsonl") -> list[dict]:
    return [json.loads(line) for line in (run / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory: pytest.TempPathFactory):
    """The tiny config trained for 24 steps on real text, then scored on held-out documents."""
    run = tmp_path_factory.mktemp("tiny")
    overrides = tiny_overrides(corpus, "train.log_interval=1", "train.max_steps=24")
    result = train("tiny", output_dir=run, overrides=overrides, eval_corpus=str(corpus["heldout"]), eval_every=10,
                   quiet=True)  # fmt: skip
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
    expected = {"index_checksum": None, "documents_read": corpus["documents"], "documents_removed": 0}
    assert info["decontamination"] == expected  # as counted while tokenizing
    assert info["corpus"]["path"] == str(corpus["train"]) and info["token_files"]["tokens"] == str(corpus["tokens"])


def test_exported_model_scores_the_same_under_paloma_eval(trained, corpus, tmp_path: Path) -> None:
    run, result = trained
    proc = run_paloma(
        "eval", "--model", result.export_dir, "--data", corpus["heldout"], "--source-name", "heldout",
        "--registry", "none", "--max-length", "128", "--output", tmp_path / "eval", "--no-progress", "--no-cache",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # the trainer's held-out numbers come from paloma.Evaluator on the live model: those of paloma eval on the
    # export (another implementation of the same weights: equal to float32 precision)
    theirs = json.loads((tmp_path / "eval" / "results.json").read_text())["sources"]["heldout"]["domains"]
    ours = json.loads((run / "eval_results.json").read_text())
    assert ours["step"] == 24 and ours["protocol"]["max_length"] == 128 and ours["model"]["in_memory"]
    ours = ours["sources"]["heldout"]["domains"]
    assert ours.keys() == theirs.keys() == {"heldout"}
    for key in ("documents", "tokens", "bytes"):
        assert ours["heldout"][key] == theirs["heldout"][key]
    assert ours["heldout"]["documents"] == 12 and ours["heldout"]["tokens"] > 12 * 128  # some span several windows
    assert ours["heldout"]["nll_sum"] == pytest.approx(theirs["heldout"]["nll_sum"], rel=1e-5)
    lines = [json.loads(line) for line in (run / "eval.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [10, 20, 24]  # every 10 steps and at the end
    assert lines[-1]["eval_loss"] == pytest.approx(ours["heldout"]["nll_sum"] / ours["heldout"]["tokens"], rel=1e-12)
    assert lines[-1]["eval_loss"] == result.metrics["eval_loss"]
    assert lines[-1]["eval/paloma/heldout/bpb"] == pytest.approx(theirs["heldout"]["bpb"], rel=1e-5)
    # what `paloma submit` reads from results.json: the recipe's parameter counts and the training tokens
    model = json.loads((tmp_path / "eval" / "results.json").read_text())["model"]
    training = json.loads((result.export_dir / "paloma_training.json").read_text())
    assert model["parameters"] == training["parameters"]["total"] == result.metrics["parameters"]
    assert model["non_embedding_parameters"] == training["parameters"]["non_embedding"]
    assert model["training_tokens"] == result.tokens == 24 * 8 * 128


def train_small(corpus, run: Path, steps: int, *extra: str, **options):
    overrides = tiny_overrides(corpus, *SMALL, *extra)
    return train("tiny", output_dir=run, overrides=overrides, max_steps=steps, export=False, quiet=True, **options)


def checkpoint(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:07d}"


def without_speed(log: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("tokens_per_second", "mfu")} for r in log]


def test_a_killed_and_resumed_run_is_bit_identical_and_logs_each_step_once(corpus, tmp_path: Path) -> None:
    train_small(corpus, tmp_path / "straight", 6, "train.record_order=true")
    train_small(corpus, tmp_path / "resumed", 5, "train.record_order=true", "train.checkpoint_interval=2")
    # killed after logging step 5, before its checkpoint: the run resumes from step 4 and replays step 5
    shutil.rmtree(checkpoint(tmp_path / "resumed", 5))
    with (tmp_path / "resumed" / "log.jsonl").open("a") as log:
        log.write('{"step": 6, "loss": 1.')  # and a line cut short by the kill
    train_small(corpus, tmp_path / "resumed", 6, "train.record_order=true", "train.checkpoint_interval=2")
    a = load_file(checkpoint(tmp_path / "straight", 6) / "model.safetensors")
    b = load_file(checkpoint(tmp_path / "resumed", 6) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    opt_a = torch.load(checkpoint(tmp_path / "straight", 6) / "optimizer.bin", weights_only=True)
    opt_b = torch.load(checkpoint(tmp_path / "resumed", 6) / "optimizer.bin", weights_only=True)
    assert all(torch.equal(opt_a["state"][i]["exp_avg"], opt_b["state"][i]["exp_avg"]) for i in opt_a["state"])
    for name in ("log.jsonl", "order.jsonl"):
        resumed = read_log(tmp_path / "resumed", name)
        assert [r["step"] for r in resumed] == [1, 2, 3, 4, 5, 6], name  # each step once
        assert without_speed(resumed) == without_speed(read_log(tmp_path / "straight", name))


def test_an_intermediate_checkpoint_exports_with_its_own_step(corpus, tmp_path: Path, capsys) -> None:
    train_small(corpus, tmp_path / "run", 4, "train.checkpoint_interval=2")
    step_2 = checkpoint(tmp_path / "run", 2)
    assert cli_main(["baselines", "export", str(step_2), "--output", str(tmp_path / "s2")]) == 0
    info = json.loads((tmp_path / "s2" / "paloma_training.json").read_text())
    assert (info["steps"], info["training_tokens"], info["schedule_fraction"]) == (2, 2 * 4 * 32, 2 / 120)
    weights = load_file(step_2 / "model.safetensors")
    _, exported = load_export(tmp_path / "s2")
    assert torch.equal(exported["transformer.blocks.1.ff_proj.weight"], weights["transformer.blocks.1.ff_proj.weight"])
    capsys.readouterr()
    not_one = tmp_path / "run" / "checkpoints"
    assert cli_main(["baselines", "export", str(not_one), "--output", str(tmp_path / "x")]) == 2
    assert "not a checkpoint (no trainer_state.json)" in capsys.readouterr().err


def test_only_the_newest_checkpoints_are_kept_when_asked(corpus, tmp_path: Path) -> None:
    train_small(corpus, tmp_path, 4, "train.checkpoint_interval=1", "train.keep_checkpoints=2")
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-0000003", "step-0000004"]


def test_activation_checkpointing_and_the_chunked_loss_change_nothing_but_memory(corpus, tmp_path: Path) -> None:
    train_small(corpus, tmp_path / "plain", 3)
    train_small(corpus, tmp_path / "lean", 3, "train.activation_checkpointing=true", "train.loss_chunk_tokens=7")
    plain, lean = read_log(tmp_path / "plain"), read_log(tmp_path / "lean")
    for a, b in zip(plain, lean, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6) and b["grad_norm"] == pytest.approx(a["grad_norm"])
    a = load_file(checkpoint(tmp_path / "plain", 3) / "model.safetensors")
    b = load_file(checkpoint(tmp_path / "lean", 3) / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(processes: int, args: list, **env: str | None) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node N ARGS` from the repository root; an env value of None removes the variable."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes)]
    command += ["--master_port", str(free_port()), *args]
    environment = paloma_env(OMP_NUM_THREADS="1", **{k: v for k, v in env.items() if v is not None})
    for name in (k for k, v in env.items() if v is None):
        environment.pop(name, None)
    return subprocess.run(
        list(map(str, command)), capture_output=True, text=True, env=environment, timeout=600, cwd=REPO_ROOT
    )


def train_args(corpus, output: Path, steps: int, *extra: str) -> list:
    args = ["-m", "paloma_baselines.train", "--config", "tiny", "--no-export", "--quiet", "--output", output]
    args += ["--max-steps", steps]
    for item in tiny_overrides(corpus, *SMALL, *extra):
        args += ["--set", item]
    return args


@pytest.mark.slow
def test_two_real_processes_train_exactly_as_one(corpus, tmp_path: Path) -> None:
    proc = torchrun(2, train_args(corpus, tmp_path / "two", 3, "train.record_order=true"), ACCELERATE_USE_CPU="true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    train_small(corpus, tmp_path / "one", 3, "train.record_order=true")
    two, one = read_log(tmp_path / "two"), read_log(tmp_path / "one")
    assert [r["world_size"] for r in two] == [2, 2, 2] and [r["world_size"] for r in one] == [1, 1, 1]
    state = json.loads((checkpoint(tmp_path / "two", 3) / "trainer_state.json").read_text())
    assert state["world_size"] == 2  # two processes joined one gloo job (not two runs of one)
    assert read_log(tmp_path / "two", "order.jsonl") == read_log(tmp_path / "one", "order.jsonl")
    for a, b in zip(one, two, strict=True):  # the same global batch and the same update at every step
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-6) and b["grad_norm"] == pytest.approx(a["grad_norm"])
    a = load_file(checkpoint(tmp_path / "one", 3) / "model.safetensors")
    b = load_file(checkpoint(tmp_path / "two", 3) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-6) for k in a)


@pytest.mark.slow
def test_a_cpu_multi_process_launch_without_the_cpu_setting_is_refused(corpus, tmp_path: Path) -> None:
    proc = torchrun(2, train_args(corpus, tmp_path / "run", 3), ACCELERATE_USE_CPU=None)
    assert proc.returncode != 0
    refusals = [line for line in proc.stderr.splitlines() if line.startswith("paloma_baselines.train: error: ")]
    assert len(refusals) == 2  # each of the two processes says it in one line ...
    assert "without ACCELERATE_USE_CPU=true, so each would train alone" in refusals[0]
    assert "baselines/train.py" not in proc.stderr  # no traceback of ours (torchrun reports the failed children)
    assert not (tmp_path / "run").exists()  # ... before writing anything


@pytest.mark.slow
def test_fsdp_checkpoints_sharded_or_full_export_and_start_a_new_run(corpus, tmp_path: Path) -> None:
    """Real FSDP (torch's fully_shard over two gloo processes) saved by accelerate's own FSDP checkpointing."""
    train_small(corpus, tmp_path / "run", 2)
    source = checkpoint(tmp_path / "run", 2)
    weights = load_file(source / "model.safetensors")
    export_checkpoint(source, tmp_path / "export-plain")
    _, plain = load_export(tmp_path / "export-plain")
    sharded, full = checkpoint(tmp_path / "run", 100), checkpoint(tmp_path / "run", 200)
    proc = torchrun(2, [REPO_ROOT / "tests" / "baselines_fsdp.py", source, sharded, full], ACCELERATE_USE_CPU="true")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # accelerate's two layouts: one shard per process in a DCP folder, or one gathered file
    layout = {p.relative_to(sharded).as_posix() for p in sharded.rglob("*") if p.is_file()}
    assert layout == {f"pytorch_model_fsdp_0/{n}" for n in (".metadata", "__0_0.distcp", "__1_0.distcp")} | {
        "trainer_state.json"
    }
    assert {p.name for p in full.iterdir()} == {"pytorch_model_fsdp.bin", "trainer_state.json"}
    assert cli_main(["baselines", "export", str(sharded), "--output", str(tmp_path / "export-sharded")]) == 0
    export_checkpoint(full, tmp_path / "export-full")
    for kind in ("sharded", "full"):
        _, exported = load_export(tmp_path / f"export-{kind}")
        assert exported.keys() == plain.keys() and all(torch.equal(exported[k], plain[k]) for k in plain), kind
    student = train_small(corpus, tmp_path / "student", 0, init_from=str(sharded))
    started = load_file(checkpoint(student.output_dir, 0) / "model.safetensors")
    assert all(torch.equal(started[k], weights[k]) for k in weights)


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
    (tmp_path / "a-file").write_text("not a folder\n")
    (tmp_path / "someone-else").mkdir()
    (tmp_path / "someone-else" / "notes.txt").write_text("mine\n")
    cases = {
        "tokenizer has 512 tokens but model.vocab_size is 256": (tiny_overrides(corpus, "model.vocab_size=256"), "run"),
        "has EOS id 0 but model.eos_token_id is 3": (tiny_overrides(corpus, "model.eos_token_id=3"), "run"),
        "no such folder or file; run `paloma baselines tokenize": (
            tiny_overrides(corpus, f"data.tokens={tmp_path / 'missing'}"), "run"),
        "unknown key train.batch_size": (tiny_overrides(corpus, "train.batch_size=3"), "run"),
        "train.micro_batch_size must be ≥ 1, got 0": (tiny_overrides(corpus, "train.micro_batch_size=0"), "run"),
        "optimizer.lr must be > 0, got nan": (tiny_overrides(corpus, "optimizer.lr=.nan"), "run"),
        "is a file; the output here is a folder": (tiny_overrides(corpus), "a-file"),
        "is not empty and is not a training run": (tiny_overrides(corpus), "someone-else"),
    }  # fmt: skip
    for message, (overrides, output) in cases.items():
        with pytest.raises(PalomaError, match=message.replace("(", r"\(")):
            train("tiny", output_dir=tmp_path / output, overrides=overrides, quiet=True)
    assert not (tmp_path / "run").exists() and sorted(p.name for p in (tmp_path / "someone-else").iterdir()) == [
        "notes.txt"
    ]  # nothing written
    proc = run_paloma("train", "--config", "c4", "--output", tmp_path / "c4")  # no tokens: an instruction, no work
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "no tokenized training data (data.tokens is not set): run `paloma baselines tokenize --config c4" in (
        proc.stderr
    )
    assert not (tmp_path / "c4").exists()


def test_a_checkpoint_from_another_recipe_is_refused_until_overwrite(corpus, tmp_path: Path) -> None:
    train_small(corpus, tmp_path, 1)
    with pytest.raises(
        PalomaError, match=r"different recipe.*rerun with that config to continue it, or pass --overwrite"
    ):
        train_small(corpus, tmp_path, 2, "optimizer.lr=1e-3")
    proc = run_paloma("train", "--config", "tiny", "--output", tmp_path, "--set", "train.seed=1",
                      *[a for item in tiny_overrides(corpus, *SMALL) for a in ("--set", item)])  # fmt: skip
    assert proc.returncode == 2 and "different recipe" in proc.stderr and proc.stderr.count("\n") == 1
    result = train_small(corpus, tmp_path, 2, "optimizer.lr=1e-3", overwrite=True)
    assert result.steps == 2 and [r["step"] for r in read_log(tmp_path)] == [1, 2]


def test_run_outputs_are_readable_like_any_file_under_umask_022(corpus, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        overrides = tiny_overrides(corpus, *SMALL, "train.record_order=true")
        train("tiny", output_dir=tmp_path / "run", overrides=overrides, max_steps=2, quiet=True)
        assert cli_main(["baselines", "export", str(tmp_path / "run"), "--output", str(tmp_path / "export")]) == 0
    finally:
        os.umask(old)
    paths = [p for root in ("run", "export") for p in (tmp_path / root).rglob("*")]
    assert {p.name for p in paths} >= {"model.safetensors", "optimizer.bin", "log.jsonl", "config.json", "model"}
    modes = {str(p): p.stat().st_mode & 0o777 for p in paths}
    assert not {p: oct(m) for p, m in modes.items() if m != (0o755 if Path(p).is_dir() else 0o644)}


def test_trackers_are_chosen_not_inherited_from_what_is_installed(corpus, tmp_path: Path, monkeypatch) -> None:
    """An installed wandb (the dev environment has it) is not used unasked: without an account it would stop
    `paloma demo`'s training. `train.log_with` names the trackers; TensorBoard then gets the logged values."""
    pytest.importorskip("wandb")
    pytest.importorskip("tensorboard")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "online")  # what a plain environment has: wandb.init would need a key
    train_small(corpus, tmp_path / "plain", 2)
    assert not list((tmp_path / "plain").rglob("events.out.tfevents*")) and not (tmp_path / "plain" / "wandb").exists()
    train_small(corpus, tmp_path / "tb", 2, "train.log_with=tensorboard", "train.log_interval=1")
    assert list((tmp_path / "tb").rglob("events.out.tfevents*"))
