"""Training throughput of the baseline trainer (tokens/s and MFU) on this machine. Run by hand:

    python benchmarks/bench_baselines.py [--configs tiny ladder-m] [--steps 12] [--threads N]

Each config trains for --steps optimizer steps through `baselines.train.train` (the real loop: data
loading, forward, backward, clipping, LionW) on the Python standard library's documentation with a
small local tokenizer; the configs' own vocabulary size (50304) is kept, so the output layer costs what
it costs in the recipe. Tokens/s is the median over the steps after the first two. MFU divides the
model FLOPs (6 per weight per token plus attention, `baselines.model.flops_per_token`) by a peak: on
a GPU the device's dense bf16 peak, on a CPU the fp32 matmul throughput measured right before and after
each run (so CPU MFU reads as "fraction of what this CPU's GEMM reaches under the same load", not of a
datasheet number).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines.config import load_config
from baselines.model import count_parameters, flops_per_token
from baselines.train import PEAK_FLOPS, train
from tests.baselines_helpers import stdlib_documents, train_tokenizer, write_corpus


def cpu_matmul_peak(size: int = 1024, seconds: float = 3.0) -> float:
    """FLOP/s of fp32 square matmuls, the best of several timed bursts."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    best, end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        start = time.perf_counter()
        for _ in range(4):
            torch.mm(a, b)
        best = max(best, 4 * 2 * size**3 / (time.perf_counter() - start))
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", default=["tiny", "ladder-m"])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument(
        "--set", action="append", default=[], help="config override for every run, e.g. model.vocab_size=512"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if gpu else f"{platform.processor() or platform.machine()} CPU"
    datasheet = next((v for k, v in PEAK_FLOPS.items() if k in device), None) if gpu else None
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(f"device: {device}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, load average {load}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        docs = stdlib_documents()
        corpus = write_corpus(Path(tmp) / "corpus.jsonl", docs)
        tokenizer = train_tokenizer(docs, Path(tmp) / "tok", vocab_size=512)
        for name in args.configs:
            # On a shared CPU the reachable peak moves with the load: measure it right before and after the run.
            before = datasheet or cpu_matmul_peak()
            overrides = [f"data.tokenizer={tokenizer}", "train.log_interval=1", *args.set]
            overrides += ["train.checkpoint_interval=100000"]
            run = Path(tmp) / name
            train(
                name,
                output_dir=run,
                corpus=str(corpus),
                max_steps=args.steps,
                overrides=overrides,
                export=False,
                quiet=True,
            )
            log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
            tps = statistics.median(r["tokens_per_second"] for r in log[2:])
            peak = datasheet or max(before, cpu_matmul_peak())
            config = load_config(name, args.set)
            m, t = config.model, config.train
            mfu = flops_per_token(m, t.seq_len) * tps / peak
            label = " ".join([name, *args.set])
            row = {"config": label, "parameters": count_parameters(m).total, "seq_len": t.seq_len,
                   "batch": t.global_batch_size, "micro_batch": t.micro_batch_size, "tokens_per_second": round(tps),
                   "model_gflops_per_second": round(flops_per_token(m, t.seq_len) * tps / 1e9, 2),
                   "peak_gflops_per_second": round(peak / 1e9, 1),
                   "mfu": round(mfu, 4), "device": device, "threads": torch.get_num_threads(),
                   "load_average": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None}  # fmt: skip
            rows.append(row)
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
