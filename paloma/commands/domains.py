"""`paloma domains`: print the registry of sources and domains (a table, or JSON with totals)."""

from __future__ import annotations

import argparse
import json

from paloma.errors import PalomaError
from paloma.registry import load_registry
from paloma.table import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("domains", help="list Paloma's sources and domains")
    parser.add_argument("--json", action="store_true", help="print the registry as JSON, with totals")
    parser.add_argument("--release", default="paloma", help="which shipped registry (default: paloma)")
    parser.add_argument("--source", help="list the domains of one source instead of the sources")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    registry = load_registry(args.release)
    if args.json:
        print(json.dumps(registry.to_dict(), indent=1))
        return 0
    if args.source:
        source = registry.get(args.source)
        if source is None:
            known = ", ".join(s.name for s in registry.sources)
            raise PalomaError(f"--source: unknown source {args.source!r} (known: {known})")
        rows = [[d, source.is_code_domain(d)] for d in source.domains]
        print(format_table(["domain", "code"], rows))
        return 0
    rows = [
        [s.name, s.paper_name, s.group, len(s.domains), s.tokens_val_test, s.redistributable, s.fringe, s.is_code]
        for s in registry.sources
    ]
    headers = ["source", "paper name", "group", "domains", "tokens (val+test)", "public", "fringe", "code"]
    print(format_table(headers, rows))
    totals = registry.totals()
    print(
        f"\n{totals['sources']} sources, {totals['domains']} domains; "
        f"public release: {totals['public_sources']} sources, {totals['public_domains']} domains, "
        f"{totals['public_tokens_val_test']:,} tokens (val+test)"
    )
    return 0
