"""`paloma rank-stability RUN…`: how often adjacent leaderboard entries swap under bootstrap resampling."""

from __future__ import annotations

import argparse
from pathlib import Path

from paloma.analysis.ranking import METRICS, Entry, rank_stability
from paloma.analysis.runs import load_run
from paloma.io import write_json
from paloma.registry import load_registry
from paloma.table import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rank-stability",
        help="how often leaderboard entries swap places when documents and domains are resampled",
        description="Rank eval outputs by a suite metric (lower is better) and estimate, by a paired bootstrap "
        "over documents within domains and domains within sources, each entry's rank interval and how often "
        "each pair's order flips.",
    )
    parser.add_argument("runs", nargs="+", type=Path, help="eval output folders (or results.json files)")
    parser.add_argument("--metric", choices=METRICS, default="macro_ppl", help="ranking metric (default macro_ppl)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--output", type=Path, help="write the result (with every pair) as JSON to this file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    runs = [load_run(p) for p in args.runs]
    names = [r.name for r in runs]
    entries = [Entry.from_run(r, r.name if names.count(r.name) == 1 else str(r.path)) for r in runs]
    result = rank_stability(entries, args.metric, args.bootstrap, args.seed, registry=load_registry())
    print(
        f"{result['metric']} over {result['domains']} domains of {result['sources']} sources; "
        f"{result['replicates']} replicates resampling {result['resampled']}"
    )
    rows = [
        [
            r["rank"],
            r["name"],
            r["value"],
            f"{r['rank_interval'][0]}–{r['rank_interval'][1]}",
            r["rank_kept"],
            r["flip_with_next"],
        ]
        for r in result["ranking"]
    ]
    level = f"{result['level']:.0%}"
    print(
        format_table(["rank", "submission", result["metric"], f"rank {level}", "keeps rank", "flips with next"], rows)
    )
    if args.output:
        write_json(args.output, result)
    return 0
