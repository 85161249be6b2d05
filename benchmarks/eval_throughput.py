"""Throughput of `paloma eval` against the model's dense ceiling and lm-evaluation-harness, on this machine.

The data mimics Paloma's mix of document lengths: many short documents (tens to hundreds of tokens), some
medium ones and one very long M2D2-style pseudo-document of many windows. Models are GPT-NeoX architectures
with a 50,304-entry vocabulary (GPT-NeoX's embedding size; the trained tokenizer may be smaller): a small one
whose output layer dominates (4 × 256) and one whose body dominates (12 × 768, like pythia-160m). For each model,
in the same run:

  ceiling  the model's own forward with logits on dense, full [rows, L] inputs (random tokens), no Python
           between steps: what any evaluator pays at least per forward token;
  paloma   `python -m paloma eval` as a whole process (imports, reading, tokenizing into an empty token cache,
           planning, loading, scoring, writing records and results), timed from outside;
  harness  lm-evaluation-harness's HFLM.loglikelihood_rolling as a whole process (same model, texts, L, rows).

Reported: whole-process scored tokens/s and their ratio to the ceiling, paloma's padding fraction (padding
only) and the protocol's overlap fraction (right-aligned windows re-reading context) apart, the ratio of the
harness's wall time to paloma's, CPU seconds of each process, and the load average.

Usage: python benchmarks/eval_throughput.py [--models small,body] [--max-length 512] [--short 600]
       [--medium 90] [--long-tokens 53000] [--skip-harness]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from fixtures import pydoc_paragraphs, write_release  # noqa: E402

MODELS = {"small": (4, 256), "body": (12, 768), "1b": (16, 2048)}  # layers, hidden (1b: pythia-1b's shape)
VOCAB = 50304

HARNESS = """
import sys, json, time
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
model, texts_file, max_length, rows, device, dtype = sys.argv[1:3] + [int(a) for a in sys.argv[3:5]] + sys.argv[5:7]
texts = json.load(open(texts_file))
lm = HFLM(pretrained=model, max_length=max_length, batch_size=rows, device=device, dtype=dtype)
requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
lm.loglikelihood_rolling(requests, disable_tqdm=True)
print(json.dumps({"scored_tokens": sum(len(lm.tok_encode(t)) for t in texts)}))
"""


def build_tokenizer(root: Path, vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(pydoc_paragraphs(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|padding|>")
    tokenizer.save_pretrained(root / "tokenizer")
    return tokenizer


def build_model(root: Path, name: str, tokenizer, max_length: int) -> Path:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    layers, hidden = MODELS[name]
    config = GPTNeoXConfig(
        vocab_size=VOCAB,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        intermediate_size=4 * hidden,
        max_position_embeddings=max_length,
        eos_token_id=0,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    folder = root / name
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_data(root: Path, tokenizer, args) -> tuple[Path, list[str]]:
    paragraphs = pydoc_paragraphs()
    rng = random.Random(0)
    short = [" ".join(rng.sample(paragraphs, rng.randint(1, 3))) for _ in range(args.short)]
    medium = [" ".join(rng.sample(paragraphs, rng.randint(10, 25))) for _ in range(args.medium)]
    long_parts, tokens = [], 0
    while tokens < args.long_tokens:
        part = rng.choice(paragraphs)
        long_parts.append(part)
        tokens += len(tokenizer(part, add_special_tokens=False)["input_ids"]) + 1
    long = [" ".join(long_parts)] if args.long_tokens else []
    data = write_release(
        root / "data",
        {("c4_100_domains", "short"): short, ("dolma_v1_5", "medium"): medium, ("m2d2_s2orc_unsplit", "long"): long},
    )
    return data, short + medium + long


def ceiling(model_dir: Path, max_length: int, rows: int, seconds: float, device: str, dtype: str) -> dict:
    """Forward tokens per second (wall and CPU) of the model's own dense forward, logits for every position."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
    ids = torch.randint(2, model.config.vocab_size, (rows, max_length), device=device)
    tokens, start, cpu_start = 0, None, None
    with torch.inference_mode():
        for step in range(10_000):
            if step == 1:  # the first step warms up
                tokens, start, cpu_start = 0, time.perf_counter(), time.process_time()
            model(ids, use_cache=False).logits.float().sum().item()  # .item(): wait for the device
            tokens += rows * max_length
            if start and time.perf_counter() - start > seconds:
                break
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"tokens_per_second": tokens / wall, "tokens_per_cpu_second": tokens / cpu}


