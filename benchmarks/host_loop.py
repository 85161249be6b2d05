"""The host side of `paloma eval`'s scoring loop: scored tokens per second when the forward costs almost nothing.

On a GPU the forward of a 1B model runs at roughly 50–100k scored tokens/s (an H100); everything else the loop
does per batch (gathering windows from the memory-mapped token cache, building the batch, copies, Python per
batch, per-document sums, writing records) must then be ≥ 20× faster, or it becomes the limit. Here the model is
a real transformers Llama with no layers and a vocabulary of 8 entries (an embedding, the final norm and an 8-row
output layer), so what is timed is the loop itself.

The run is the evaluator's own: `plan_chunks` → `score_chunks` (the same Scorer, Documents, RecordWriter, flush)
over a token cache already on disk (memory-mapped, warm in the page cache: the state of any rerun or second
process). The data mimics Paloma's mix: many documents of a few hundred tokens (log-normal, median ~300) with a
heavy tail, plus a few long M2D2-style documents of tens of thousands of tokens; L = 2048 and a GPU-sized batch
budget (64 windows of L).

The device's work is what happens inside `Scorer.nll` (copies to the device, the forward, the output layer):
on a GPU it runs asynchronously, here on the CPU it is timed apart (wall and thread CPU time, torch on one
thread) and taken out. Host work is everything else, the prefetching thread included: process CPU seconds less
the scorer's. Reported: scored tokens per host CPU-second (the goal: ≥ 2M), per second of the loop's wall time
outside the scorer (what a GPU would wait for, at most), per second of total wall time, the CPU seconds, the
load average, and (with --profile) the top of a cProfile of the loop's main thread.

Usage: python benchmarks/host_loop.py [--tokens 8000000] [--median 300] [--max-length 2048] [--batch-rows 64]
       [--device cpu] [--model null] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PretrainedConfig
from transformers.modeling_outputs import CausalLMOutput

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from paloma.eval.data import Document, index_documents  # noqa: E402
from paloma.eval.loop import LoopOptions, score_chunks  # noqa: E402
from paloma.eval.plan import plan_chunks, share_window_tokens  # noqa: E402
from paloma.eval.records import RecordWriter, load_records  # noqa: E402
from paloma.eval.scoring import Scorer  # noqa: E402
from paloma.eval.sequences import Documents  # noqa: E402
from paloma.eval.tokens import TokenStore  # noqa: E402

VOCAB = 8


def paloma_like_lengths(total_tokens: int, median: int = 300, seed: int = 0) -> np.ndarray:
    """Document lengths like Paloma's: log-normal around `median` tokens with a heavy tail, plus long documents
    (≈ 15% of the tokens in documents of 20k–100k tokens, as M2D2's pseudo-documents)."""
    rng = np.random.default_rng(seed)
    long_budget = int(total_tokens * 0.15)
    long = []
    while sum(long) < long_budget:
        long.append(int(rng.integers(20_000, 100_000)))
    short_budget = total_tokens - sum(long)
    short = rng.lognormal(mean=np.log(median), sigma=1.0, size=short_budget // median * 2)
    short = np.maximum(1, short).astype(np.int64)
    short = short[: int(np.searchsorted(np.cumsum(short), short_budget)) + 1]
    lengths = np.concatenate([short, np.array(long, dtype=np.int64)])
    return lengths[rng.permutation(len(lengths))]


def token_cache(folder: Path, lengths: np.ndarray, seed: int = 1) -> TokenStore:
    """A token cache as `paloma.eval.tokens` writes it (flat int32 ids, int64 offsets), memory-mapped back."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.random.default_rng(seed).integers(0, VOCAB, size=int(offsets[-1]), dtype=np.int32)
    ids.tofile(folder / "ids.bin")
    mapped = np.memmap(folder / "ids.bin", dtype=np.int32, mode="r", shape=(len(ids),))
    np.asarray(mapped).sum()  # warm: read once through the page cache
    return TokenStore(mapped, offsets)


def document_index(count: int):
    """Index entries for `count` documents over a few domains (texts are not read by the loop)."""
    domains = [("c4_100_domains", f"domain_{k}") for k in range(20)]
    return index_documents(Document(*domains[i % len(domains)], id=f"doc-{i}", text="x y") for i in range(count))


class NullLM(torch.nn.Module):
    """A causal LM with no layers: logits = output_layer(embedding(token)), only at the positions kept.

    It has the interface of a transformers causal LM that the Scorer uses for heads it does not know (the
    model's own forward with `logits_to_keep`), so the loop runs unchanged, and its forward is a lookup and an
    8-column matrix product: almost nothing, on any device.
    """

    def __init__(self, vocab: int = VOCAB, hidden: int = 8):
        super().__init__()
        self.config = PretrainedConfig(vocab_size=vocab)
        self.embed = torch.nn.Embedding(vocab, hidden)
        self.head = torch.nn.Linear(hidden, vocab, bias=False)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embed

    def get_output_embeddings(self) -> torch.nn.Linear:
        return self.head

    def forward(self, input_ids, attention_mask=None, logits_to_keep=None, use_cache=None) -> CausalLMOutput:
        kept = input_ids if logits_to_keep is None else input_ids[:, logits_to_keep]
        return CausalLMOutput(logits=self.head(self.embed(kept)))


def null_model(kind: str) -> torch.nn.Module:
    """`null`: NullLM; `llama`: a transformers Llama with no layers (its mask and rotary work remain: cheap on a
    GPU, not on a CPU)."""
    torch.manual_seed(0)
    if kind == "null":
        return NullLM().eval()
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=8, intermediate_size=8, num_hidden_layers=0,
                         num_attention_heads=1, num_key_value_heads=1, max_position_embeddings=4096,
                         tie_word_embeddings=False)  # fmt: skip
    return LlamaForCausalLM(config).eval()


class DeviceClock:
    """Wall and CPU time spent inside `Scorer.nll` (the device's work: on a GPU, asynchronous kernels)."""

    def __init__(self, scorer: Scorer):
        self.wall = self.cpu = 0.0
        self._nll = scorer.nll
        scorer.nll = self

    def __call__(self, batch):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return self._nll(batch)
        finally:
            self.wall += time.perf_counter() - wall
            self.cpu += time.thread_time() - cpu


def run(args) -> dict:
    torch.set_num_threads(1)  # the scorer's CPU work then runs on the calling thread, where DeviceClock sees it
    lengths = paloma_like_lengths(args.tokens, args.median)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        tokens = token_cache(folder, lengths)
        documents = Documents(document_index(len(lengths)), tokens, prefix_id=0)
        sequence_lengths = documents.sequence_lengths
        todo = np.arange(len(lengths))
        budget = args.batch_rows * args.max_length
        scorer = Scorer(null_model(args.model).to(args.device), args.device)
        device_clock = DeviceClock(scorer)
        options = LoopOptions(flush_seconds=10.0, dtype="float32", progress=False, pad_id=0)
        total = share_window_tokens(sequence_lengths, todo, args.max_length)
        profile = cProfile.Profile() if args.profile else None
        load = os.getloadavg()
        wall, cpu = time.perf_counter(), time.process_time()
        with RecordWriter(folder / "out", 0, 1, 1) as writer:
            if profile:
                profile.enable()
            chunks = plan_chunks(sequence_lengths, todo, args.max_length, budget)
            stats = score_chunks(scorer, documents, chunks, writer, options, total)
            if profile:
                profile.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        records = load_records(folder / "out")
        assert len(records) == len(lengths) and sum(r["tokens"] for r in records) == int(lengths.sum())
    if profile:
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)
    host_wall, host_cpu = wall - device_clock.wall, cpu - device_clock.cpu
    return {
        "documents": len(lengths),
        "median_tokens": int(np.median(lengths)),
        "max_tokens": int(lengths.max()),
        "scored_tokens": stats["scored"],
        "forward_tokens": stats["forward"],
        "max_length": args.max_length,
        "batch_tokens": budget,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "scorer_wall_s": round(device_clock.wall, 2),
        "scorer_cpu_s": round(device_clock.cpu, 2),
        "host_wall_s": round(host_wall, 2),
        "host_cpu_s": round(host_cpu, 2),
        "tokens_per_host_cpu_s": round(stats["scored"] / host_cpu),
        "tokens_per_host_wall_s": round(stats["scored"] / host_wall),
        "tokens_per_s_wall": round(stats["scored"] / wall),
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "model": args.model,
        "device": args.device,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8_000_000)
    parser.add_argument("--median", type=int, default=300, help="median tokens of the short documents")
    parser.add_argument("--max-length", type=int, default=2048)
    parser.add_argument("--batch-rows", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", choices=("null", "llama"), default="null")
    parser.add_argument("--profile", action="store_true")
    result = run(parser.parse_args())
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
