"""Tokens/s and MFU of the 1B baseline recipe on one GPU, a few steps per variant. Run by hand (or at the end of
benchmarks/gpu_check.sh); about 3 minutes on one H100/H200:

    python benchmarks/gpu_check_train.py                          # every variant below
    python benchmarks/gpu_check_train.py --variants bf16 bf16+ac  # a choice of them
    python benchmarks/gpu_check_train.py --cpu-smoke              # the same code paths, tiny model, on CPU

Each variant is one real `paloma_baselines.train` run in its own process (as a user launches it), on synthetic token
files in OLMo's format (uniform random ids over the 50304-row vocabulary, so no hub download is needed) with a
small local tokenizer; the recipe is `c4` (1,280,263,296 parameters, sequences of 2048) with one micro-batch
of 8 per step. Variants:

    bf16           one process, bf16 autocast (the trainer's DDP path with one process)
    bf16+ac        ... with activation checkpointing (train.activation_checkpointing=true)
    bf16+compile   ... with every block torch.compile'd (train.compile=true)
    fsdp           baselines/accelerate/fsdp-1x8.yaml's launch environment on one process: FSDP2, one unit
                   per Block, bf16 parameters with fp32 gradient reduction; its sharded checkpoint is then
                   exported with `paloma baselines export` (the FSDP export path)

Tokens/s is the median over the logged steps after the first two (warm-up, compilation); MFU is the trainer's
(6 FLOPs per weight per token plus attention, over the device's dense bf16 peak). Prints a table and writes
it as JSON next to --workdir.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.baselines_helpers import launch_env, stdlib_documents, train_tokenizer  # noqa: E402

VARIANTS = {
    "bf16": [],
    "bf16+ac": ["train.activation_checkpointing=true"],
    "bf16+compile": ["train.compile=true"],
    "fsdp": [],
}
GPU_RECIPE = ["train.global_batch_size=8", "train.micro_batch_size=8"]
CPU_RECIPE = [
    "model.d_model=64", "model.n_layers=2", "model.n_heads=2", "model.mlp_hidden=256", "model.vocab_size=512",
    "model.max_seq_len=128", "train.seq_len=128", "train.global_batch_size=4", "train.micro_batch_size=2",
]  # fmt: skip


def synthetic_tokens(folder: Path, vocab: int, tokens: int, files: int = 4) -> Path:
    """OLMo-format token files (flat uint16) of uniform random ids, EOS (0) every ~1000 tokens."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(files):
        ids = rng.integers(2, vocab, size=tokens // files, dtype=np.uint16)
        ids[rng.random(ids.shape) < 1e-3] = 0
        ids.tofile(folder / f"part-{k:03d}-00000.npy")
    return folder


def run_variant(name: str, args: argparse.Namespace, tokens: Path, tokenizer: Path, run: Path) -> dict:
    overrides = [*(CPU_RECIPE if args.cpu_smoke else GPU_RECIPE), *VARIANTS[name]]
    overrides += ["train.log_interval=1", "train.checkpoint_interval=1000000"]
    train = ["-m", "paloma_baselines.train", "--config", "c4", "--tokens", str(tokens), "--tokenizer", str(tokenizer)]
    train += ["--output", str(run), "--max-steps", str(args.steps), "--no-export", "--quiet"]
    for item in overrides:
        train += ["--set", item]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, *train]
    if name == "fsdp":
        # What `accelerate launch --config_file fsdp-1x8.yaml` gives each of its 8 processes, for one process
        # under torchrun (accelerate's own one-process launcher would drop the FSDP settings).
        env.update(launch_env(REPO / "baselines" / "accelerate" / "fsdp-1x8.yaml"))
        command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", *train]
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=args.timeout)
    row = {"variant": name, "wall_s": round(time.perf_counter() - started, 1)}
    if proc.returncode != 0:
        return {**row, "error": (proc.stderr.strip().splitlines() or ["?"])[-1][:200]}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    measured = log[2:] or log
    row["tokens_per_s"] = round(statistics.median(r["tokens_per_second"] for r in measured))
    mfus = [r["mfu"] for r in measured if r.get("mfu") is not None]
    row["mfu"] = round(statistics.median(mfus), 3) if mfus else None
    row["final_loss"] = round(log[-1]["loss"], 4)
    if name == "fsdp":
        row["export"] = export_sharded(run, env, args.timeout)
    return row


def export_sharded(run: Path, env: dict, timeout: float) -> str:
    """`paloma baselines export` of the run's (sharded) FSDP checkpoint; 'ok' or the error line."""
    checkpoint = sorted((run / "checkpoints").glob("step-*"))[-1]
    layout = "sharded" if (checkpoint / "pytorch_model_fsdp_0").is_dir() else "full"
    command = [sys.executable, "-m", "paloma", "baselines", "export", str(checkpoint), "--output", str(run / "x")]
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
    return f"ok ({layout})" if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1][:200]


def print_table(rows: list[dict]) -> None:
    from paloma.table import format_table

    headers = ["variant", "tokens_per_s", "mfu", "final_loss", "wall_s", "export", "error"]
    print(format_table(headers, [[r.get(h, "") for h in headers] for r in rows]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--timeout", type=float, default=170, help="seconds per variant")
    parser.add_argument("--cpu-smoke", action="store_true", help="a tiny model on CPU (FSDP needs a GPU: skipped)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the runs here (default: a temp folder)")
    args = parser.parse_args()
    import torch

    if not args.cpu_smoke and not torch.cuda.is_available():
        print("no CUDA device: run with --cpu-smoke to check the code paths on CPU", file=sys.stderr)
        return 2
    device = "CPU" if args.cpu_smoke else torch.cuda.get_device_name(0)
    print(f"device: {device}; recipe c4 ({'tiny shape' if args.cpu_smoke else '1B'}), {args.steps} steps per variant")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="gpu-check-train-"))
    vocab = 512 if args.cpu_smoke else 50304
    tokens = synthetic_tokens(workdir / "tokens", vocab, tokens=2_000_000 if args.cpu_smoke else 20_000_000)
    docs = stdlib_documents()
    tokenizer = train_tokenizer(docs, workdir / "tokenizer", vocab_size=512)
    rows = []
    for name in args.variants:
        if args.cpu_smoke and name == "fsdp":
            rows.append({"variant": name, "error": "skipped on CPU (accelerate runs FSDP on GPUs only)"})
            continue
        run = workdir / f"run-{name}"
        shutil.rmtree(run, ignore_errors=True)
        rows.append(run_variant(name, args, tokens, tokenizer, run))
        if args.workdir is None:
            shutil.rmtree(run, ignore_errors=True)  # ~15 GB of checkpoint per 1B run
        print(json.dumps(rows[-1]), flush=True)
    print_table(rows)
    (workdir / "gpu_check_train.json").write_text(json.dumps({"device": device, "rows": rows}, indent=1))
    return 0 if all("error" not in r or r["error"].startswith("skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
