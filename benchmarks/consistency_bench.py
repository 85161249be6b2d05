"""Time the cross-submission checks (one entry per model, unique names) for N submissions × 546 domains.

The submissions are `site_bench.py`'s generated ones (distinct models), held in memory; one exact copy of a
submission is added so the check has something to find. Prints CPU seconds of `check_consistency` alone:

    PYTHONPATH=.:benchmarks python benchmarks/consistency_bench.py --submissions 1000
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

from site_bench import domain_data, make_submission

from paloma.registry import load_registry
from paloma.submissions.schema import Submission
from paloma.submissions.validate import Loaded, check_consistency


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=1000)
    args = parser.parse_args()
    registry = load_registry("paloma")
    rng = random.Random(1234)
    shared = domain_data(registry, rng)
    raw = [make_submission(i, registry, shared, rng) for i in range(args.submissions)]
    copy = {**raw[0], "name": "copycat", "model": {**raw[0]["model"], "display_name": "Copycat", "model_id": "c/c"}}
    loaded = [Loaded(Path(d["name"]) / "submission.json", Submission.model_validate(d)) for d in [*raw, copy]]
    started = time.process_time()
    problems = check_consistency(loaded)
    seconds = time.process_time() - started
    domains = sum(len(s.domains) for s in registry.public())
    first = problems[0] if problems else ""
    print(f"{len(loaded)} submissions × {domains} domains: check_consistency {seconds:.2f} CPU-s, {first}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
