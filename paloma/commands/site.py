"""`paloma site build`: render the static leaderboard site from a folder of submissions."""

from __future__ import annotations

import argparse

from paloma.site import build


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("site", help="build the static leaderboard site")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    make = actions.add_parser(
        "build",
        help="render the site from submissions (works offline; open OUTPUT/index.html)",
        description="Validates the submissions, then writes the site for one release and split to --output.",
    )
    make.add_argument("--submissions", default="submissions", help="submissions folder (default: submissions)")
    make.add_argument("--output", required=True, help="folder to write the site to (replaced atomically)")
    make.add_argument("--release", help="release to build for (default: the only one present)")
    make.add_argument("--split", choices=["val", "test"], help="split to rank (default: the most submitted)")
    make.add_argument(
        "--registry", action="append", help="registry file of a release not shipped with paloma (repeatable)"
    )
    make.add_argument(
        "--manifest", action="append", help="release manifest of a release not shipped with paloma (repeatable)"
    )
    make.set_defaults(func=run_build)


def run_build(args: argparse.Namespace) -> int:
    summary = build(
        args.submissions, args.output, args.release, args.split, args.registry, manifest_files=args.manifest
    )
    print(
        f"Built {summary.pages} pages for {summary.submissions} submission(s) to {summary.release} "
        f"({summary.split}) in {summary.seconds:.1f} s: {summary.output}/index.html "
        f"({summary.bytes / 1e6:.1f} MB)"
    )
    return 0
