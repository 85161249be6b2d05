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
    check.add_argument(
        "--established-at",
        metavar="COMMIT",
        help="git commit whose submissions/ folders are already merged: they count as earlier than the others "
        "when one copies another (the pull-request check passes its base)",
    )
    check.set_defaults(func=run_validate)
    pr = actions.add_parser(
        "check-pr",
        help="check that a pull request adds one submission folder and nothing else (git diff against its base)",
        description="Compares HEAD with BASE from their merge base, as GitHub's 'Files changed' does; the pull "
        "request's files are read by git as data, never run. Prints one line and exits 1 when it changes more.",
    )
    pr.add_argument("--base", required=True, help="the base branch's commit (or ref)")
    pr.add_argument("--head", required=True, help="the pull request's commit (or ref)")
    pr.add_argument("--repo", default=".", help="the git repository holding both (default: .)")
    pr.set_defaults(func=run_check_pr)
    schema = actions.add_parser("schema", help="print the JSON Schema of the submission format")
    schema.add_argument("--output", help="write it to this file instead (e.g. submissions/schema/v1.json)")
    schema.set_defaults(func=run_schema)


def run_validate(args: argparse.Namespace) -> int:
    established: set[str] = set()
    if args.established_at:
        from paloma.submissions.pull_request import existing_folders

        established = existing_folders(".", args.established_at)
    report = validate(args.paths, args.registry, progress=True, manifest_files=args.manifest, established=established)
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


def run_check_pr(args: argparse.Namespace) -> int:
    from paloma.submissions.pull_request import check_pull_request

    changes, problem = check_pull_request(args.repo, args.base, args.head)
    if problem is not None:
        print(f"pull request: {problem}", file=sys.stderr)
        return 1
    added = sorted({c.path.split("/")[1] for c in changes if c.path.startswith("submissions/")})
    print(
        f"pull request adds submission {added[0]}" if added else "pull request changes no submission: review it as code"
    )
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
