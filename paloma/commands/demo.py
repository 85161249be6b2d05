"""`paloma demo`: run the whole benchmark offline on this machine (see paloma.demo.pipeline)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the whole benchmark offline: demo data, a ladder of small models, eval, submissions, site",
        description="Build the demo suite from text every installation has, decontaminate its training part, "
        "train a ladder of small baselines, evaluate each per domain, fit a scaling law, make and validate "
        "submissions and build the leaderboard site (release paloma-demo). No GPU, account or network. "
        "Rerunning reuses finished stages.",
    )
    parser.add_argument("--output", type=Path, default=Path("paloma-demo"), help="folder (default: %(default)s)")
    parser.add_argument("--quick", action="store_true", help="a smaller ladder: about 2 minutes on 2 CPU cores")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (stage lines still print)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from paloma.demo.pipeline import run_demo
    from paloma.io import check_output_dir

    check_output_dir(args.output)
    run_demo(args.output, quick=args.quick, progress=not args.no_progress)
    return 0
