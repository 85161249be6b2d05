"""`paloma eval`: per-domain perplexity of a causal LM on Paloma (or any JSONL/Parquet data)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from paloma.commands.args import non_negative_int, positive_float, positive_int
from paloma.eval.data import LAYOUTS, SPLITS, DataSpec
from paloma.eval.tokens import DEFAULT_CACHE
from paloma.protocol import PRESETS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate a model per domain",
        description="Score every document of every selected domain under the Paloma protocol "
        "(each document alone, one prefix token, disjoint windows of --max-length, every token scored once).",
    )
    model = p.add_argument_group("model")
    model.add_argument("--model", required=True, help="local folder or hub id of a transformers causal LM")
    model.add_argument("--revision", help="model revision (hub branch, tag or commit)")
    model.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run the model's own code from the hub (never needed for old OLMo hf_olmo checkpoints: they are "
        "converted natively)",
    )
    model.add_argument("--token", default=os.environ.get("HF_TOKEN"), help="hub token (default: $HF_TOKEN)")
    model.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16", "float64"])
    model.add_argument("--device", help="cpu, cuda, cuda:1 … (default: cuda when available; set by accelerate)")
    model.add_argument(
        "--model-args",
        metavar="K=V,…",
        help="passed to from_pretrained, as lm-eval's --model_args: attn_implementation=sdpa, device_map=auto "
        '(with offload_folder=DIR, max_memory={"0":"20GiB"}), quantization_config={"quant_method":…}, …',
    )
    model.add_argument("--peft", metavar="PATH", help="a PEFT adapter (folder or hub id) applied to the model")

    data = p.add_argument_group("data")
    data.add_argument(
        "--data",
        required=True,
        help="a local Paloma folder, a hub dataset id (allenai/paloma), or JSONL/Parquet files or folders",
    )
    data.add_argument("--data-revision", help="dataset revision on the hub")
    data.add_argument("--split", choices=list(SPLITS), help="Paloma layout: the <source>/<split>/ read (default: test)")
    data.add_argument(
        "--layout",
        default="auto",
        choices=list(LAYOUTS),
        help="auto: the Paloma layout, or one generic file; generic: every JSONL/Parquet file below --data",
    )
    data.add_argument("--sources", nargs="+", default=[], metavar="GLOB", help="sources to evaluate (globs)")
    data.add_argument("--domains", nargs="+", default=[], metavar="GLOB", help="domains (globs; or SOURCE/DOMAIN)")
    data.add_argument(
        "--max-documents-per-domain",
        "--limit",
        dest="limit",
        type=positive_int,
        metavar="N",
        help="a subset: at most N documents per domain, after a seeded shuffle (recorded in the protocol)",
    )
    data.add_argument(
        "--max-tokens-per-domain",
        type=positive_int,
        metavar="N",
        help="a subset: whole documents in the seeded order while a domain holds at most N tokens (at least one "
        "document; recorded in the protocol)",
    )
    data.add_argument("--seed", type=int, default=1234, help="seed of the subsets' shuffle")
    data.add_argument("--text-field", default="text")
    data.add_argument("--domain-field", default="subdomain", help="field naming the domain (generic data)")
    data.add_argument("--source-field", help="field naming the source (generic data)")
    data.add_argument("--source-name", help="source name for generic data without a source field")
    data.add_argument("--registry", default="paloma", help="registry name or JSON file; 'none' for no registry")

    protocol = p.add_argument_group("protocol")
    protocol.add_argument(
        "--preset",
        default="paloma",
        choices=list(PRESETS),
        help="paloma: the reference (EOS prefix); lm-eval-harness: its rolling log-likelihood",
    )
    protocol.add_argument("--prefix", help="bos, eos, bos-else-eos, none, or a token id (default: the preset's)")
    protocol.add_argument(
        "--max-length",
        type=positive_int,
        help="window length L (default: 2048 as the reference; lm-eval-harness preset: the model's own maximum)",
    )

    run = p.add_argument_group("run")
    run.add_argument("--output", type=Path, help="folder for records and results")
    run.add_argument("--batch-tokens", type=positive_int, help="tokens per forward pass (default: from free memory)")
    run.add_argument("--resume", action="store_true", help="continue a killed run in --output")
    run.add_argument("--overwrite", action="store_true", help="discard an earlier run in --output")
    run.add_argument(
        "--bootstrap", type=non_negative_int, default=0, metavar="N", help="bootstrap confidence intervals, N samples"
    )
    run.add_argument("--bootstrap-seed", type=non_negative_int, default=0)
    run.add_argument("--dry-run", action="store_true", help="plan only: counts, windows, padding; no weights")
    run.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help="token cache (default: %(default)s)")
    run.add_argument("--no-cache", action="store_true", help="do not read or write the token cache")
    run.add_argument("--token-stats", action="store_true", help="also count loss per token type and domain")
    run.add_argument("--flush-seconds", type=positive_float, default=10.0, help="how often records are made durable")
    run.add_argument("--no-progress", action="store_true")
    for spelling in LM_EVAL_SPELLINGS:
        p.add_argument(spelling, nargs="?", action=LmEvalSpelling, help=argparse.SUPPRESS)

    report = p.add_argument_group("reporting (besides results.json)")
    report.add_argument(
        "--lm-eval-results",
        action="store_true",
        help="also write lm_eval_results.json: lm-evaluation-harness's results layout, one paloma_<source> task "
        "each (bits_per_byte,none, byte_perplexity,none, word_perplexity,none)",
    )
    report.add_argument("--wandb", metavar="PROJECT", help="log the scalars to this Weights & Biases project")
    report.add_argument("--wandb-run", metavar="NAME", help="the W&B run's name (default: the model)")
    report.add_argument("--tensorboard", metavar="DIR", type=Path, help="log the scalars as TensorBoard events in DIR")
    report.add_argument("--step", type=non_negative_int, default=0, help="the step the logged values belong to")
    p.set_defaults(func=eval_command)

    agg = subparsers.add_parser("aggregate", help="recompute results of a finished eval run from its records")
    agg.add_argument("output", type=Path, help="an eval output folder")
    agg.add_argument("--registry", default="paloma")
    agg.add_argument("--bootstrap", type=non_negative_int, default=0, metavar="N")
    agg.add_argument("--bootstrap-seed", type=non_negative_int, default=0)
    agg.set_defaults(func=run_aggregate)


# lm-evaluation-harness's options that users type out of habit, and what paloma calls them.
LM_EVAL_SPELLINGS = {
    "--model_args": "pass the model as --model PATH_OR_HUB_ID (lm-eval's pretrained=…) and other from_pretrained "
    "arguments as --model-args K=V,…",
    "--output_path": "pass --output FOLDER (records, results.json and domains.csv are written there)",
    "--batch_size": "pass --batch-tokens N (tokens per forward pass); without it the batch is sized from free "
    "memory, as lm-eval's --batch_size auto",
    "--tasks": "pass --data allenai/paloma{sources} (every Paloma domain is scored unless --sources/--domains "
    "choose a part)",
    "--log_samples": "per-document records are always written to OUTPUT/records/ (no option needed)",
    "--num_fewshot": "perplexity has no few-shot examples: drop the option",
}


class LmEvalSpelling(argparse.Action):
    """Answer an lm-evaluation-harness spelling with paloma's option, in one line (not "unrecognized")."""

    def __call__(self, parser, namespace, values, option_string=None):
        hint = LM_EVAL_SPELLINGS[option_string]
        if option_string == "--tasks":
            sources = [t.removeprefix("paloma_") for t in str(values or "").split(",") if t.startswith("paloma_")]
            hint = hint.format(sources=f" --sources {' '.join(sources)}" if sources else "")
        parser.error(f"{option_string} is lm-evaluation-harness's option; {hint}")


