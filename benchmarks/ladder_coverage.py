"""Held-out error and interval coverage of ladder fits on simulated noisy ladders of the paper's design.

The ladder is OLMo-ladder's (the paper's §7): 190M, 370M, 760M and 1.3B parameters at 20, 40, 100 and 200
tokens per parameter, 16 runs. Each replicate draws every run's loss as Chinchilla's law times
exp(ε), ε ~ N(0, noise²), fits the law with each objective (`--objective l2` and `huber`), and predicts the
7B-4T and 13B-5T runs, whose "actual" losses carry their own draw of the same noise (a held-out run scatters
about the law as a ladder run does). Reported per objective, target and noise: the median and 90th percentile
of |predicted / true law − 1|, and the share of 95% prediction intervals holding the held-out run.

    python benchmarks/ladder_coverage.py [--replicates 200] [--noise 0.005 0.01 0.02]

Both objectives see the same draws. About 0.1 CPU s a fit; 200 replicates × 3 noises × 2 objectives take a
few minutes on one core.
"""

from __future__ import annotations

import argparse
import math
import os
import time

import numpy as np

from paloma.analysis.ladder import OBJECTIVES, LadderPoint, ScalingLaw, fit_ladder

CHINCHILLA = ScalingLaw(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)
SIZES = np.repeat([190e6, 370e6, 760e6, 1.3e9], 4)
TOKENS = SIZES * np.tile([20, 40, 100, 200], 4)
TARGETS = {"7B-4T": (6.887e9, 3.945e12), "13B-5T": (13.2e9, 5.0e12)}
LEVEL = 0.95


def replicate(rng: np.random.Generator, noise: float) -> tuple[list[LadderPoint], list[LadderPoint]]:
    """One noisy ladder and its two held-out runs."""
    observed = CHINCHILLA(SIZES, TOKENS) * np.exp(rng.normal(0.0, noise, len(SIZES)))
    ladder = [LadderPoint(f"m{i}", SIZES[i], TOKENS[i], {"t": float(observed[i])}) for i in range(len(SIZES))]
    held = [
        LadderPoint(name, n, d, {"t": float(CHINCHILLA(n, d)) * math.exp(rng.normal(0.0, noise))})
        for name, (n, d) in TARGETS.items()
    ]
    return ladder, held


def cell(noise: float, replicates: int, seed: int) -> dict[str, dict[str, tuple[float, float, float]]]:
    """{objective: {target: (median |error|, 90th percentile, coverage)}} at one noise level."""
    errors = {k: {t: [] for t in TARGETS} for k in OBJECTIVES}
    inside = {k: {t: [] for t in TARGETS} for k in OBJECTIVES}
    rng = np.random.default_rng(seed)
    for _ in range(replicates):
        ladder, held = replicate(rng, noise)
        for kind in OBJECTIVES:
            fit = fit_ladder(ladder, loo=False, holdout=held, level=LEVEL, kind=kind)["fits"][0]
            for row in fit["holdout"]:
                truth = float(CHINCHILLA(row["n"], row["d"]))
                errors[kind][row["name"]].append(abs(row["predicted"] / truth - 1.0))
                inside[kind][row["name"]].append(bool(row["inside"]))
    return {
        k: {
            t: (float(np.median(errors[k][t])), float(np.percentile(errors[k][t], 90)), float(np.mean(inside[k][t])))
            for t in TARGETS
        }
        for k in OBJECTIVES
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--noise", type=float, nargs="+", default=[0.005, 0.01, 0.02])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"load: {os.getloadavg()[0]:.1f}; {args.replicates} replicates per cell; {LEVEL:.0%} prediction intervals")
    print("| noise | objective | target | median abs. error | 90th pct. | coverage |")
    print("|---|---|---|---|---|---|")
    started = time.process_time()
    for i, noise in enumerate(args.noise):
        for kind, per_target in cell(noise, args.replicates, args.seed + i).items():
            for target, (median, p90, coverage) in per_target.items():
                print(f"| {noise:.1%} | {kind} | {target} | {median:.2%} | {p90:.2%} | {coverage:.1%} |", flush=True)
    print(f"CPU seconds: {time.process_time() - started:.0f}; load: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
