"""`paloma reweight RUN --shares shares.json`: perplexity under another corpus's domain mix."""

from __future__ import annotations

import argparse
from pathlib import Path

from paloma.analysis.reweight import read_shares, reweight, token_shares
from paloma.analysis.runs import load_run
from paloma.commands.args import non_negative_int
from paloma.errors import PalomaError
from paloma.io import check_output_file, write_json
from paloma.table import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reweight",
        help="perplexity of a run under another corpus's domain mix: exp(Σ share_d · NLL_d)",
        description="Reweight a run's per-domain losses by a corpus's token shares per domain (paper App. F). "
        'Shares: JSON {source: {domain: share}} or {"source/domain": share}; they are normalised to sum to one.',
    )
    parser.add_argument("run", type=Path, help="eval output folder (or results.json)")
    shares = parser.add_mutually_exclusive_group(required=True)
    shares.add_argument("--shares", type=Path, help="JSON file of token shares per domain")
    shares.add_argument("--shares-from", type=Path, help="use the token shares of another eval output")
    parser.add_argument("--top", type=non_negative_int, default=10, help="how many of the largest shares to list")
    parser.add_argument("--output", type=Path, help="write the result as JSON to this file")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    inputs = [p for p in (args.run, args.shares, args.shares_from) if p is not None]
    if args.output:
        check_output_file(args.output, inputs)
    missing = [p for p in inputs if not p.exists()]
    if missing:
        raise PalomaError(f"{missing[0]}: no such file or folder")
    target = load_run(args.run)
    if args.shares:
        shares = read_shares(args.shares)
    else:
        shares = token_shares(load_run(args.shares_from).domain_sums)
        if not shares:
            raise PalomaError(f"{args.shares_from}: no scored tokens to take shares from")
    result = reweight(target.domain_sums, shares)
    print(f"{target.name}: perplexity {result['ppl']:.4f} under the given mix of {result['domains']} domains")
    print(
        f"(token-weighted over the same domains: {result['micro_ppl_same_domains']:.4f}; shares summed to "
        f"{result['shares_sum']:.6g} and were normalised)"
    )
    rows = [[c["source"], c["domain"], c["share"], c["loss"]] for c in result["contributions"][: args.top]]
    print(format_table(["source", "domain", "share", "loss (nats/token)"], rows))
    if result["unweighted_domains"]:
        print(f"{len(result['unweighted_domains'])} scored domains have no share and do not count")
    if args.output:
        write_json(args.output, result)
    return 0