def eval_command(args: argparse.Namespace) -> int:
    from paloma.eval.evaluate import EvalConfig, evaluate
    from paloma.eval.model import parse_model_args
    from paloma.eval.report import check_available
    from paloma.eval.results import format_results

    check_available(wandb=bool(args.wandb), tensorboard=args.tensorboard is not None)
    if (args.lm_eval_results or args.wandb or args.tensorboard) and (args.dry_run or args.output is None):
        from paloma.errors import PalomaError

        raise PalomaError("--lm-eval-results, --wandb and --tensorboard report a run: pass --output, not --dry-run")
    spec = DataSpec(
        path=args.data,
        split=args.split,
        revision=args.data_revision,
        sources=args.sources,
        domains=args.domains,
        limit=args.limit,
        seed=args.seed,
        max_tokens_per_domain=args.max_tokens_per_domain,
        text_field=args.text_field,
        domain_field=args.domain_field,
        source_field=args.source_field,
        default_source=args.source_name,
        token=args.token,
        layout=args.layout,
    )
    config = EvalConfig(
        model=args.model,
        data=spec,
        output=args.output,
        revision=args.revision,
        trust_remote_code=args.trust_remote_code,
        token=args.token,
        preset=args.preset,
        prefix=args.prefix,
        max_length=args.max_length,
        dtype=args.dtype,
        device=args.device,
        batch_tokens=args.batch_tokens,
        resume=args.resume,
        overwrite=args.overwrite,
        bootstrap=args.bootstrap,
        bootstrap_seed=args.bootstrap_seed,
        dry_run=args.dry_run,
        cache_dir=None if args.no_cache else args.cache_dir,
        registry=args.registry,
        token_stats=args.token_stats,
        flush_seconds=args.flush_seconds,
        progress=not args.no_progress,
        model_args=parse_model_args(args.model_args),
        peft=args.peft,
    )
    results = evaluate(config)
    if args.dry_run:
        print(format_dry_run(results))
    elif results:
        print(format_results(results))
        speed = results.get("speed") or {}
        if speed.get("tokens_per_second"):
            print(
                f"\n{speed['scored_tokens']:,} tokens in {speed['seconds']:.1f}s: "
                f"{speed['tokens_per_second']:,.0f} tokens/s, padding efficiency {speed['padding_efficiency']:.3f}; "
                f"results in {args.output}/results.json"
            )
        report(results, args)
    return 0


