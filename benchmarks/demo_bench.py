"""Time `paloma demo` from scratch, per stage, in wall and CPU seconds (run by hand; see docs/performance.md).

    python benchmarks/demo_bench.py --quick            # the --quick ladder
    python benchmarks/demo_bench.py                    # the full ladder
    python benchmarks/demo_bench.py --quick --threads 2  # as on a 2-core machine

The load average is recorded before and after: on a shared machine wall time grows with the load, while
CPU time (all threads of the process) stays close to what a dedicated machine would spend.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--output", type=Path, help="demo folder (default: a fresh temporary folder)")
    args = parser.parse_args()

    import torch

    from paloma.demo.pipeline import run_demo

    if args.threads:
        torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        summary = run_demo(args.output or Path(tmp) / "demo", quick=args.quick, progress=False)
    load_after = os.getloadavg()
    record = {
        "mode": summary["mode"],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch threads "
        f"{torch.get_num_threads()}",
        "load_average_before": load_before,
        "load_average_after": load_after,
        "wall_seconds": summary["seconds"],
        "cpu_seconds": summary["cpu_seconds"],
        "stages": summary["timings"],
    }
    print(json.dumps(record, indent=1))
    print("\n| stage | wall s | CPU s |\n| --- | ---: | ---: |")
    for stage, t in summary["timings"].items():
        print(f"| {stage} | {t['wall']:.1f} | {t['cpu']:.1f} |")
    print(f"| total | {summary['seconds']:.1f} | {summary['cpu_seconds']:.1f} |")


if __name__ == "__main__":
    main()
