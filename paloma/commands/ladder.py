"""`paloma ladder fit RUNS… [--holdout RUNS…]`: fit L(N, D) = E + A/N^α + B/D^β per target, predict held-out
runs (step 1) and, from lm-evaluation-harness results, a downstream metric (step 2)."""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

from tqdm import tqdm

from paloma.analysis.ladder import DEFAULT_OBJECTIVE, OBJECTIVES, fit_runs
from paloma.analysis.ladder.chart import write_ladder_outputs
from paloma.analysis.ladder.data import LEVELS
from paloma.analysis.ladder.downstream import DownstreamSpec, results_files
from paloma.analysis.ladder.report import holdout_summary, write_ladder_reports
from paloma.analysis.runs import check_release, load_run
from paloma.commands._output import percent
from paloma.commands.args import float_in, positive_float, positive_int
from paloma.errors import PalomaError
from paloma.io import check_output_dir
from paloma.registry import resolve_registry
from paloma.table import format_table

confidence = float_in(0.0, 1.0, low_open=True, high_open=True)


def levels_list(text: str) -> list[str]:
    """`suite,source` → ["suite", "source"]; an unknown level is an argparse error."""
    levels = [level.strip() for level in text.split(",") if level.strip()]
    unknown = sorted(set(levels) - set(LEVELS))
    if unknown or not levels:
        bad = unknown[0] if unknown else text
        raise argparse.ArgumentTypeError(f"unknown level {bad!r} (use suite, source, domain)")
    return levels


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ladder", help="scaling-law fits over a ladder of eval runs")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser(
        "fit",
        help="fit L(N, D) = E + A/N^α + B/D^β per domain, per source and for the suite",
        description="Fit L(N, D) = E + A/N^alpha + B/D^beta (Huber loss on log residuals, multi-start L-BFGS-B) "
        "to eval runs of models of several sizes N and training tokens D; report fit quality, leave-one-out "
        "error, intervals, and the error of the predictions for held-out runs (--holdout) and, through a "
        "sigmoid, for a downstream metric (--downstream).",
    )
    fit.add_argument("runs", nargs="+", type=Path, help="eval output folders (or results.json files) of the ladder")
    fit.add_argument(
        "--holdout",
        nargs="+",
        type=Path,
        default=[],
        metavar="RUN",
        help="eval outputs of held-out (larger) runs: predicted vs actual per target, as the paper's tables",
    )
    fit.add_argument(
        "--tokens",
        type=Path,
        help="CSV with columns run,training_tokens (run = folder path, folder name or model name); fills in "
        "runs whose results.json lacks model.training_tokens",
    )
    fit.add_argument(
        "--parameters",
        choices=["non_embedding", "total"],
        default="non_embedding",
        help="N = non-embedding (default) or total parameters",
    )
    fit.add_argument(
        "--count-output-embedding",
        action="store_true",
        help="add the output embedding to N, as OLMo-ladder counts it (model.output_embedding_parameters)",
    )
    fit.add_argument(
        "--metric", choices=["loss", "bpb"], default="loss", help="loss in nats per token (default) or bits per byte"
    )
    fit.add_argument(
        "--levels",
        type=levels_list,
        default=list(LEVELS),
        help="comma-separated targets: suite, source, domain (default all)",
    )
    fit.add_argument("--predict", nargs=2, type=positive_float, metavar=("N", "D"), help="predict the loss of a model")
    fit.add_argument(
        "--last-k",
        type=positive_int,
        default=1,
        metavar="K",
        help="average the last K checkpoints of each training run, where several are given (default 1)",
    )
    fit.add_argument("--level", type=confidence, default=0.95, help="level of the prediction intervals (default 0.95)")
    fit.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=DEFAULT_OBJECTIVE,
        help=f"loss of the log residuals: least squares (l2) or OLMo-ladder's Huber (default {DEFAULT_OBJECTIVE}: "
        "the smaller held-out error on simulated ladders, docs/analysis.md)",
    )
    fit.add_argument(
        "--mixed-schedules",
        action="store_true",
        help="fit runs at different fractions of their LR schedule (refused by default)",
    )
    fit.add_argument(
        "--registry",
        default="paloma",
        help="registry (shipped name or JSON file; 'none') that says which domains are code or fringe",
    )
    fit.add_argument("--no-loo", action="store_true", help="skip leave-one-out refits (faster)")
    fit.add_argument("--jobs", type=positive_int, default=1, help="fit targets in this many processes (default 1)")
    fit.add_argument("--output", type=Path, help="folder for fits.json, fits.csv, ladder.svg (and holdout.csv …)")
    step2 = fit.add_argument_group("step 2: from a Paloma loss to a downstream metric")
    step2.add_argument(
        "--downstream",
        nargs="+",
        type=Path,
        default=[],
        metavar="FILE",
        help="lm-evaluation-harness results*.json files (or folders of them), one per ladder and held-out run",
    )
    step2.add_argument("--task", help="the lm-eval task whose metric to predict (e.g. hellaswag)")
    step2.add_argument("--task-metric", help="its metric, e.g. acc or acc_norm,none (default acc_norm, else acc)")
    step2.add_argument("--via", default="suite", help="the fitted target whose loss step 2 maps (default suite)")
    fit.set_defaults(func=run_fit)


