"""`paloma decon`: build a contamination index from Paloma, filter pretraining data with it, verify the result.

Each subcommand is a thin wrapper over `paloma.decon` (build_index, filter_files, verify_files); see
docs/decon.md for the rules and the file formats.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from paloma.commands.args import fraction, int_at_least, non_negative_int, positive_int
from paloma.decon.rules import DEFAULT_MIN_WORDS, DEFAULT_RULES, MATCH_MODES, RULE_SETS
from paloma.errors import PalomaError
from paloma.io import check_output_file, write_json
from paloma.table import format_table


def compression_level(text: str) -> int:
    """0-22, the union of gzip's 0-9 and zstd's 0-22; each input's own codec range is checked before work."""
    value = int_at_least(0)(text)
    if value > 22:
        raise argparse.ArgumentTypeError(f"must be ≤ 22 (gzip 0-9, zstd 0-22), got {value}")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "decon", help="decontaminate pretraining data against Paloma (index, filter, verify, info)"
    )
    commands = parser.add_subparsers(dest="decon_command", metavar="SUBCOMMAND", required=True)

    index = commands.add_parser("index", help="build a contamination index from Paloma's evaluation data")
    index.add_argument(
        "data", nargs="?", help="a local folder in Paloma's layout, or a hub dataset id (allenai/paloma)"
    )
    index.add_argument("--data", dest="data_option", metavar="DATA", help="the same as the positional DATA")
    index.add_argument("-o", "--output", required=True, type=Path, help="index file to write")
    index.add_argument("--revision", help="hub revision (branch, tag or commit) to download")
    index.add_argument("--token", help="hub token (default: the logged-in token or HF_TOKEN)")
    index.add_argument(
        "--rules",
        choices=RULE_SETS,
        default=DEFAULT_RULES,
        help="eligibility rules: dolma (default) reproduces AI2's Dolma pipeline for the Paloma baselines; strict "
        "also drops symbol-only paragraphs and code domains (docs/decon.md)",
    )
    index.add_argument(
        "--min-words",
        type=positive_int,
        default=DEFAULT_MIN_WORDS,
        help=f"fewest UAX #29 word segments for a paragraph to be indexed (default and reference: {DEFAULT_MIN_WORDS})",
    )
    index.add_argument(
        "--include-code",
        action="store_true",
        help="also index code sources and domains (the reference leaves them out)",
    )
    index.add_argument(
        "--match",
        choices=MATCH_MODES,
        default="exact",
        help="exact: the reference (raw paragraph strings); normalised: whitespace and case folded, which removes "
        "more than the reference",
    )
    index.add_argument(
        "--ngram",
        type=positive_int,
        metavar="N",
        help="index every N-gram of normalised words instead of paragraphs (GPT-3's and The Pile's rule: --ngram 13); "
        "the filter then removes documents sharing any N-gram (docs/decon.md)",
    )
    index.add_argument(
        "--extra",
        action="append",
        default=[],
        type=Path,
        metavar="JSONL",
        help="also index this evaluation set beyond Paloma (JSON lines with `text`, optional `id`, `task`; repeatable)",
    )
    index.add_argument("--source", action="append", dest="sources", help="index only this source (repeatable)")
    index.add_argument("--quiet", action="store_true", help="no progress bar")
    index.set_defaults(func=run_index)

    filt = commands.add_parser("filter", help="remove documents that contain an indexed paragraph")
    _add_input_args(filt)
    filt.add_argument(
        "-o", "--output", help="output folder (kept/, removed/, decon-report.json): a path or a URL (s3://, gs://, ...)"
    )
    filt.add_argument("--workers", type=positive_int, default=1, help="files filtered in parallel (default 1)")
    filt.add_argument("--dry-run", action="store_true", help="only report; write no documents")
    filt.add_argument(
        "--samples", type=non_negative_int, default=20, help="matched paragraphs quoted in the report (default 20)"
    )
    filt.add_argument(
        "--compression-level",
        type=compression_level,
        help="gzip (0-9) / zstd (0-22) level of JSONL outputs (default: gzip 1, zstd 3, for speed)",
    )
    again = filt.add_mutually_exclusive_group()
    again.add_argument(
        "--resume", action="store_true", help="continue the run in --output (same index, options and inputs)"
    )
    again.add_argument(
        "--overwrite",
        action="store_true",
        help="remove the earlier run in --output (kept/, removed/, bad/, state, report) and start over",
    )
    filt.add_argument("--quiet", action="store_true", help="no progress bar")
    filt.set_defaults(func=run_filter)

    verify = commands.add_parser("verify", help="check that a cleaned corpus (or a sample) has no indexed paragraph")
    _add_input_args(verify)
    verify.add_argument(
        "--fraction", type=fraction, default=1.0, help="share of documents to check, in (0, 1] (default 1.0)"
    )
    verify.add_argument("--seed", type=non_negative_int, default=0, help="seed of the reproducible sample (default 0)")
    verify.add_argument("--report", type=Path, help="also write the verification report as JSON here")
    verify.set_defaults(func=run_verify)

    info = commands.add_parser(
        "info", help="verify an index file and print its header (rules, data revision, counts, checksum)"
    )
    info.add_argument("index", type=Path)
    info.set_defaults(func=run_info)


