"""What `paloma.Evaluator` costs inside a training loop, on this machine.

A 4 × 256 GPT-NeoX with a 50,304-entry vocabulary (the output layer dominates, the hardest case for an
evaluator's own overhead) scores a subset of about `--tokens` tokens (`max_tokens_per_domain` over three
domains of Paloma-like document lengths). In the same run, alternating call by call:

  evaluate  `evaluator.evaluate(model)`: scored tokens per second (wall and CPU) of each call;
  dense     the model's own forward with logits for every position, on the subset's token stream packed into
            full rows of L, the same tokens per batch as the evaluator's budget: forward tokens per second.

Reported: each call's ratio evaluate/dense (goal ≥ 0.95), the one-time construction (reading, tokenizing into
an empty token cache, then again with the cache filled), the first call apart (it also plans the share and
allocates the scorer's logits buffer), the memory the evaluator holds between calls (its arrays, and the
process's resident-set growth over construction and first call), and the load average.

Usage: python benchmarks/evaluator_loop.py [--tokens 100000] [--max-length 512] [--calls 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))
from eval_throughput import build_model, build_tokenizer  # noqa: E402
from fixtures import pydoc_paragraphs, write_release  # noqa: E402

from paloma import Evaluator  # noqa: E402


def resident_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build_data(root: Path, tokens: int) -> Path:
    """Three domains, each with more than a third of `tokens`: short, medium and long documents."""
    paragraphs, rng = pydoc_paragraphs(), random.Random(0)
    per_domain = tokens // 3 * 2  # words ≈ tokens here; twice the cap, so the subset is a real selection

    def documents(low: int, high: int) -> list[str]:
        out, words = [], 0
        while words < per_domain:
            text = " ".join(rng.sample(paragraphs, rng.randint(low, high)))
            out.append(text)
            words += len(text.split())
        return out

    domains = {("c4_100_domains", "short"): documents(1, 3), ("dolma_v1_5", "medium"): documents(10, 25),
               ("m2d2_s2orc_unsplit", "long"): documents(60, 120)}  # fmt: skip
    return write_release(root / "data", domains)


def held_bytes(evaluator: Evaluator) -> int:
    """Bytes of the arrays an evaluator keeps between calls: index, tokens, planned windows, key digests."""
    index, tokens = evaluator.documents.index, evaluator.documents.tokens
    arrays = [getattr(index, f) for f in ("domain", "id_offsets", "bytes", "chars", "words", "digest", "key_hash",
                                          "repeat")] + [tokens.ids, tokens.offsets, evaluator.lengths]  # fmt: skip
    for chunks, _ in evaluator._plans.values():
        for chunk in chunks:
            w, s = chunk.windows, chunk.schedule
            arrays += [chunk.docs, w.doc, w.start, w.length, w.scored, s.order, s.bounds, s.widths]
    if evaluator._digests is not None:
        arrays.append(evaluator._digests)
    return sum(a.nbytes for a in arrays) + len(index.id_blob)


def dense(model, stream: np.ndarray, max_length: int, rows: int) -> tuple[int, float, float]:
    """The model's own forward, logits for every position, over the stream in full rows of L."""
    usable = len(stream) // max_length * max_length
    ids = torch.from_numpy(stream[:usable].astype(np.int64)).view(-1, max_length)
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for first in range(0, len(ids), rows):
            model(ids[first : first + rows], use_cache=False).logits.sum().item()
    return usable, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=100_000)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--calls", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokenizer = build_tokenizer(root, 8192)
        model_dir = build_model(root, "small", tokenizer, args.max_length)
        data = build_data(root, args.tokens)
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model_dir)
        model.train()  # as in a training loop
        options = dict(max_length=args.max_length, max_tokens_per_domain=args.tokens // 3, registry="none",
                       cache_dir=root / "cache")  # fmt: skip
        before, start = resident_bytes(), time.perf_counter()
        evaluator = Evaluator(data, tokenizer, **options)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        Evaluator(data, tokenizer, **options)
        warm = time.perf_counter() - start
        built = resident_bytes()
        budget = 8192  # the evaluator's CPU budget (paloma.eval.plan.CPU_BATCH_TOKENS)
        stream = np.asarray(evaluator.documents.tokens.ids)
        first = time.perf_counter()
        results = evaluator.evaluate(model)  # plans this process's share and keeps the plan
        first = time.perf_counter() - first
        after_first = resident_bytes()  # before any dense forward, whose logits would dominate the process
        calls = []
        for call in range(args.calls):
            forward, dense_wall, dense_cpu = dense(model, stream, args.max_length, budget // args.max_length)
            wall, cpu = time.perf_counter(), time.process_time()
            results = evaluator.evaluate(model)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            scored = evaluator.scored_tokens
            calls.append({
                "call": call + 2, "scored_tokens": scored, "evaluate_tok_s": scored / wall,
                "evaluate_tok_cpu_s": scored / cpu, "dense_tok_s": forward / dense_wall,
                "dense_tok_cpu_s": forward / dense_cpu, "ratio_wall": (scored / wall) / (forward / dense_wall),
                "ratio_cpu": (scored / cpu) / (forward / dense_cpu), "evaluate_s": wall, "dense_s": dense_wall,
            })  # fmt: skip
            print(json.dumps(calls[-1]), flush=True)
        report = {
            "documents": len(evaluator),
            "scored_tokens": evaluator.scored_tokens,
            "subset": evaluator.protocol.subset,
            # what the evaluator's forwards compute: padding, and the right-aligned windows' re-read context
            "forward_tokens": sum(c.schedule.forward_tokens() for cs, _ in evaluator._plans.values() for c in cs),
            "window_tokens": sum(int(c.windows.length.sum()) for cs, _ in evaluator._plans.values() for c in cs),
            "construction_cold_s": cold,
            "construction_warm_cache_s": warm,
            "held_array_bytes": held_bytes(evaluator),
            "first_call_s": first,
            "resident_growth_construction_bytes": built - before,
            "resident_growth_first_call_bytes": after_first - built,
            "suite_bpb": results["suite"]["macro_bpb"],
            "still_training_mode": model.training,
            "load_average": os.getloadavg(),
            "torch_threads": torch.get_num_threads(),
            "calls": calls,
        }
        print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
