"""`paloma tokens report RUN`: how much of the loss the most frequent token types carry, and type-level diffs."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from paloma.analysis.runs import load_run
from paloma.analysis.tokens import select, token_report
from paloma.commands.args import non_negative_int, positive_int
from paloma.errors import PalomaError
from paloma.eval.token_stats import FILENAME, check_against_sums, load_token_stats
from paloma.io import check_output_file, write_json
from paloma.table import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tokens", help="per-token-type analyses of runs evaluated with --token-stats")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = actions.add_parser(
        "report",
        help="share of loss carried by the most frequent types; types where one run beats another",
        description="Read <RUN>/token_stats.npz (written by `paloma eval --token-stats`) and report how much of "
        "the loss the most frequent token types carry, per source too; with --against, the types whose summed "
        "loss changed most between the runs.",
    )
    report.add_argument("run", type=Path, help="eval output folder (or a token_stats.npz file)")
    report.add_argument("--against", type=Path, help="a second run over the same tokens (differences are B − A)")
    report.add_argument("--top", type=non_negative_int, default=20, help="how many types to list (default 20)")
    report.add_argument(
        "--min-count", type=positive_int, default=1, help="only compare types seen this often (default 1)"
    )
    report.add_argument("--source", help="restrict to one source")
    report.add_argument("--domain", help="restrict to one domain, as source/domain")
    report.add_argument("--tokenizer", help="tokenizer to decode types (default: the run's model, if available)")
    report.add_argument("--output", type=Path, help="write the report as JSON to this file")
    report.set_defaults(func=run_report)


def _load(path: Path):
    """Token stats, plus the run (for totals and its model name) when `path` is an eval output folder."""
    stats = load_token_stats(path)
    folder = path if path.is_dir() else path.parent
    run = load_run(folder) if (folder / "results.json").is_file() else None
    if run is not None:
        problems = check_against_sums(stats, run.domain_sums)
        if problems:
            print(
                f"warning: {folder / FILENAME} disagrees with results.json: {problems[0]} ({len(problems)} domains)",
                file=sys.stderr,
            )
    return stats, run


def load_decoder(name_or_path: str | None) -> Callable[[int], str] | None:
    """A function id → readable token text, from a locally available tokenizer; None when there is none."""
    if not name_or_path:
        return None
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=True)
    except (OSError, ValueError):
        return None
    return lambda v: repr(tokenizer.decode([v]))


def run_report(args: argparse.Namespace) -> int:
    if args.output:
        check_output_file(args.output, [args.run, *([args.against] if args.against else [])])
    for path in (args.run, args.against):
        if path is not None and not path.exists():
            raise PalomaError(f"{path}: no such eval output or token_stats.npz")
    stats, run = _load(args.run)
    against = _load(args.against)[0] if args.against else None
    decode = load_decoder(args.tokenizer or (run.model.get("name_or_path") if run else None))
    if args.tokenizer and decode is None:
        raise PalomaError(f"--tokenizer {args.tokenizer!r}: cannot load it (offline: give a local folder)")
    keys = select(stats, args.source, args.domain)
    report = token_report(stats, keys, top=args.top, against=against, min_count=args.min_count, decode=decode)
    print(render(report))
    if args.output:
        write_json(args.output, report)
        print(f"\nwrote {args.output}")
    return 0


def _label(row: dict) -> str:
    return row["token"] if row["token"] is not None else f"id {row['id']}"


def render(report: dict) -> str:
    lines = [
        f"{report['tokens']:,} tokens in {report['domains']} domains; {report['types_seen']:,} of "
        f"{report['vocab_size']:,} types occur",
        "",
        format_table(
            ["most frequent types", "types", "share of tokens", "share of loss"],
            [
                [f"top {c['fraction_of_types']:.0%}", c["types"], c["token_share"], c["loss_share"]]
                for c in report["concentration"]
            ],
        ),
        "",
        format_table(
            ["source", "top 5% types", "share of loss"],
            [[s, c["types"], c["loss_share"]] for s, c in report["by_source"].items()],
        ),
        "",
        format_table(
            ["type", "count", "mean loss", "share of loss"],
            [[_label(r), r["count"], r["mean_loss"], r["loss_share"]] for r in report["frequent_types"]],
        ),
    ]
    comparison = report.get("comparison")
    if comparison:
        lines += ["", f"total loss change B − A: {comparison['total_loss_change']:+.4f} nats"]
        for title, key in (("types where B beats A most", "b_better"), ("types where A beats B most", "a_better")):
            rows = [
                [_label(r), r["count"], r["mean_loss_a"], r["mean_loss_b"], r["loss_change"]] for r in comparison[key]
            ]
            if rows:
                lines += ["", title, format_table(["type", "count", "mean loss A", "mean loss B", "Δ loss"], rows)]
    return "\n".join(lines)