def timed(argv: list[str], env: dict | None = None) -> tuple[float, float, subprocess.CompletedProcess]:
    """(wall seconds, CPU seconds of the child, process) of a whole subprocess."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])} … failed:\n{proc.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), proc


def run_paloma(model_dir: Path, data: Path, root: Path, args, tag: str = "", extra: tuple = ()) -> dict:
    out, cache = root / f"out-{model_dir.name}{tag}", root / f"cache-{model_dir.name}{tag}"  # an empty token cache
    budget = (
        []
        if args.batch_tokens == "auto"
        else ["--batch-tokens", str(int(args.batch_tokens or 0) or args.rows * args.max_length)]
    )
    argv = [
        sys.executable,
        "-m",
        "paloma",
        "eval",
        "--model",
        str(model_dir),
        "--data",
        str(data),
        "--max-length",
        str(args.max_length),
        *budget,
        "--output",
        str(out),
        "--cache-dir",
        str(cache),
        "--no-progress",
        "--registry",
        "none",
        "--device",
        args.device,
        "--dtype",
        args.dtype,
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PALOMA_CACHE": str(root / "paloma-cache")}
    wall, cpu, _ = timed(argv, env)
    speed = json.loads((out / "results.json").read_text())["speed"]
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "whole_process_tokens_per_second": speed["scored_tokens"] / wall,
        "output": str(out),
        **speed,
    }


def same_records(a: str, b: str) -> float:
    """The largest relative difference of per-document NLLs between two runs' records."""
    from paloma.eval.records import load_records

    left = {r["key"]: r["nll_sum"] for r in load_records(Path(a))}
    right = {r["key"]: r["nll_sum"] for r in load_records(Path(b))}
    assert left.keys() == right.keys(), "the two runs scored different documents"
    return max(abs(left[k] - right[k]) / max(abs(left[k]), 1e-12) for k in left)


def forced_oom_split(model_dir: Path, data: Path, root: Path, args, reference: str) -> dict:
    """Score with the device memory capped so the first batches cannot fit: they are split, numbers unchanged."""
    from paloma.eval.data import DataSpec
    from paloma.eval.evaluate import EvalConfig, evaluate

    if args.device.startswith("cuda"):
        torch.cuda.set_per_process_memory_fraction(args.oom_memory_fraction)
    config = EvalConfig(
        model=str(model_dir),
        data=DataSpec(path=str(data)),
        output=root / "out-oom",
        max_length=args.max_length,
        batch_tokens=args.oom_batch_rows * args.max_length,
        dtype=args.dtype,
        device=args.device,
        cache_dir=None,
        progress=False,
        registry="none",
    )
    results = evaluate(config)
    if args.device.startswith("cuda"):
        torch.cuda.set_per_process_memory_fraction(1.0)
    return {
        "oom_splits": results["speed"]["oom_splits"],
        "max_relative_difference": same_records(reference, str(root / "out-oom")),
        "batch_tokens": config.batch_tokens,
    }