def _add_input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "inputs",
        nargs="+",
        help="JSONL(.gz/.zst) or Parquet files, datasets folders, or folders of them (paths or s3://, gs://... URLs)",
    )
    parser.add_argument(
        "-i",
        "--index",
        required=True,
        help="index file from `paloma decon index`, or a URL (s3://, gs://, file://, ...)",
    )
    parser.add_argument("--text-field", default="text", help="field or column holding the text (default: text)")
    parser.add_argument(
        "--skip-bad-lines",
        action="store_true",
        help="set invalid records aside (counted, and copied to bad/) instead of stopping at the first",
    )


def run_index(args: argparse.Namespace) -> int:
    from paloma.decon import build_index

    if (args.data is None) == (args.data_option is None):
        raise PalomaError("give the evaluation data once: a folder or hub id, positionally or as --data")
    data = args.data or args.data_option
    check_output_file(args.output, [*([data] if Path(data).exists() else []), *args.extra])
    index = build_index(
        data,
        rule_set=args.rules,
        revision=args.revision,
        min_words=args.min_words,
        include_code=args.include_code,
        match=args.match,
        sources=args.sources,
        token=args.token,
        progress=not args.quiet,
        ngram=args.ngram,
        extra=args.extra,
    )
    index.save(args.output)
    header = index.header
    keys = f"{args.ngram}-grams" if args.ngram else "paragraphs"
    rows = [[s, c.get("documents", 0), c.get("indexed_occurrences", 0)] for s, c in header["per_source"].items()]
    print(format_table(["source", "documents", f"indexed {keys}"], rows))
    counts = header["counts"]
    excluded = ", ".join(header["data"]["excluded_code_sources"]) or "none"
    how = f"{args.ngram}-grams of normalised words" if args.ngram else f"min words {args.min_words}, match {args.match}"
    print(
        f"\n{counts.get('unique_paragraphs', 0):,} distinct {keys} from {counts.get('documents', 0):,} documents "
        f"(rules {args.rules}, {how}; code sources excluded: {excluded})\n"
        f"wrote {args.output}  checksum {index.checksum}"
    )
    return 0


def run_filter(args: argparse.Namespace) -> int:
    from paloma.decon.filter import REPORT_NAME, filter_files
    from paloma.outputs import join

    report = filter_files(
        args.index,
        args.inputs,
        args.output,
        text_field=args.text_field,
        workers=args.workers,
        dry_run=args.dry_run,
        skip_bad_lines=args.skip_bad_lines,
        samples=args.samples,
        compression_level=args.compression_level,
        progress=not args.quiet,
        resume=args.resume,
        overwrite=args.overwrite,
    )
    _print_filter_report(report)
    if args.output is not None:
        print(f"report: {join(args.output, REPORT_NAME)}")
    return 0


def _print_filter_report(report: dict) -> None:
    t = report["totals"]
    rows = [
        ["read", t["documents"], t["bytes"]],
        ["kept", t["kept_documents"], t["kept_bytes"]],
        ["removed", t["removed_documents"], t["removed_bytes"]],
    ]
    print(format_table(["documents", "count", "text bytes"], rows))
    rate = f"{100 * t['removal_rate_documents']:.4f}% of documents, {100 * t['removal_rate_bytes']:.4f}% of bytes"
    print(f"\nremoved {rate}; {t['bad_lines']} bad lines set aside; {t['files']} files in {t['seconds']:.1f} s")
    if report["hits_by_domain"]:
        top = report["hits_by_domain"][:15]
        print()
        print(
            format_table(
                ["source", "domain", "documents", "paragraph hits"],
                [[h["source"], h["domain"], h.get("documents", 0), h.get("paragraph_hits", 0)] for h in top],
            )
        )
    print(f"index {report['index']['checksum']}" + ("  (dry run: nothing written)" if report["dry_run"] else ""))


def run_verify(args: argparse.Namespace) -> int:
    from paloma.decon.remote import is_url
    from paloma.decon.verify import verify_files

    if args.report:
        check_output_file(args.report, [*args.inputs, *([] if is_url(args.index) else [args.index])])
    report = verify_files(
        args.index,
        args.inputs,
        text_field=args.text_field,
        fraction=args.fraction,
        seed=args.seed,
        skip_bad_lines=args.skip_bad_lines,
    )
    if args.report:
        write_json(args.report, report)
    verdict = "clean" if report["clean"] else "CONTAMINATED"
    print(
        f"{verdict}: {report['contaminated_documents']:,} of {report['documents_checked']:,} checked documents "
        f"contain an indexed paragraph (fraction {report['fraction']}, seed {report['seed']}; "
        f"index {report['index']['checksum']})"
    )
    for example in report["examples"]:
        print(f"  {example['file']}:{example['location']}: {example['paragraph'][:100]!r}")
    return 0 if report["clean"] else 1


def run_info(args: argparse.Namespace) -> int:
    from paloma.decon.index import verify_file

    header = verify_file(args.index)
    print(json.dumps({k: v for k, v in header.items() if k not in ("sections",)}, indent=1))
    print(f"checksum verified: {header['checksum']}", file=sys.stderr)
    return 0
