"""Throughput of `paloma eval` against the model's own ceiling and lm-evaluation-harness, on this machine.

The data mimics Paloma's mix of document lengths: many short documents (tens to hundreds of tokens) and a
few very long ones (M2D2-style pseudo-documents of many windows). The same model, documents and max length
go through:

  ceiling  the model's forward plus log-probabilities on dense full-length rows, no Python overhead between
           batches (random tokens, [rows, L] per step): the most any evaluator could do with this model;
  paloma   `paloma.evaluate` end to end (reading, tokenizing, planning, scoring, writing records, results);
  harness  lm-evaluation-harness's HFLM.loglikelihood_rolling over the same texts (tokenizing included).

Usage: python benchmarks/eval_throughput.py [--max-length 512] [--short 1200] [--long 4] [--hidden 256]
Prints scored tokens per second for each, the ratios and paloma's padding efficiency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from fixtures import pydoc_paragraphs, write_release


def build(root: Path, args) -> tuple[Path, Path, list[str]]:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, PreTrainedTokenizerFast

    paragraphs = pydoc_paragraphs()
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(paragraphs, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|padding|>")
    model_dir = root / "model"
    tokenizer.save_pretrained(model_dir)
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden,
        num_hidden_layers=args.layers,
        num_attention_heads=args.hidden // 64,
        intermediate_size=4 * args.hidden,
        max_position_embeddings=args.max_length,
        eos_token_id=0,
        pad_token_id=1,
    )
    torch.manual_seed(0)
    GPTNeoXForCausalLM(config).save_pretrained(model_dir)

    rng = random.Random(0)
    short = [" ".join(rng.sample(paragraphs, rng.randint(1, 3))) for _ in range(args.short)]
    long = [" ".join(rng.sample(paragraphs, 150)) for _ in range(args.long)]
    data = write_release(root / "data", {("c4_100_domains", "short"): short, ("m2d2_s2orc_unsplit", "long"): long})
    return model_dir, data, short + long


def ceiling(model_dir: Path, max_length: int, rows: int, seconds: float) -> float:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    ids = torch.randint(2, model.config.vocab_size, (rows, max_length + 1))
    tokens, start = 0, None
    with torch.inference_mode():
        for step in range(10_000):
            if step == 1:
                tokens, start = 0, time.perf_counter()  # the first step warms up
            logp = model(ids[:, :-1]).logits.float().log_softmax(-1)
            logp.gather(-1, ids[:, 1:, None]).sum()
            tokens += rows * max_length
            if start and time.perf_counter() - start > seconds:
                break
    return tokens / (time.perf_counter() - start)


def run_paloma(model_dir: Path, data: Path, max_length: int, batch_tokens: int, out: Path) -> dict:
    from paloma.eval.data import DataSpec
    from paloma.evaluate import EvalConfig, evaluate

    start = time.perf_counter()
    results = evaluate(
        EvalConfig(
            model=str(model_dir),
            data=DataSpec(path=str(data)),
            output=out,
            max_length=max_length,
            batch_tokens=batch_tokens,
            cache_dir=None,
            progress=False,
        )
    )
    wall = time.perf_counter() - start
    return {
        "wall_seconds": wall,
        "tokens_per_second_end_to_end": results["speed"]["scored_tokens"] / wall,
        **results["speed"],
    }


def run_harness(model_dir: Path, texts: list[str], max_length: int, batch_size: int) -> dict:
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=str(model_dir), max_length=max_length, batch_size=batch_size, device="cpu")
    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    start = time.perf_counter()
    lm.loglikelihood_rolling(requests, disable_tqdm=True)
    wall = time.perf_counter() - start
    scored = sum(len(lm.tok_encode(t)) for t in texts)
    return {"wall_seconds": wall, "scored_tokens": scored, "tokens_per_second": scored / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--short", type=int, default=1200, help="short documents (1-3 paragraphs)")
    parser.add_argument("--long", type=int, default=4, help="long documents (150 paragraphs)")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--rows", type=int, default=8, help="rows per batch (harness batch size, ceiling rows)")
    parser.add_argument("--skip-harness", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir, data, texts = build(root, args)
        figures = {
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads",
            "args": vars(args),
        }
        figures["ceiling_tokens_per_second"] = ceiling(model_dir, args.max_length, args.rows, seconds=20)
        figures["paloma"] = run_paloma(model_dir, data, args.max_length, args.rows * args.max_length, root / "out")
        if not args.skip_harness:
            figures["harness"] = run_harness(model_dir, texts, args.max_length, args.rows)
    p = figures["paloma"]
    print(json.dumps(figures, indent=1))
    print(
        f"\nceiling {figures['ceiling_tokens_per_second']:,.0f} tok/s | paloma {p['tokens_per_second']:,.0f} tok/s "
        f"scoring, {p['tokens_per_second_end_to_end']:,.0f} tok/s end to end "
        f"(padding efficiency {p['padding_efficiency']:.3f})"
    )
    print(
        f"paloma / ceiling: {p['tokens_per_second'] / figures['ceiling_tokens_per_second']:.2f} scoring, "
        f"{p['tokens_per_second_end_to_end'] / figures['ceiling_tokens_per_second']:.2f} end to end"
    )
    if "harness" in figures:
        h = figures["harness"]
        print(
            f"harness {h['tokens_per_second']:,.0f} tok/s; paloma end to end / harness: "
            f"{p['tokens_per_second_end_to_end'] / h['tokens_per_second']:.2f}"
        )


if __name__ == "__main__":
    main()