def read_tokens_csv(path: Path) -> dict[str, float]:
    """`run,training_tokens` rows → mapping; errors name the file and line."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            reader = csv.DictReader(handle)
            if not reader.fieldnames or not {"run", "training_tokens"} <= set(reader.fieldnames):
                raise PalomaError(f"{path}:1: header must contain the columns run,training_tokens")
            mapping = {}
            for line_no, row in enumerate(reader, start=2):
                try:
                    mapping[row["run"].strip()] = float(row["training_tokens"])
                except (TypeError, ValueError):
                    raise PalomaError(f"{path}:{line_no}: training_tokens is not a number") from None
            return mapping
    except FileNotFoundError:
        raise PalomaError(f"{path}: no such file") from None


def _check_arguments(args: argparse.Namespace) -> DownstreamSpec | None:
    """Everything that can be refused before a run is read (issue 10: check before working)."""
    if args.count_output_embedding and args.parameters == "total":
        raise PalomaError("--count-output-embedding adds to non-embedding N; total parameters already include it")
    if args.tokens and not args.tokens.is_file():
        raise PalomaError(f"{args.tokens}: no such file (--tokens)")
    if bool(args.downstream) != bool(args.task):
        raise PalomaError("--downstream and --task go together (the result files, and the task to predict)")
    if args.downstream and args.via.split(":")[0] not in args.levels:
        raise PalomaError(f"--via {args.via!r}: its level is not among --levels {','.join(args.levels)}")
    inputs = [*args.runs, *args.holdout, *args.downstream, *([args.tokens] if args.tokens else [])]
    if args.output:
        check_output_dir(args.output, inputs)
    missing = [p for p in [*args.runs, *args.holdout] if not p.exists()]
    if missing:
        raise PalomaError(f"{missing[0]}: no such eval output")
    if not args.downstream:
        return None
    return DownstreamSpec(tuple(results_files(args.downstream)), args.task, args.task_metric, args.via)


def run_fit(args: argparse.Namespace) -> int:
    registry = resolve_registry(args.registry)
    downstream = _check_arguments(args)
    runs, holdout = [load_run(path) for path in args.runs], [load_run(path) for path in args.holdout]
    check_release([*runs, *holdout], registry)
    tokens = read_tokens_csv(args.tokens) if args.tokens else None
    with tqdm(desc="fitting", unit="target", leave=False, disable=None) as bar:
        ladder = fit_runs(
            runs,
            tokens,
            parameters=args.parameters,
            metric=args.metric,
            levels=args.levels,
            loo=not args.no_loo,
            predict=tuple(args.predict) if args.predict else None,
            registry=registry,
            progress=bar.update,
            jobs=args.jobs,
            holdout=holdout,
            level=args.level,
            last_k=args.last_k,
            count_output_embedding=args.count_output_embedding,
            mixed_schedules=args.mixed_schedules,
            downstream=downstream,
            kind=args.objective,
        )
    print(render(ladder))
    _print_warnings(ladder)
    if args.output:
        written = write_ladder_outputs(ladder, args.output) + write_ladder_reports(ladder, args.output)
        print(f"\nwrote {', '.join(p.name for p in written)} to {args.output}")
    return 0


def _print_warnings(ladder: dict, limit: int = 10) -> None:
    """Parameters on a bound, per target, on stderr: the fit did not determine them."""
    lines = [f"warning: {fit['target']}: {w}" for fit in ladder["fits"] for w in fit["warnings"]]
    for line in lines[:limit]:
        print(line, file=sys.stderr)
    if len(lines) > limit:
        print(f"warning: {len(lines) - limit} more parameters at a bound (fits.json: warnings)", file=sys.stderr)
    for line in (ladder.get("downstream") or {}).get("warnings", []):
        print(f"warning: {line}", file=sys.stderr)


def render(ladder: dict, max_rows: int = 40) -> str:
    """Points, one row per target, then the held-out and downstream reports."""
    lines = [f"{len(ladder['points'])} runs; L in {ladder['unit']}; N = {ladder['parameters']} parameters"]
    points = [
        [p["name"], p["n"], p["d"], p["d"] / p["n"], p["checkpoints"], p["schedule_fraction"]] for p in ladder["points"]
    ]
    lines.append(format_table(["run", "N", "D", "D/N", "checkpoints", "schedule"], points))
    lines += ["", _fits_table(ladder, max_rows)]
    if len(ladder["fits"]) > max_rows:
        lines.append(f"... {len(ladder['fits']) - max_rows} more targets in fits.json / fits.csv")
    if ladder["skipped_targets"]:
        lines.append(f"{len(ladder['skipped_targets'])} targets not in every run were not fitted")
    if ladder.get("holdout_points"):
        lines += ["", _holdout_table(ladder, max_rows)]
    if ladder.get("downstream"):
        lines += ["", render_downstream(ladder["downstream"])]
    return "\n".join(lines)


def _fits_table(ladder: dict, max_rows: int) -> str:
    level = f"{ladder['interval_level']:.0%}"
    headers = ["target", "E", "A", "α", "B", "β", "fit rmse (log)", "LOO mean |rel|", "LOO max |rel|"]
    if ladder["predict"]:
        headers += ["predicted", f"{level} PI"] + (["predicted ppl"] if ladder["metric"] == "loss" else [])
    rows = []
    for fit in ladder["fits"][:max_rows]:
        law = fit["law"]
        row = [fit["target"], law["E"], law["A"], law["alpha"], law["B"], law["beta"], fit["rmse_log"]]
        row += [fit.get("loo_mean_abs_rel_error"), fit.get("loo_max_abs_rel_error")]
        if ladder["predict"]:
            prediction = fit["prediction"]
            row += [prediction["loss"], _bracket(prediction.get("interval"))]
            if ladder["metric"] == "loss":
                row.append(math.exp(prediction["loss"]))
        rows.append(row)
    return format_table(headers, rows)


def _bracket(bounds: list[float] | None) -> str:
    return "-" if not bounds else f"[{bounds[0]:.4g}, {bounds[1]:.4g}]"


def _holdout_table(ladder: dict, max_rows: int) -> str:
    level = f"{ladder['interval_level']:.0%}"
    rows = [
        [fit["target"], *_error_cells(r), _yes_no(r["inside"])]
        for fit in ladder["fits"]
        for r in fit.get("holdout", [])
    ]
    headers = ["target", "held-out run", "predicted", "actual", "rel. error", "abs. error", f"{level} PI", "inside"]
    lines = [f"held-out runs: {', '.join(p['name'] for p in ladder['holdout_points'])} (errors: predicted − actual)"]
    lines.append(format_table(headers, rows[:max_rows]))
    if len(rows) > max_rows:
        lines.append(f"... {len(rows) - max_rows} more rows in holdout.csv")
    summary = [
        [s["level"], s["predictions"], percent(s["mean_rel_error"]), percent(s["mean_abs_rel_error"]), _share(s)]
        for s in holdout_summary(ladder)
    ]
    headers = ["level", "predictions", "mean rel. error", "mean |rel. error|", f"inside {level} PI"]
    lines += ["", format_table(headers, summary)]
    return "\n".join(lines)


def _error_cells(row: dict) -> list:
    """Run, predicted, actual, signed relative and absolute errors, interval."""
    return [
        row["name"],
        row["predicted"],
        row["observed"],
        percent(row["rel_error"]),
        row["abs_error"],
        _bracket(row["interval"]),
    ]


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def _share(summary: dict) -> str:
    return "-" if summary["inside_interval"] is None else f"{summary['inside_interval']:.0%}"


def render_downstream(step: dict) -> str:
    p, fit = step["sigmoid"]["params"], step["sigmoid"]
    lines = [
        f"step 2: {step['task']} {step['metric']} = {p['a']:.4g} / (1 + exp(−{p['k']:.4g} (L − {p['x0']:.4g}))) "
        f"+ {p['b']:.4g}, L = {step['via']} loss; {fit['points']} checkpoints, rmse {fit['rmse']:.4f}"
    ]
    if fit["at_bounds"]:
        lines.append(f"  (on a bound: {', '.join(fit['at_bounds'])})")
    if step["prediction"]:
        pred = step["prediction"]
        lines.append(
            f"predicted {step['task']} for N={pred['n']:.4g}, D={pred['d']:.4g}: {pred['predicted']:.4f} "
            f"{_bracket(pred['interval'])} (loss {pred['loss']:.4f})"
        )
    if step["holdout"]:
        rows = [[r["loss"], *_error_cells(r), r["predicted_from_observed_loss"]] for r in step["holdout"]]
        headers = ["pred. loss", "held-out run", "predicted", "actual", "rel. error", "abs. error", "PI", "step 2 only"]
        lines.append(format_table(headers, rows))
    return "\n".join(lines)
