"""`paloma submissions validate|schema`: check submissions as a pull request would; print the schema."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter

from paloma.io import atomic_write, check_output_file
from paloma.submissions.schema import json_schema
from paloma.submissions.validate import validate


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("submissions", help="validate leaderboard submissions; print their schema")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    check = actions.add_parser("validate", help="validate submissions (folders are searched for submission.json)")
    check.add_argument("paths", nargs="*", default=["submissions"], help="folders or files (default: submissions)")
    check.add_argument(
        "--registry", action="append", help="registry file of a release not shipped with paloma (repeatable)"
    )
    check.add_argument(
        "--manifest", action="append", help="release manifest of a release not shipped with paloma (repeatable)"
    )
    check.set_defaults(func=run_validate)
    schema = actions.add_parser("schema", help="print the JSON Schema of the submission format")
    schema.add_argument("--output", help="write it to this file instead (e.g. submissions/schema/v1.json)")
    schema.set_defaults(func=run_schema)


def run_validate(args: argparse.Namespace) -> int:
    report = validate(args.paths, args.registry, progress=True, manifest_files=args.manifest)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(problem, file=sys.stderr)
    releases = Counter(f"{x.submission.benchmark.release}/{x.submission.benchmark.split}" for x in report.submissions)
    summary = ", ".join(f"{n} for {label}" for label, n in sorted(releases.items())) or (
        f"no submission.json found under {', '.join(map(str, args.paths))}"
    )
    if report.problems:
        print(f"paloma submissions validate: {len(report.problems)} problem(s) in {summary}", file=sys.stderr)
        return 1
    print(f"{len(report.submissions)} submission(s) valid: {summary}")
    return 0


def run_schema(args: argparse.Namespace) -> int:
    text = json.dumps(json_schema(), indent=1) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    with atomic_write(check_output_file(args.output)) as handle:
        handle.write(text)
    print(f"Wrote {args.output}")
    return 0
