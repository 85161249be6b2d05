"""Peak memory of one `paloma eval` process against corpus size, extrapolated to a full Paloma split.

Synthetic corpora of growing size with Paloma's shape (about 31 tokens a document on average, lognormal
lengths with a long tail, 4 sources × 5 domains) are scored end to end by a tiny model (so the model's own
memory is negligible and what grows is the evaluator's): reading, tokenizing into an empty token cache,
planning, scoring, writing records, aggregating with bootstrap intervals. Each run is its own process; its
peak resident set size (ru_maxrss) is fitted as a + b · documents, and the fit is evaluated at one Paloma
split: 2M documents, 62M tokens.

Planning and scoring work on one chunk of `CHUNK_DOCUMENTS` (65,536) documents at a time, so what a chunk
holds grows with the corpus only up to that size: a fit over corpora smaller than one chunk measures the
chunk's growth and extrapolates it to 2M documents, which overstates the split's peak several-fold. The
default sizes reach five chunks and the extrapolation uses the sizes of at least one chunk (the fit over all
sizes is printed too).

Usage: python benchmarks/eval_memory.py [--sizes 20000,80000,160000,320000] [--bootstrap 100]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from fixtures import build_model, pydoc_paragraphs, train_tokenizer  # noqa: E402

from paloma.eval.plan import CHUNK_DOCUMENTS  # noqa: E402

SPLIT_DOCUMENTS, SPLIT_TOKENS = 2_000_000, 62_000_000


def write_corpus(folder: Path, documents: int, words: list[str], seed: int = 0) -> None:
    """`documents` documents over 4 sources × 5 domains; lognormal lengths (mean ~6.5 words, ~32 tokens, long tail)."""
    rng = random.Random(seed)
    lengths = np.minimum(np.random.default_rng(seed).lognormal(1.2, 1.0, documents).astype(int) + 1, 20_000)
    handles = {}
    for i, n in enumerate(lengths.tolist()):
        source, domain = f"source{i % 4}", f"domain{(i // 4) % 5}"
        if (source, domain) not in handles:
            path = folder / source / "test" / f"test_{domain}.jsonl.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            handles[(source, domain)] = gzip.open(path, "wt", encoding="utf-8", compresslevel=1)  # noqa: SIM115
        text = " ".join(rng.choices(words, k=n))
        handles[(source, domain)].write(json.dumps({"text": text, "id": str(i), "subdomain": domain}) + "\n")
    for handle in handles.values():
        handle.close()


def measure(model: Path, data: Path, work: Path, bootstrap: int) -> dict:
    """Run one eval as a child process; return its peak RSS, wall and CPU time and token count."""
    out = work / "out"
    argv = [
        sys.executable,
        "-m",
        "paloma",
        "eval",
        "--model",
        str(model),
        "--data",
        str(data),
        "--max-length",
        "2048",
        "--batch-tokens",
        "16384",
        "--output",
        str(out),
        "--cache-dir",
        str(work / "cache"),
        "--no-progress",
        "--registry",
        "none",
        "--bootstrap",
        str(bootstrap),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PALOMA_CACHE": str(work / "paloma-cache")}
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"eval failed: {proc.stderr.read()[-2000:]}")
    results = json.loads((out / "results.json").read_text())
    return {
        "documents": results["suite"]["documents"],
        "tokens": results["suite"]["tokens"],
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "wall_seconds": wall,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="20000,80000,160000,320000")
    parser.add_argument("--bootstrap", type=int, default=100)
    args = parser.parse_args()
    words = sorted({w for p in pydoc_paragraphs() for w in p.split() if w.isalpha()})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tokenizer = train_tokenizer(root / "model")
        build_model("llama", len(tokenizer), root / "model", max_positions=2048)
        for size in map(int, args.sizes.split(",")):
            work = root / f"run-{size}"
            write_corpus(work / "data", size, words)
            row = measure(root / "model", work / "data", work, args.bootstrap)
            rows.append(row)
            print(
                f"{row['documents']:>9,} documents {row['tokens']:>11,} tokens: peak RSS {row['peak_rss_mb']:8.1f} MB, "
                f"{row['wall_seconds']:6.1f} s wall, {row['cpu_seconds']:6.1f} CPU-s",
                flush=True,
            )
    docs = np.array([r["documents"] for r in rows], dtype=float)
    tokens = np.array([r["tokens"] for r in rows], dtype=float)
    rss = np.array([r["peak_rss_mb"] for r in rows])
    chunked = docs >= CHUNK_DOCUMENTS
    if chunked.sum() < 2:
        print(f"(fewer than two sizes of at least {CHUNK_DOCUMENTS:,} documents: the fit uses every size)")
        chunked[:] = True
    extrapolated = {}
    for label, use in (("sizes of one chunk or more", chunked), ("all sizes", np.ones_like(chunked))):
        slope, intercept = np.polyfit(docs[use], rss[use], 1)
        per_token, token_intercept = np.polyfit(tokens[use], rss[use], 1)
        at_split = intercept + slope * SPLIT_DOCUMENTS
        by_tokens = token_intercept + per_token * SPLIT_TOKENS
        extrapolated[label] = {"documents": at_split, "tokens": by_tokens}
        print(
            f"\nfit over {label}: {intercept:.0f} MB + {slope * 1e6:.1f} MB per million documents "
            f"({slope * 2**20:.0f} bytes a document); {per_token * 1e6:.2f} MB per million tokens\n"
            f"  extrapolated to one Paloma split: {at_split:,.0f} MB (by documents), {by_tokens:,.0f} MB (by tokens)"
        )
    print(f"target 1,536 MB; load average {os.getloadavg()[0]:.1f}")
    print(json.dumps({"runs": rows, "extrapolated_mb": extrapolated}, indent=1))


if __name__ == "__main__":
    main()