def report(results: dict, args: argparse.Namespace) -> None:
    """The reporting options: lm-eval's results layout, W&B, TensorBoard (main process only: results are {} else)."""
    from paloma.eval import report as reports

    if args.lm_eval_results:
        reports.write_lm_eval_results(args.output / "lm_eval_results.json", results, args.model)
    if args.wandb:
        reports.log_wandb(results, project=args.wandb, name=args.wandb_run or args.model, step=args.step)
    if args.tensorboard:
        reports.log_tensorboard(results, args.tensorboard, step=args.step)


def format_dry_run(plan: dict) -> str:
    from paloma.table import format_table

    rows = [[s, e["domains"], e["documents"], e["tokens"], e["windows"]] for s, e in plan["sources"].items()]
    table = format_table(["source", "domains", "documents", "tokens", "windows"], rows)
    return "\n".join(
        [
            table,
            "",
            f"documents {plan['documents']:,} ({plan['empty_documents']:,} empty), scored tokens "
            f"{plan['scored_tokens']:,}, windows {plan['windows']:,}, batches {plan['batches']:,}",
            f"forward tokens {plan['forward_tokens']:,} (batch budget {plan['batch_tokens']:,}), "
            f"padding efficiency {plan['padding_efficiency']:.4f}",
            "protocol: " + json.dumps(plan["protocol"]),
        ]
    )


def run_aggregate(args: argparse.Namespace) -> int:
    from paloma.eval.evaluate import reaggregate
    from paloma.eval.results import format_results

    print(format_results(reaggregate(args.output, args.registry, args.bootstrap, args.bootstrap_seed)))
    return 0
