"""`paloma ladder fit RESULTS…`: fit L(N, D) = E + A/N^α + B/D^β to a ladder of eval runs, per target."""

from __future__ import annotations

import argparse
import csv
import math
from pathlib import Path

from tqdm import tqdm

from paloma.analysis.ladder import fit_runs
from paloma.analysis.ladder_chart import write_ladder_outputs
from paloma.analysis.runs import load_run
from paloma.errors import PalomaError
from paloma.registry import load_registry
from paloma.table import format_table


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("ladder", help="scaling-law fits over a ladder of eval runs")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    fit = actions.add_parser(
        "fit",
        help="fit L(N, D) = E + A/N^α + B/D^β per domain, per source and for the suite",
        description="Fit L(N, D) = E + A/N^alpha + B/D^beta (Huber loss on log residuals, L-BFGS-B) to eval runs "
        "of models of several sizes N and training tokens D; report fit quality, leave-one-out error and "
        "optionally a prediction for a target model.",
    )
    fit.add_argument("runs", nargs="+", type=Path, help="eval output folders (or results.json files)")
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
        "--metric", choices=["loss", "bpb"], default="loss", help="loss in nats per token (default) or bits per byte"
    )
    fit.add_argument(
        "--levels", default="suite,source,domain", help="comma-separated targets: suite, source, domain (default all)"
    )
    fit.add_argument("--predict", nargs=2, type=float, metavar=("N", "D"), help="predict the loss of a model")
    fit.add_argument("--no-loo", action="store_true", help="skip leave-one-out refits (faster)")
    fit.add_argument("--jobs", type=int, default=1, help="fit targets in this many processes (default 1)")
    fit.add_argument("--output", type=Path, help="folder for fits.json, fits.csv and ladder.svg")
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


def run_fit(args: argparse.Namespace) -> int:
    levels = [level.strip() for level in args.levels.split(",") if level.strip()]
    unknown = set(levels) - {"suite", "source", "domain"}
    if unknown:
        raise PalomaError(f"--levels: unknown level {sorted(unknown)[0]!r} (use suite, source, domain)")
    runs = [load_run(path) for path in args.runs]
    tokens = read_tokens_csv(args.tokens) if args.tokens else None
    with tqdm(desc="fitting", unit="target", leave=False, disable=None) as bar:
        ladder = fit_runs(
            runs,
            tokens,
            parameters=args.parameters,
            metric=args.metric,
            levels=levels,
            loo=not args.no_loo,
            predict=tuple(args.predict) if args.predict else None,
            registry=load_registry(),
            progress=bar.update,
            jobs=args.jobs,
        )
    print(render(ladder))
    if args.output:
        write_ladder_outputs(ladder, args.output)
        print(f"\nwrote fits.json, fits.csv and ladder.svg to {args.output}")
    return 0


def render(ladder: dict, max_rows: int = 40) -> str:
    """Points, then one row per target (suite and sources first), then a note on what was left out."""
    lines = [f"{len(ladder['points'])} runs; L in {ladder['unit']}; N = {ladder['parameters']} parameters"]
    lines.append(
        format_table(["run", "N", "D", "D/N"], [[p["name"], p["n"], p["d"], p["d"] / p["n"]] for p in ladder["points"]])
    )
    headers = ["target", "E", "A", "α", "B", "β", "fit rmse (log)", "LOO mean |rel|", "LOO max |rel|"]
    if ladder["predict"]:
        headers.append("predicted")
        if ladder["metric"] == "loss":
            headers.append("predicted ppl")
    rows = []
    for fit in ladder["fits"][:max_rows]:
        law = fit["law"]
        row = [fit["target"], law["E"], law["A"], law["alpha"], law["B"], law["beta"], fit["rmse_log"]]
        row += [fit.get("loo_mean_abs_rel_error"), fit.get("loo_max_abs_rel_error")]
        if ladder["predict"]:
            row.append(fit["prediction"]["loss"])
            if ladder["metric"] == "loss":
                row.append(math.exp(fit["prediction"]["loss"]))
        rows.append(row)
    lines += ["", format_table(headers, rows)]
    if len(ladder["fits"]) > max_rows:
        lines.append(f"... {len(ladder['fits']) - max_rows} more targets in fits.json / fits.csv")
    if ladder["skipped_targets"]:
        lines.append(f"{len(ladder['skipped_targets'])} targets not in every run were not fitted")
    return "\n".join(lines)
