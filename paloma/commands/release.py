"""`paloma release manifest`: count a release's split once, so every submission can be checked on its own."""

from __future__ import annotations

import argparse
from pathlib import Path

from paloma.errors import PalomaError
from paloma.io import check_output_file, write_json
from paloma.registry import resolve_registry


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "release", help="release maintenance: manifests that submissions are checked against"
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    make = actions.add_parser(
        "manifest",
        help="count every domain's documents, bytes and tokens of a split (streamed) into a release manifest",
        description="Reads the split as `paloma eval` does (data revision, fingerprint of each protocol preset) and "
        "writes domains/<release>.<split>.manifest.json-style JSON for `paloma submissions validate`.",
    )
    make.add_argument("--data", required=True, help="the release in Paloma's layout: a folder, or a hub id")
    make.add_argument("--split", required=True, choices=["val", "test"])
    make.add_argument("--registry", default="paloma", help="the release's registry: a shipped name or a JSON file")
    make.add_argument(
        "--tokenizer",
        help="the release's fixed vocabulary, for token counts (Paloma: allenai/gpt-neox-olmo-dolma-v1_5)",
    )
    make.add_argument("--revision", help="hub revision of --data (default: the newest; recorded as the data revision)")
    make.add_argument(
        "--output", required=True, help="the manifest file to write, e.g. domains/paloma.test.manifest.json"
    )
    make.add_argument("--no-progress", action="store_true", help="no progress bar")
    make.set_defaults(func=run_manifest)


def run_manifest(args: argparse.Namespace) -> int:
    from paloma.submissions.manifest import build_manifest

    registry = resolve_registry(args.registry)
    if registry is None:
        raise PalomaError("--registry none: a manifest belongs to a release; name its registry")
    local = Path(args.data)
    inputs = [local] if local.exists() else []
    if not inputs and (args.data.startswith((".", "/")) or args.data.count("/") != 1):
        raise PalomaError(f"--data {args.data}: no such folder, and not a hub id (org/name)")
    if args.tokenizer and args.tokenizer.startswith((".", "/")) and not Path(args.tokenizer).exists():
        raise PalomaError(f"--tokenizer {args.tokenizer}: no such folder")
    check_output_file(args.output, inputs)
    manifest = build_manifest(args.data, args.split, registry, args.tokenizer, args.revision, not args.no_progress)
    write_json(args.output, manifest)
    totals = manifest["totals"]
    tokens = f", {totals['tokens']:,} tokens" if "tokens" in totals else " (no tokenizer: no token counts)"
    print(
        f"Wrote {args.output}: {registry.release}/{args.split}, {totals['domains']} domains, "
        f"{totals.get('documents', 0):,} documents, {totals.get('bytes', 0):,} bytes{tokens}; "
        f"data revision {manifest['data_revision']}, reference fingerprint "
        f"{manifest['fingerprints'][manifest['reference_preset']]}"
    )
    return 0
