"""`paloma compare A B`: per-domain differences between two eval outputs, with paired bootstrap intervals."""

from __future__ import annotations

import argparse
from pathlib import Path

from paloma.analysis.compare import CSV_COLUMNS, BootstrapConfig, compare_runs, csv_rows
from paloma.analysis.forest import forest_svg
from paloma.analysis.output import write_csv
from paloma.analysis.runs import check_release, load_run
from paloma.commands._output import interval, percent
from paloma.commands.args import float_in, non_negative_int
from paloma.errors import PalomaError
from paloma.io import atomic_write, check_output_dir, write_json
from paloma.registry import resolve_registry
from paloma.table import format_table

OUTPUTS = ("comparison.json", "comparison.csv", "forest.svg")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "compare",
        help="compare two eval outputs per domain (B − A) with paired bootstrap confidence intervals",
        description="Compare run B against baseline A: per-domain differences in perplexity and bits per byte, "
        "paired bootstrap intervals over documents, win shares, most improved and regressed domains.",
    )
    parser.add_argument("a", type=Path, help="baseline eval output folder (or its results.json)")
    parser.add_argument("b", type=Path, help="eval output folder compared against A")
    parser.add_argument(
        "--bootstrap", type=non_negative_int, default=1000, help="bootstrap replicates (0: none; default 1000)"
    )
    parser.add_argument(
        "--level",
        type=float_in(0.0, 1.0, low_open=True, high_open=True),
        default=0.95,
        help="confidence level (default 0.95)",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0, help="seed of the bootstrap (default 0)")
    parser.add_argument(
        "--top", type=non_negative_int, default=10, help="how many most improved/regressed domains to list"
    )
    parser.add_argument("--force", action="store_true", help="compare even if the protocols differ")
    parser.add_argument(
        "--registry",
        default="paloma",
        help="registry (shipped name or JSON file; 'none'): source order and purpose-group rows",
    )
    parser.add_argument("--output", type=Path, help="folder for comparison.json, comparison.csv and forest.svg")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = resolve_registry(args.registry)
    if args.output:
        check_output_dir(args.output, [args.a, args.b])
    for path in (args.a, args.b):
        if not path.exists():
            raise PalomaError(f"{path}: no such eval output")
    run_a, run_b = load_run(args.a), load_run(args.b)
    check_release([run_a, run_b], registry)
    config = BootstrapConfig(replicates=args.bootstrap, level=args.level, seed=args.seed)
    result = compare_runs(run_a, run_b, config, force=args.force, top=args.top, registry=registry)
    print(render(result))
    if args.output:
        write_json(args.output / "comparison.json", result)
        write_csv(args.output / "comparison.csv", CSV_COLUMNS, csv_rows(result))
        with atomic_write(args.output / "forest.svg") as handle:
            handle.write(forest_svg(result))
        print(f"\nwrote {', '.join(OUTPUTS)} to {args.output}")
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
        f"{boot['level']:.0%} paired bootstrap-t over documents, {boot['replicates']} replicates, seed {boot['seed']}; "
        f"no interval for a domain with fewer than {boot['min_effective_documents']} effective documents"
        if boot
        else "no per-document records in both runs (or --bootstrap 0): point differences only, no intervals"
    )
    headers = ["source", "domains", "macro ppl A", "macro ppl B", "Δ ppl", "Δ ppl CI", "Δ bpb", "Δ bpb CI"]
    headers += ["B wins", "A wins"]
    rows = [_source_row(s) for s in result["sources"]]
    rows += [_source_row({"source": f"group: {g['group']}", **g}) for g in result["groups"]]
    rows.append(_source_row({"source": "ALL (sources equal)", **result["summary"]}))
    lines += ["", format_table(headers, rows)]
    notes = [f"{s['source']}: {s['interval_note']}" for s in result["sources"] if s["interval_note"]]
    lines += [f"no interval for {note}" for note in notes[:5]]
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
        s.get("domains", ""),
        s["macro_ppl_a"],
        s["macro_ppl_b"],
        s["macro_ppl_diff"],
        interval(s.get("macro_ppl_ci")),
        s["macro_bpb_diff"],
        interval(s.get("macro_bpb_ci")),
        _wins(s, "b"),
        _wins(s, "a"),
    ]


def _wins(s: dict, side: str) -> str:
    if f"{side}_wins" not in s:
        return ""
    text = f"{s[f'{side}_wins']}"
    if s.get("domains_with_interval"):
        text += f" ({s[f'{side}_wins_significant']} sig.)"
    return text


def _sig(row: dict) -> str:
    return "-" if row["significant"] is None else "yes" if row["significant"] else "no"


def _win_line(summary: dict) -> str:
    text = (
        f"B is better on {summary['b_win_share']:.1%} of {summary['domains']} domains, "
        f"A on {summary['a_win_share']:.1%}"
    )
    if summary["domains_with_interval"]:
        text += (
            f"; significantly: B on {summary['b_win_share_significant']:.1%}, "
            f"A on {summary['a_win_share_significant']:.1%} ({summary['domains_with_interval']} domains have an "
            "interval)"
        )
    return text