def run_harness(model_dir: Path, texts: list[str], root: Path, args) -> dict:
    texts_file = root / "texts.json"
    texts_file.write_text(json.dumps(texts))
    argv = [
        sys.executable,
        "-c",
        HARNESS,
        str(model_dir),
        str(texts_file),
        str(args.max_length),
        str(args.rows),
        args.device,
        args.dtype,
    ]
    wall, cpu, proc = timed(argv, {**os.environ, "HF_HUB_OFFLINE": "1"})
    scored = json.loads(proc.stdout.strip().splitlines()[-1])["scored_tokens"]
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "scored_tokens": scored,
        "whole_process_tokens_per_second": scored / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="small,body", help="comma-separated: small (4×256), body (12×768)")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--short", type=int, default=600, help="short documents (1-3 paragraphs)")
    parser.add_argument("--medium", type=int, default=90, help="medium documents (10-25 paragraphs)")
    parser.add_argument("--long-tokens", type=int, default=53_000, help="tokens of the one long document")
    parser.add_argument("--tokenizer-vocab", type=int, default=8192)
    parser.add_argument("--rows", type=int, default=8, help="rows of L per batch (all three contenders)")
    parser.add_argument("--ceiling-seconds", type=float, default=30)
    parser.add_argument("--skip-harness", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch-tokens", help="paloma's budget: 'auto' (from free memory) or tokens; default rows × L")
    parser.add_argument("--device-map", help="also run with --model-args device_map=VALUE (e.g. auto) and compare")
    parser.add_argument("--oom-check", action="store_true", help="also force the out-of-memory split once")
    parser.add_argument("--oom-batch-rows", type=int, default=256, help="rows of L in the batch that must not fit")
    parser.add_argument("--oom-memory-fraction", type=float, default=0.08, help="device memory cap for that run")
    args = parser.parse_args()
    figures = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "load_before": os.getloadavg(),
        "args": vars(args),
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokenizer = build_tokenizer(root, args.tokenizer_vocab)
        data, texts = build_data(root, tokenizer, args)
        for name in args.models.split(","):
            model_dir = build_model(root, name, tokenizer, args.max_length)
            entry = {
                "ceiling": ceiling(model_dir, args.max_length, args.rows, args.ceiling_seconds, args.device, args.dtype)
            }
            entry["paloma"] = run_paloma(model_dir, data, root, args)
            if not args.skip_harness:
                entry["harness"] = run_harness(model_dir, texts, root, args)
            if args.device_map:
                spread = run_paloma(
                    model_dir, data, root, args, "-spread", ("--model-args", f"device_map={args.device_map}")
                )
                entry["device_map"] = {
                    "value": args.device_map,
                    "tokens_per_second": spread["tokens_per_second"],
                    "max_relative_difference": same_records(entry["paloma"]["output"], spread["output"]),
                }
            if args.oom_check:
                entry["oom_split"] = forced_oom_split(model_dir, data, root, args, entry["paloma"]["output"])
            figures["models"][name] = entry
            report(name, entry)
    figures["load_after"] = os.getloadavg()
    print(json.dumps(figures, indent=1))


def report(name: str, entry: dict) -> None:
    p, c = entry["paloma"], entry["ceiling"]
    per_cpu = p["scored_tokens"] / p["cpu_seconds"]
    print(
        f"\n{name} ({'×'.join(map(str, MODELS[name]))}, vocab {VOCAB}): ceiling {c['tokens_per_second']:,.0f} tok/s "
        f"({c['tokens_per_cpu_second']:,.0f} per CPU-s); paloma whole process "
        f"{p['whole_process_tokens_per_second']:,.0f} scored tok/s = "
        f"{p['whole_process_tokens_per_second'] / c['tokens_per_second']:.3f} of the ceiling, {per_cpu:,.0f} per CPU-s "
        f"= {per_cpu / c['tokens_per_cpu_second']:.3f} ({p['scored_tokens']:,} tokens, {p['wall_seconds']:.1f} s wall, "
        f"{p['cpu_seconds']:.1f} CPU-s; scoring loop {p['tokens_per_second']:,.0f} tok/s); padding fraction "
        f"{p['padding_fraction']:.4f}, protocol overlap {p['overlap_fraction']:.4f}"
    )
    if p.get("device_peak_memory"):
        print(
            f"  batch budget {p['batch_tokens']:,} tokens, device peak memory {p['device_peak_memory'] / 2**30:.1f} GiB"
        )
    if "device_map" in entry:
        d = entry["device_map"]
        print(
            f"  device_map={d['value']}: {d['tokens_per_second']:,.0f} tok/s, records equal to "
            f"{d['max_relative_difference']:.1e} relative"
        )
    if "oom_split" in entry:
        o = entry["oom_split"]
        print(
            f"  forced out-of-memory: {o['oom_splits']} splits, records equal to {o['max_relative_difference']:.1e} "
            "relative"
        )
    if "harness" in entry:
        h = entry["harness"]
        print(
            f"  harness whole process {h['whole_process_tokens_per_second']:,.0f} tok/s ({h['wall_seconds']:.1f} s "
            f"wall, {h['cpu_seconds']:.1f} CPU-s): paloma is {h['wall_seconds'] / p['wall_seconds']:.2f}× faster "
            f"({h['cpu_seconds'] / p['cpu_seconds']:.2f}× in CPU-s)"
        )


if __name__ == "__main__":
    main()
