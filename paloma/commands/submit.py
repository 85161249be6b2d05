"""`paloma submit`: make a leaderboard submission from a `paloma eval` output folder and metadata."""

from __future__ import annotations

import argparse

from paloma.commands.args import fraction, non_negative_int, positive_int
from paloma.submissions.submit import pull_request_steps, read_metadata, submit


def link(text: str) -> dict[str, str]:
    """`LABEL=URL`, checked by argparse so a malformed link is one line before any work."""
    label, sep, url = text.partition("=")
    if not sep or not label.strip() or not url.strip():
        raise argparse.ArgumentTypeError(f"expected LABEL=URL, got {text!r}")
    return {"label": label.strip(), "url": url.strip()}


link.__name__ = "LABEL=URL"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit",
        help="turn a `paloma eval` output into a leaderboard submission",
        description="Metadata comes from --metadata FILE (YAML) and flags; flags win. "
        "The submission is validated before it is written to SUBMISSIONS/NAME/submission.json.",
    )
    parser.add_argument("results", help="the `paloma eval` output folder (or its results.json)")
    parser.add_argument("--metadata", help="YAML file with the fields below (flags override it)")
    parser.add_argument("--name", help="unique id: lower-case letters, digits, '-', '_', '.'")
    parser.add_argument("--display-name", help="the model's name as shown on the site")
    parser.add_argument("--organisation")
    parser.add_argument("--link", action="append", type=link, metavar="LABEL=URL", help="a link (repeatable)")
    parser.add_argument("--model-id", help="default: the model recorded in results.json")
    parser.add_argument("--revision", help="default: the revision recorded in results.json")
    parser.add_argument("--training-tokens", type=positive_int)
    parser.add_argument(
        "--parameters-from",
        metavar="HUB_ID_OR_FOLDER",
        help="count the parameters from this model's safetensors weights (a hub id or a local folder) and record "
        "where they came from; without it the count recorded by `paloma eval` is shown as declared",
    )
    parser.add_argument("--tokenizer")
    parser.add_argument("--training-data", help="what the model was trained on")
    parser.add_argument("--description")
    parser.add_argument("--fixed-vocabulary", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--fixed-training-order", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--decon-report", help="the report written by `paloma decon` (copied beside the submission)")
    parser.add_argument("--decon-index-checksum", help="checksum of the decontamination index (default: from report)")
    parser.add_argument("--run", help="training run id, when this is one checkpoint of a run")
    parser.add_argument("--step", type=non_negative_int, help="training step of the checkpoint")
    parser.add_argument(
        "--lr-schedule-fraction", type=fraction, help="fraction of the LR schedule done, in (0, 1] (1.0 = final)"
    )
    parser.add_argument("--release", help="benchmark release (default: recorded in results.json, else paloma)")
    parser.add_argument("--submissions", default="submissions", help="submissions folder (default: submissions)")
    parser.add_argument(
        "--registry", action="append", help="registry file of a release not shipped with paloma (repeatable)"
    )
    parser.add_argument(
        "--manifest", action="append", help="release manifest of a release not shipped with paloma (repeatable)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing submission of that name")
    parser.set_defaults(func=run)


def metadata_from_args(args: argparse.Namespace) -> dict:
    """Metadata from the YAML file, with every flag that was given taking precedence."""
    meta = read_metadata(args.metadata)
    simple = ("name", "display_name", "organisation", "model_id", "revision", "training_tokens", "tokenizer")
    simple += ("training_data", "description", "fixed_vocabulary", "fixed_training_order", "release")
    meta.update({key: getattr(args, key) for key in simple if getattr(args, key) is not None})
    if args.link:
        meta["links"] = args.link
    if args.parameters_from:
        from paloma.submissions.submit import parameters_from_weights

        meta["parameters"] = parameters_from_weights(args.parameters_from, meta.get("revision"))
        meta["parameters_source"] = args.parameters_from
    decon = dict(meta.get("decontamination") or {})
    if args.decon_report:
        decon["report"] = args.decon_report
    if args.decon_index_checksum:
        decon["index_checksum"] = args.decon_index_checksum
    meta["decontamination"] = decon
    if args.run or args.lr_schedule_fraction is not None:
        checkpoint = dict(meta.get("checkpoint") or {})
        given = {"run": args.run, "step": args.step, "lr_schedule_fraction": args.lr_schedule_fraction}
        checkpoint.update({k: v for k, v in given.items() if v is not None})
        meta["checkpoint"] = checkpoint
    return meta


def run(args: argparse.Namespace) -> int:
    meta = metadata_from_args(args)
    target = submit(args.results, meta, args.submissions, args.registry, args.overwrite, args.manifest)
    print(pull_request_steps(target, target.parent.name, args.registry, args.manifest))
    return 0
