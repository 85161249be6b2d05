"""Throughput of the baselines pipeline on this machine: tokenizing (per datatrove worker) and training. By hand:

    python benchmarks/bench_baselines.py tokenize [--mb 40] [--workers 1 2] [--vocab 50277]
    python benchmarks/bench_baselines.py train [--configs tiny ladder-m] [--steps 12] [--set KEY=VALUE ...]

tokenize: `paloma_baselines.tokens.tokenize` (the datatrove pipeline of `paloma baselines tokenize`: JSONL reader,
document count, tokenizer, OLMo token writer) over a corpus of real text (the Python standard library's
documentation and source, repeated to --mb megabytes in 8 JSONL files) with a byte-level BPE trained on that
text to a GPT-NeoX-sized vocabulary (--vocab), on datatrove's local executor with 8 tasks and each --workers
value. Tokens/s per worker = tokens / the tasks' summed run time (each task runs in one worker); CPU seconds
are the tasks' own process time (the tokenizer's Rust threads included).

train: each config trains for --steps optimizer steps through `paloma_baselines.train.train` (the real loop: token
files, forward, chunked loss, backward, clipping, LionW) on tokens of the standard library's documentation with
a small local tokenizer; the configs' own vocabulary size (50304) is kept, so the output layer costs what it
costs in the recipe. Tokens/s is the median over the steps after the first two. MFU divides the model FLOPs
(6 per weight per token plus attention, `paloma_baselines.model.flops_per_token`) by a peak: on a GPU the device's
dense bf16 peak, on a CPU the fp32 matmul throughput measured right before and after each run (so CPU MFU
reads "fraction of what this CPU's GEMM reaches under the same load", not of a datasheet number).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from paloma_baselines.config import load_config
from paloma_baselines.model import count_parameters, flops_per_token
from paloma_baselines.tokens import tokenize
from paloma_baselines.train import PEAK_FLOPS, train
from tests.baselines_helpers import stdlib_documents, tiny_tokens, train_tokenizer, write_corpus


def load() -> float | None:
    return round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None


def stdlib_texts(megabytes: float = 30) -> list[str]:
    """Real text: the standard library's docstrings and the source of its modules (tests and installed
    packages left out), about `megabytes` of it: enough to train a GPT-NeoX-sized BPE vocabulary."""
    texts, size = stdlib_documents(), 0
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if {"site-packages", "test", "tests"} & set(path.parts) or size > megabytes * 1e6:
            continue
        texts.append(path.read_text(encoding="utf-8", errors="replace"))
        size += len(texts[-1].encode())
    return texts


def repeated(texts: list[str], megabytes: float) -> list[str]:
    corpus, size = [], 0
    while size < megabytes * 1e6:
        for text in texts:
            corpus.append(text)
            size += len(text.encode())
    return corpus


def bench_tokenize(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base = stdlib_texts()
        texts = repeated(base, args.mb)
        started = time.perf_counter()
        tokenizer = train_tokenizer(base, root / "tok", vocab_size=args.vocab)
        from paloma_baselines.data import load_tokenizer

        vocab = len(load_tokenizer(str(tokenizer)))
        print(f"tokenizer: byte-level BPE, {vocab} tokens (trained in {time.perf_counter() - started:.0f}s)")
        for k in range(8):
            write_corpus(root / "corpus" / f"part-{k}.jsonl", texts[k::8])
        model_vocab = -(-vocab // 128) * 128
        for workers in args.workers:
            before = load()
            result = tokenize(
                "c4", root / f"tokens-{workers}", corpus=str(root / "corpus"), tokenizer=str(tokenizer),
                overrides=[f"model.vocab_size={model_vocab}"], tasks=8, workers=workers, quiet=True,
            )  # fmt: skip
            records = [json.loads(p.read_text()) for p in sorted(result.output_dir.glob("part-?????.json"))]
            busy, cpu = sum(r["seconds"] for r in records), sum(r["cpu_seconds"] for r in records)
            row = {"workers": workers, "tasks": 8, "megabytes": args.mb, "documents": result.documents_read,
                   "tokens": result.tokens, "wall_s": round(result.seconds, 1),
                   "tokens_per_s": round(result.tokens / result.seconds),
                   "tokens_per_s_per_worker": round(result.tokens / busy), "task_cpu_s": round(cpu, 1),
                   "vocab": vocab, "cores": os.cpu_count(), "load_before": before, "load_after": load()}  # fmt: skip
            print(json.dumps(row), flush=True)


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


def bench_train(args: argparse.Namespace) -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if gpu else f"{platform.processor() or platform.machine()} CPU"
    datasheet = next((v for k, v in PEAK_FLOPS.items() if k in device), None) if gpu else None
    print(f"device: {device}, {torch.get_num_threads()} threads, {os.cpu_count()} cores, load average {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        docs = stdlib_documents()
        corpus = write_corpus(Path(tmp) / "corpus.jsonl", docs)
        tokenizer = train_tokenizer(docs, Path(tmp) / "tok", vocab_size=512)
        tokens = tiny_tokens(corpus, tokenizer, Path(tmp) / "tokens").output_dir
        for name in args.configs:
            # On a shared CPU the reachable peak moves with the load: measure it right before and after the run.
            before = datasheet or cpu_matmul_peak()
            overrides = [f"data.tokenizer={tokenizer}", "train.log_interval=1", *args.set]
            overrides += ["train.checkpoint_interval=100000"]
            run = Path(tmp) / name
            train(name, output_dir=run, tokens=str(tokens), max_steps=args.steps, overrides=overrides, export=False,
                  quiet=True)  # fmt: skip
            log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
            tps = statistics.median(r["tokens_per_second"] for r in log[2:])
            peak = datasheet or max(before, cpu_matmul_peak())
            config = load_config(name, args.set)
            m, t = config.model, config.train
            mfu = flops_per_token(m, t.seq_len) * tps / peak
            row = {"config": " ".join([name, *args.set]), "parameters": count_parameters(m).total,
                   "seq_len": t.seq_len, "batch": t.global_batch_size, "micro_batch": t.micro_batch_size,
                   "tokens_per_second": round(tps),
                   "model_gflops_per_second": round(flops_per_token(m, t.seq_len) * tps / 1e9, 2),
                   "peak_gflops_per_second": round(peak / 1e9, 1), "mfu": round(mfu, 4), "device": device,
                   "threads": torch.get_num_threads(), "load_average": load()}  # fmt: skip
            print(json.dumps(row), flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    modes = parser.add_subparsers(dest="mode", required=True)
    tok = modes.add_parser("tokenize", help="tokens/s of `paloma baselines tokenize` per datatrove worker")
    tok.add_argument("--mb", type=float, default=40, help="megabytes of text")
    tok.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    tok.add_argument("--vocab", type=int, default=50277, help="BPE vocabulary to train (GPT-NeoX: 50277)")
    tok.set_defaults(func=bench_tokenize)
    tr = modes.add_parser("train", help="training tokens/s and MFU")
    tr.add_argument("--configs", nargs="+", default=["tiny", "ladder-m"])
    tr.add_argument("--steps", type=int, default=12)
    tr.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    tr.add_argument("--set", action="append", default=[], help="config override for every run (model.vocab_size=512)")
    tr.set_defaults(func=bench_train)
    args = parser.parse_args()
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
