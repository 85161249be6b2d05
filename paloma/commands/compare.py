"""`paloma compare A B`: per-domain differences between two eval outputs, with paired bootstrap intervals."""

from __future__ import annotations

import argparse
from pathlib import Path

from paloma.analysis.compare import CSV_COLUMNS, BootstrapConfig, compare_runs, csv_rows
from paloma.analysis.output import write_csv
from paloma.analysis.runs import load_run
from paloma.commands._output import interval, percent
from paloma.io import write_json
from paloma.table import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare two eval outputs per domain (B − A) with paired bootstrap confidence intervals",
        description="Compare run B against baseline A: per-domain differences in perplexity and bits per byte, "
        "paired bootstrap intervals over documents, win shares, most improved and regressed domains.",
    )
    parser.add_argument("a", type=Path, help="baseline eval output folder (or its results.json)")
    parser.add_argument("b", type=Path, help="eval output folder compared against A")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates (0: none; default 1000)")
    parser.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument("--top", type=int, default=10, help="how many most improved/regressed domains to list")
    parser.add_argument("--force", action="store_true", help="compare even if the protocols differ")
    parser.add_argument("--output", type=Path, help="folder for comparison.json and comparison.csv")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config = BootstrapConfig(replicates=args.bootstrap, level=args.level, seed=args.seed)
    result = compare_runs(load_run(args.a), load_run(args.b), config, force=args.force, top=args.top)
    print(render(result))
    if args.output:
        write_json(args.output / "comparison.json", result)
        write_csv(args.output / "comparison.csv", CSV_COLUMNS, csv_rows(result))
        print(f"\nwrote {args.output / 'comparison.json'} and {args.output / 'comparison.csv'}")
    return 0


def render(result: dict) -> str:
    """The comparison as text: header, per-source table, most improved/regressed domains, win shares."""
    lines = [f"A: {result['a']['name']}  ({result['a']['path']})", f"B: {result['b']['name']}  ({result['b']['path']})"]
    protocol = result["protocol"]
    if not protocol["same"]:
        lines.append(f"warning: protocols differ ({', '.join(protocol['differences']) or 'fingerprint'}), forced")
    if protocol["same_tokenizer"] is False:
        lines.append("note: the tokenizers differ, so compare bits per byte; perplexities are per different tokens")
    boot = result["bootstrap"]
    lines.append(
        f"{boot['level']:.0%} paired bootstrap over documents, {boot['replicates']} replicates, seed {boot['seed']}"
        if boot
        else "no per-document records in both runs: point differences only, no intervals"
    )
    headers = ["source", "domains", "macro ppl A", "macro ppl B", "Δ ppl", "Δ ppl CI", "Δ bpb", "B wins", "A wins"]
    rows = [_source_row(s) for s in result["sources"]]
    rows.append(_source_row({"source": "ALL (domains equal)", **result["summary"]}))
    lines += ["", format_table(headers, rows)]
    for title, key in (("most improved (B better)", "most_improved"), ("most regressed (B worse)", "most_regressed")):
        if result[key]:
            body = [
                [r["source"], r["domain"], r["ppl_a"], r["ppl_b"], percent(r["ppl_rel"]), _sig(r)] for r in result[key]
            ]
            lines += ["", title, format_table(["source", "domain", "ppl A", "ppl B", "change", "significant"], body)]
    lines += ["", _win_line(result["summary"])]
    for side in ("a", "b"):
        if result[f"only_in_{side}"]:
            lines.append(f"{len(result[f'only_in_{side}'])} domains only in {side.upper()} (not compared)")
    return "\n".join(lines)


def _source_row(s: dict) -> list:
    return [
        s["source"],
        s["domains"],
        s["macro_ppl_a"],
        s["macro_ppl_b"],
        s["macro_ppl_diff"],
        interval(s.get("macro_ppl_ci")),
        s["macro_bpb_diff"],
        _wins(s, "b"),
        _wins(s, "a"),
    ]


def _wins(s: dict, side: str) -> str:
    text = f"{s[f'{side}_wins']}"
    if f"{side}_wins_significant" in s:
        text += f" ({s[f'{side}_wins_significant']} sig.)"
    return text


def _sig(row: dict) -> str:
    return "-" if row["significant"] is None else "yes" if row["significant"] else "no"


def _win_line(summary: dict) -> str:
    text = (
        f"B is better on {summary['b_win_share']:.1%} of {summary['domains']} domains, "
        f"A on {summary['a_win_share']:.1%}"
    )
    if "b_win_share_significant" in summary:
        text += (
            f"; significantly: B on {summary['b_win_share_significant']:.1%}, "
            f"A on {summary['a_win_share_significant']:.1%}"
        )
    return text
