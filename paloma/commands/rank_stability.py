"""`paloma rank-stability RUN…`: how often adjacent leaderboard entries swap under bootstrap resampling."""

from __future__ import annotations

import argparse
from pathlib import Path

from paloma.analysis.compare import check_protocols
from paloma.analysis.ranking import METRICS, Entry, rank_stability
from paloma.analysis.runs import check_release, load_run
from paloma.commands.args import float_in, non_negative_int, positive_int
from paloma.errors import PalomaError
from paloma.io import check_output_file, write_json
from paloma.registry import resolve_registry
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
    parser.add_argument("--bootstrap", type=positive_int, default=1000, help="bootstrap replicates (default 1000)")
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument(
        "--level",
        type=float_in(0.0, 1.0, low_open=True, high_open=True),
        default=0.95,
        help="level of the rank intervals (default 0.95)",
    )
    parser.add_argument(
        "--registry",
        default="paloma",
        help="registry (shipped name or JSON file; 'none') that says which domains ordinary_ppl leaves out",
    )
    parser.add_argument("--force", action="store_true", help="rank runs even if their protocols differ")
    parser.add_argument("--output", type=Path, help="write the result (with every pair) as JSON to this file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = resolve_registry(args.registry)
    if args.output:
        check_output_file(args.output, args.runs)
    missing = [p for p in args.runs if not p.exists()]
    if missing:
        raise PalomaError(f"{missing[0]}: no such eval output")
    runs = [load_run(p) for p in args.runs]
    check_release(runs, registry)
    for other in runs[1:]:
        check_protocols(runs[0], other, args.force)  # the refusal `paloma compare` gives
    names = [r.name for r in runs]
    entries = [Entry.from_run(r, r.name if names.count(r.name) == 1 else str(r.path)) for r in runs]
    result = rank_stability(entries, args.metric, args.bootstrap, args.seed, args.level, registry=registry)
    print(
        f"{result['metric']} over {result['domains']} domains of {result['sources']} sources; "
        f"{result['replicates']} replicates resampling {result['resampled']}"
    )
    ranks = [r["rank"] for r in result["ranking"]]
    tied = {rank for rank in ranks if ranks.count(rank) > 1}
    rows = [
        [
            f"{r['rank']}=" if r["rank"] in tied else r["rank"],
            r["name"],
            r["value"],
            f"{r['rank_interval'][0]}–{r['rank_interval'][1]}",
            r["rank_kept"],
            "tied" if r["tied_with_next"] else r["flip_with_next"],
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
