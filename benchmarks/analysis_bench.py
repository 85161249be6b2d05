"""Time the analyses on Paloma-sized synthetic runs (run by hand: python benchmarks/analysis_bench.py).

Builds eval-like outputs over all 585 domains of the registry (DOCS documents per domain, the typical
count of a 100k-token domain), then times: reading records, `compare` with 1000 bootstrap replicates,
`rank-stability` for several submissions, a ladder fit of 15 runs with leave-one-out on every target, and
single fits on the paper's 16-run ladder. Each line gives wall and CPU seconds; the machine is shared, so the
load average is printed first. Peak memory is the process's maximum resident set size.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from paloma.analysis.compare import BootstrapConfig, compare_runs
from paloma.analysis.ladder import ScalingLaw, fit_law, fit_runs
from paloma.analysis.ranking import Entry, rank_stability
from paloma.analysis.runs import load_run
from paloma.io import write_json
from paloma.metrics import aggregate_records
from paloma.registry import load_registry


def write_run(folder: Path, pairs, docs: int, loss_shift: float, seed: int, model: dict) -> Path:
    rng = np.random.default_rng(seed)
    doc_rng = np.random.default_rng(0)  # same documents in every run
    records = []
    for source, domain in pairs:
        tokens = doc_rng.integers(50, 1500, docs)
        base = doc_rng.normal(3.0, 0.4, docs)
        nll = tokens * (base + loss_shift + rng.normal(0, 0.05, docs))
        records += [
            {
                "id": str(i),
                "source": source,
                "domain": domain,
                "tokens": int(t),
                "bytes": int(4 * t),
                "nll_sum": float(v),
            }
            for i, (t, v) in enumerate(zip(tokens, nll, strict=True))
        ]
    folder.mkdir(parents=True)
    write_json(
        folder / "results.json", {**aggregate_records(records), "protocol": {"fingerprint": "x"}, "model": model}
    )
    (folder / "records").mkdir()
    with open(folder / "records" / "part-0.jsonl", "w") as handle:
        handle.writelines(json.dumps(r) + "\n" for r in records)
    return folder


def timed(label: str, fn):
    start, cpu = time.perf_counter(), time.process_time()
    value = fn()
    print(f"{label}: {time.perf_counter() - start:.2f} s wall, {time.process_time() - cpu:.2f} s CPU")
    return value


def time_paper_ladder(fits: int = 100) -> None:
    """Single fits on the paper's ladder (190M-1.3B × 20-200 tokens per parameter), random laws, no noise."""
    n = np.repeat([190e6, 370e6, 760e6, 1.3e9], 4)
    d = n * np.tile([20, 40, 100, 200], 4)
    rng = np.random.default_rng(0)
    laws = [
        ScalingLaw(
            rng.uniform(0.5, 3),
            math.exp(rng.uniform(2, 9)),
            rng.uniform(0.1, 0.7),
            math.exp(rng.uniform(2, 9)),
            rng.uniform(0.1, 0.7),
        )
        for _ in range(fits)
    ]
    timed(f"{fits} fits on the paper's 16-run ladder", lambda: [fit_law(n, d, law(n, d)) for law in laws])


def time_comparisons(runs: list) -> None:
    timed("read records of one run", runs[0].documents)
    for run in runs[1:]:
        run.documents()
    timed("compare, 1000 replicates", lambda: compare_runs(runs[0], runs[1], BootstrapConfig(1000)))
    entries = [Entry.from_run(r) for r in runs]
    timed(f"rank-stability of {len(entries)} submissions, 1000 replicates", lambda: rank_stability(entries))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=200, help="documents per domain")
    parser.add_argument("--submissions", type=int, default=6)
    parser.add_argument("--ladder-only", action="store_true", help="time only the ladder fits (three variants)")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    time_paper_ladder()
    pairs = load_registry().domain_pairs()
    print(f"{len(pairs)} domains × {args.docs} documents = {len(pairs) * args.docs:,} documents per run")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        folders = [
            write_run(root / f"s{i}", pairs, args.docs, 0.01 * i, i, {"name_or_path": f"s{i}"})
            for i in range(0 if args.ladder_only else args.submissions)
        ]
        if not args.ladder_only:
            time_comparisons([load_run(f) for f in folders])
        law = ScalingLaw(1.69, 406.4, 0.34, 410.7, 0.28)
        ladder = []
        for i, n in enumerate([20e6, 60e6, 150e6, 300e6, 700e6]):
            for r in (5, 20, 60):
                shift = float(law(n, r * n)) - 3.0
                model = {"name_or_path": f"l{i}-{r}", "non_embedding_parameters": n, "training_tokens": r * n}
                ladder.append(load_run(write_run(root / f"l{i}-{r}", pairs, 20, shift, 100 + i, model)))
        if args.ladder_only:
            timed("ladder fit, 15 runs, 604 targets, no leave-one-out", lambda: fit_runs(ladder, loo=False))
            timed("ladder fit, 15 runs, 604 targets, leave-one-out, 2 processes", lambda: fit_runs(ladder, jobs=2))
        fits = timed("ladder fit, 15 runs, 604 targets, with leave-one-out", lambda: fit_runs(ladder))
        errors = [f["loo_mean_abs_rel_error"] for f in fits["fits"]]
        print(f"  median LOO mean |rel error| {np.median(errors):.2e}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
