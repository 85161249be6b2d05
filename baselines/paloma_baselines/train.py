"""Train a Paloma baseline: one file that reads top to bottom as the training run.

    paloma baselines tokenize --config c4 --output /data/c4-tokens --tasks 64 --workers 16   # once, on CPUs
    accelerate launch --config_file baselines/accelerate/fsdp-1x8.yaml -m paloma_baselines.train \
        --config c4 --tokens /data/c4-tokens --output runs/c4                                # one node or many
    paloma train --config tiny --tokens tokens/ --tokenizer tok/ --output runs/tiny        # one process

The run: load the recipe, check every input (the launch, the output folder, the token files, the tokenizer,
an earlier checkpoint) before spending compute, build the model from the seed, then for each optimizer step:
set the LR from the schedule, take this process's share of the step's global batch (OLMo's order), accumulate
gradients over micro-batches, clip, update, log; checkpoint at the interval and at exit; finally export the
model in `transformers` format. A stopped run resumes exactly where it was: same data position, optimizer
state, RNG; its logs keep each step once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from paloma.errors import PalomaError
from paloma.eval.olmo import write_transformers
from paloma.io import atomic_write, check_output_dir, honour_umask, write_json
from paloma_baselines.config import Config, add_train_arguments, resolve_config
from paloma_baselines.data import (
    GlobalOrder,
    TokenFiles,
    check_tokenizer,
    check_tokens_match,
    load_tokenizer,
    open_tokens,
    steps_per_epoch,
)
from paloma_baselines.export import checkpoint_weights, load_export, training_record
from paloma_baselines.model import Transformer, count_parameters, flops_per_token, init_from_larger
from paloma_baselines.optim import build_optimizer, lion_class
from paloma_baselines.schedule import lr_at, schedule_fraction

STATE_FILE = "trainer_state.json"
RUN_FILES = ("config.json", "log.jsonl", "order.jsonl", "eval.jsonl", "checkpoints", "train_data", "model")

# Dense bf16 peak FLOP/s per device, for the MFU estimate (matched against the CUDA device name).
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "A10G": 125e12, "L40S": 362e12, "L4": 121e12}


@dataclass
class TrainResult:
    """What a finished run returns to Python callers (e.g. `paloma demo`)."""

    output_dir: Path
    export_dir: Path | None
    steps: int
    tokens: int
    final_loss: float
    metrics: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------ the launch


def check_launch() -> None:
    """Refuse a multi-process CPU launch that accelerate would run as N independent single-process runs.

    torchrun (or `accelerate launch --multi_gpu`) sets WORLD_SIZE; on a machine without CUDA, accelerate
    joins the processes into one gloo job only when ACCELERATE_USE_CPU is true. Otherwise every process
    would train alone on the same folder.
    """
    from accelerate.utils import parse_flag_from_env

    world = int(os.environ.get("WORLD_SIZE") or 1)
    try:
        use_cpu = parse_flag_from_env("ACCELERATE_USE_CPU")
    except ValueError:
        raise PalomaError(f"ACCELERATE_USE_CPU={os.environ['ACCELERATE_USE_CPU']!r}: expected true or false") from None
    if world > 1 and not torch.cuda.is_available() and not use_cpu:
        raise PalomaError(
            f"launched as {world} processes without CUDA and without ACCELERATE_USE_CPU=true, so each would train "
            f"alone on the same folder: run `ACCELERATE_USE_CPU=true torchrun --nproc_per_node {world} -m "
            "paloma_baselines.train ...` for one gloo job on CPU"
        )


def fsdp_plugin(mixed_precision: str):
    """Under an FSDP launch config, OLMo's FSDP precision ("mixed"): parameters gathered and computed in the
    run's low precision, gradients reduced in fp32 (accelerate's default would reduce them in bf16).

    FSDP2 would also cast the model's output to the low precision; the output is the summed loss, kept fp32.
    """
    from accelerate.utils import FullyShardedDataParallelPlugin, parse_flag_from_env

    if not parse_flag_from_env("ACCELERATE_USE_FSDP"):
        return None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "no": torch.float32}[mixed_precision]
    policy = {"param_dtype": dtype, "reduce_dtype": torch.float32}
    if int(os.environ.get("FSDP_VERSION") or 1) == 2:
        policy["output_dtype"] = torch.float32
    else:
        policy["buffer_dtype"] = dtype
    return FullyShardedDataParallelPlugin(mixed_precision_policy=policy)


def is_fsdp(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


# ------------------------------------------------------------------------------------------ checkpoints


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Complete checkpoints (those with a trainer state), oldest first."""
    found = [p for p in (output_dir / "checkpoints").glob("step-*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def check_resumable(checkpoint: Path, config: Config, tokens: TokenFiles) -> dict:
    """The checkpoint's trainer state, if it was written under the same recipe and data; else a clear error."""
    state = json.loads((checkpoint / STATE_FILE).read_text())
    start_over = "or pass --overwrite to start over (or choose a new --output)"
    if state["config_fingerprint"] != config.fingerprint():
        raise PalomaError(
            f"{checkpoint}: written by config {state['config_name']!r} with a different recipe "
            f"(fingerprint {state['config_fingerprint']}, this run {config.fingerprint()}); rerun with that "
            f"config to continue it, {start_over}"
        )
    if state["data"]["digest"] != tokens.digest():
        raise PalomaError(
            f"{checkpoint}: trained on other token files (digest {state['data']['digest']}, these "
            f"{tokens.digest()}); rerun with --tokens {state['data']['tokens']} to continue it, {start_over}"
        )
    return state


def claim_run_folder(output_dir: Path) -> None:
    """A run goes into a new or empty folder, or one holding a run (to resume or, with --overwrite, replace)."""
    is_run = any((output_dir / name).exists() for name in ("config.json", "checkpoints"))
    if output_dir.is_dir() and any(output_dir.iterdir()) and not is_run:
        raise PalomaError(f"{output_dir}: exists, is not empty and is not a training run; choose a new --output")


def clear_run_folder(output_dir: Path) -> None:
    """--overwrite: remove what a run writes (and nothing else) before starting over."""
    for name in RUN_FILES:
        path = output_dir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def save_checkpoint(accelerator, output_dir: Path, state: dict, keep: int | None) -> Path:
    """Save model, optimizer and RNG states atomically: written to a staging folder, then renamed.

    Every process writes into the same staging folder (FSDP writes one shard per process), so its name is
    fixed rather than random; a killed save's leftover is removed by the next one.
    """
    final = output_dir / "checkpoints" / f"step-{state['step']:07d}"
    staging = final.with_name(f".{final.name}.partial")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(staging / STATE_FILE, state)
        honour_umask(staging)
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        for old in checkpoint_dirs(output_dir)[: -keep or None] if keep else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return final


def parse_layers(spec: str, available: int) -> list[int]:
    """`0-3,12-15` or `0,2,4` → layer indices (each < available)."""
    layers: list[int] = []
    for part in spec.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", part)
        if not match:
            raise PalomaError(f"--keep-layers {spec!r}: expected indices and ranges like 0-3,12-15")
        first, last = int(match[1]), int(match[2] or match[1])
        layers.extend(range(first, last + 1))
    if not layers or max(layers) >= available:
        raise PalomaError(f"--keep-layers {spec!r}: the source model has layers 0-{available - 1}")
    return layers


def load_source_weights(path: Path) -> dict[str, torch.Tensor]:
    """Weights of a larger model: an export folder, a run folder (its latest checkpoint) or a checkpoint
    (saved by DDP or one process, or by FSDP, sharded or full)."""
    if not path.exists():
        raise PalomaError(f"--init-from {path}: no such folder")
    if (path / "config.json").is_file() and not (path / "checkpoints").is_dir():
        return load_export(path)[1]
    if (path / "checkpoints").is_dir():
        if not checkpoint_dirs(path):
            raise PalomaError(f"--init-from {path}: the run has no complete checkpoint")
        path = checkpoint_dirs(path)[-1]
    return checkpoint_weights(path, what="--init-from")


def truncate_logs(output_dir: Path, step: int) -> None:
    """Keep the log lines of steps 1..step: a resumed run replays later steps, which then log again.

    A line cut short by a kill is dropped too.
    """
    for name in ("log.jsonl", "order.jsonl", "eval.jsonl"):
        path = output_dir / name
        if not path.is_file():
            continue
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError, TypeError, KeyError):
                if json.loads(line)["step"] <= step:
                    kept.append(line + "\n")
        with atomic_write(path) as handle:
            handle.writelines(kept)


# ------------------------------------------------------------------------------------------ logging


class Logger:
    """Log lines to stdout, records to <output>/log.jsonl, and to any tracker accelerate was given."""

    def __init__(self, accelerator, output_dir: Path, quiet: bool) -> None:
        self.accelerator, self.path, self.quiet = accelerator, output_dir / "log.jsonl", quiet

    def log(self, record: dict) -> None:
        if not self.accelerator.is_main_process:
            return
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.accelerator.trackers:
            self.accelerator.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=record["step"])
        if not self.quiet:
            parts = [f"step {record['step']}"]
            parts += [f"loss {record['loss']:.4f}", f"lr {record['lr']:.2e}", f"grad_norm {record['grad_norm']:.3f}"]
            parts += [f"tok/s {record['tokens_per_second']:,.0f}"]
            if record.get("mfu") is not None:
                parts.append(f"mfu {100 * record['mfu']:.1f}%")
            tqdm.write(" | ".join(parts))

    def log_eval(self, record: dict) -> None:
        """A held-out evaluation: a line of <output>/eval.jsonl, and its numbers to the trackers."""
        if not self.accelerator.is_main_process:
            return
        with (self.path.parent / "eval.jsonl").open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        if self.accelerator.trackers:
            self.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=record["step"])
        if not self.quiet:
            tqdm.write(f"step {record['step']} | held-out loss {record['eval_loss']:.4f}")


@contextlib.contextmanager
def stop_on_signals() -> Iterator[list[str]]:
    """A list that SIGINT/SIGTERM append to: the loop finishes its step, checkpoints and exits cleanly.

    A second Ctrl-C interrupts at once. Outside the main thread (e.g. called from a worker) signals are
    left alone.
    """
    stop: list[str] = []

    def handler(signum: int, frame: object) -> None:
        if stop and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.append(signal.Signals(signum).name)

    previous = {}
    with contextlib.suppress(ValueError):
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def peak_flops(config: Config, device: torch.device) -> float | None:
    if config.train.peak_flops:
        return config.train.peak_flops
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((v for k, v in PEAK_FLOPS.items() if k in name), None)
    return None


@dataclass
class Inputs:
    """Everything a run reads before it starts, checked: a run that would fail fails here, before any compute."""

    data: TokenFiles
    tokenizer: object
    evaluator: object | None  # paloma.Evaluator of --eval-corpus: documents read, tokenized and planned once
    checkpoint: Path | None  # the checkpoint to resume from
    resume_state: dict | None
    source_weights: dict[str, torch.Tensor] | None  # --init-from
    keep: list[int]  # --keep-layers


def check_inputs(
    config: Config,
    output_dir: Path,
    init_from,
    keep_layers: str | None,
    eval_corpus,
    overwrite: bool,
    eval_max_tokens: int | None = None,
) -> Inputs:
    """The launch, the output folder, the token files, the tokenizer, an earlier checkpoint, --init-from."""
    check_launch()
    world = int(os.environ.get("WORLD_SIZE") or 1)
    if config.train.global_batch_size % world:
        raise PalomaError(f"train.global_batch_size ({config.train.global_batch_size}) is not divisible by {world}")
    if keep_layers is not None and init_from is None:
        raise PalomaError("--keep-layers needs --init-from (the larger model whose layers to keep)")
    lion_class()  # the optimizer's package is present
    given = [*(config.data.tokens or "").split(","), init_from, eval_corpus, config.data.tokenizer]
    check_output_dir(output_dir, [Path(p).expanduser() for p in given if p and Path(p).expanduser().exists()])
    claim_run_folder(output_dir)
    data = open_tokens(config)
    steps_per_epoch(len(data), config.train.global_batch_size, world)
    tokenizer = load_tokenizer(config.data.tokenizer)
    check_tokenizer(tokenizer, config)
    evaluator = held_out_evaluator(eval_corpus, tokenizer, config, eval_max_tokens) if eval_corpus else None
    check_tokens_match(data, tokenizer, config)
    checkpoints = [] if overwrite else checkpoint_dirs(output_dir)
    resume_state = check_resumable(checkpoints[-1], config, data) if checkpoints else None
    source_weights, keep = None, []
    if init_from is not None and resume_state is None:
        source_weights = load_source_weights(Path(init_from))
        n_source = 1 + max(int(k.split(".")[2]) for k in source_weights if k.startswith("transformer.blocks."))
        keep = parse_layers(keep_layers, n_source) if keep_layers else list(range(n_source))
    checkpoint = checkpoints[-1] if checkpoints else None
    return Inputs(data, tokenizer, evaluator, checkpoint, resume_state, source_weights, keep)


def held_out_evaluator(corpus: str, tokenizer, config: Config, max_tokens_per_domain: int | None):
    """The held-out documents under Paloma's protocol with windows of train.seq_len: any data `paloma eval
    --data` reads (a Paloma folder, a hub dataset, JSONL/Parquet; generic files are the source "heldout")."""
    from paloma import Evaluator
    from paloma.eval.data import DataSpec

    spec = DataSpec(path=str(corpus), text_field=config.data.text_field, default_source="heldout",
                    max_tokens_per_domain=max_tokens_per_domain)  # fmt: skip
    try:
        return Evaluator(spec, tokenizer, max_length=config.train.seq_len, registry="none", cache_dir=None)
    except PalomaError as err:
        raise PalomaError(f"--eval-corpus {corpus}: {err}") from None


def log_held_out(evaluator, model, logger: Logger, output_dir: Path, step: int) -> float:
    """Score the held-out documents (every process its share), log `eval/paloma/<source>/bpb`, … and the mean
    NLL per token at `step`, keep the results as eval_results.json; returns that mean."""
    results = evaluator.evaluate(model)
    domains = [m for entry in results["sources"].values() for m in entry["domains"].values()]
    loss = sum(m["nll_sum"] for m in domains) / max(1, sum(m["tokens"] for m in domains))
    logger.log_eval({"step": step, "eval_loss": loss, **results.scalars(prefix="eval/paloma")})
    if logger.accelerator.is_main_process:
        write_json(output_dir / "eval_results.json", {**results, "step": step})
    return loss


# ------------------------------------------------------------------------------------------ the run


def train(
    config: Config | str,
    *,
    output_dir: str | Path,
    tokens: str | None = None,
    tokenizer: str | None = None,
    max_steps: int | None = None,
    overrides: dict | list[str] | None = None,
    init_from: str | Path | None = None,
    keep_layers: str | None = None,
    eval_corpus: str | None = None,
    eval_every: int | None = None,
    eval_max_tokens_per_domain: int | None = None,
    export: bool = True,
    overwrite: bool = False,
    quiet: bool = False,
) -> TrainResult:
    """Train (or resume) a run in `output_dir` and export it; the Python API behind both CLIs.

    `tokens`, `tokenizer` and `max_steps` are shortcuts for the config fields data.tokens, data.tokenizer
    and train.max_steps; `overrides` sets any other field ({"train": {"seed": 1}} or ["train.seed=1"]).
    `eval_corpus` (what `paloma eval --data` reads) is scored by a `paloma.Evaluator` under Paloma's protocol with
    windows of train.seq_len, every `eval_every` steps and at the end (optionally a subset of at most
    `eval_max_tokens_per_domain` tokens a domain): each evaluation is a line of <output>/eval.jsonl and goes to
    the trackers, the last one's results to <output>/eval_results.json, its mean NLL per token to
    metrics["eval_loss"].
    `overwrite` starts over in a folder that holds a run; without it the run there is resumed.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    # 1. The recipe, and every input checked before any compute is spent.
    config = resolve_config(config, overrides, data_tokens=tokens, data_tokenizer=tokenizer, train_max_steps=max_steps)
    output_dir = Path(output_dir)
    if eval_every is not None and eval_every < 1:
        raise PalomaError(f"--eval-every must be ≥ 1, got {eval_every}")
    inputs = check_inputs(
        config, output_dir, init_from, keep_layers, eval_corpus, overwrite, eval_max_tokens_per_domain
    )
    data, tok, resume_state = inputs.data, inputs.tokenizer, inputs.resume_state
    t, m = config.train, config.model

    # 2. Processes, precision, seed. On CPU, mixed precision is off (bf16 autocast there is slow and lossy).
    precision = t.mixed_precision if torch.cuda.is_available() else "no"
    trackers = [name.strip() for name in t.log_with.split(",") if name.strip()]
    accelerator = Accelerator(
        mixed_precision=precision, fsdp_plugin=fsdp_plugin(precision), log_with=trackers or None,
        project_dir=str(output_dir),
    )  # fmt: skip
    world, rank = accelerator.num_processes, accelerator.process_index
    if world != int(os.environ.get("WORLD_SIZE") or 1):
        raise PalomaError(f"launched as {os.environ['WORLD_SIZE']} processes, but accelerate joined {world}")
    if accelerator.is_main_process:
        if overwrite:
            clear_run_folder(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json(output_dir / "config.json", config.to_dict())
    accelerator.wait_for_everyone()
    if trackers:
        accelerator.init_trackers(config.name or "baseline", config={"fingerprint": config.fingerprint()})
    set_seed(t.seed)

    # 3. The model: from the seed, or the kept layers of a larger model (teacher-free distillation).
    model = Transformer(m)
    if inputs.source_weights is not None:
        try:
            init_from_larger(model, inputs.source_weights, inputs.keep)
        except (KeyError, ValueError) as err:
            raise PalomaError(f"--init-from {init_from}: {err}") from None
    model.activation_checkpointing = t.activation_checkpointing
    if t.compile:
        for block in model.transformer.blocks:
            block.compile()

    # 4. The data order: OLMo's permutation of the instances, one file per epoch that every process maps.
    order = GlobalOrder(
        len(data), t.seed, t.global_batch_size, world, work_dir=output_dir / "train_data",
        is_main=accelerator.is_main_process, barrier=accelerator.wait_for_everyone,
    )  # fmt: skip

    # 5. Optimizer, prepared in one call with the model (so FSDP can re-map its parameters), then a checkpoint.
    model, optimizer = accelerator.prepare(model, build_optimizer(model, config.optimizer))
    step = 0
    if resume_state is not None:
        accelerator.load_state(str(inputs.checkpoint))
        step = resume_state["step"]
        if not quiet and accelerator.is_main_process:
            print(f"resuming from {inputs.checkpoint} (step {step})", flush=True)
    if accelerator.is_main_process:
        truncate_logs(output_dir, step)

    params = count_parameters(m)
    tokens_per_step = t.global_batch_size * t.seq_len
    targets_per_step = t.global_batch_size * (t.seq_len - 1)  # every position but the first is predicted
    flops_token, peak = flops_per_token(m, t.seq_len), peak_flops(config, accelerator.device)
    logger = Logger(accelerator, output_dir, quiet)
    # DDP: gradients of all but the last micro-batch are accumulated locally (fp32) and all-reduced once.
    # FSDP: every micro-batch's gradients are reduce-scattered (in fp32) into the fp32 shards, as OLMo does;
    # skipping that sync would accumulate full unsharded gradients in the parameters' low precision.
    defer_sync = not is_fsdp(accelerator)

    def trainer_state() -> dict:
        return {
            "step": step,
            "tokens": step * tokens_per_step,
            "epoch": order.epoch_of(step + 1),
            "world_size": world,
            "config_name": config.name,
            "config_fingerprint": config.fingerprint(),
            "data": data.summary(),
            "schedule_fraction": schedule_fraction(step, config.schedule),
            "init_from": str(init_from) if init_from else None,
            "keep_layers": keep_layers,
        }

    # 6. The loop. `step` counts completed optimizer updates; update number step+1 is being computed.
    mine = t.global_batch_size // world
    loss_sum = torch.zeros((), device=accelerator.device)
    last_loss, window_start, window_steps = math.nan, time.perf_counter(), 0
    bar = tqdm(total=t.max_steps, initial=step, unit="step", disable=quiet or not accelerator.is_main_process)
    with stop_on_signals() as stop, bar:
        while step < t.max_steps and not stop:
            lr = lr_at(step + 1, config.optimizer, config.schedule)
            for group in optimizer.param_groups:
                group["lr"] = lr
            ids = order.step_instances(step + 1, rank)
            if t.record_order and accelerator.is_main_process:
                with (output_dir / "order.jsonl").open("a") as handle:
                    handle.write(json.dumps({"step": step + 1, "instances": order.global_batch(step + 1)}) + "\n")
            model.train()
            loss_sum.zero_()
            chunks = [ids[i : i + t.micro_batch_size] for i in range(0, mine, t.micro_batch_size)]
            for k, chunk in enumerate(chunks):
                batch = data.batch(chunk).to(accelerator.device)
                sync = k == len(chunks) - 1 or not defer_sync
                with contextlib.nullcontext() if sync else accelerator.no_sync(model), accelerator.autocast():
                    nll = model(batch[:, :-1], targets=batch[:, 1:], loss_chunk_tokens=t.loss_chunk_tokens)
                # The mean over the GLOBAL batch; DDP and FSDP average gradients over processes, hence W.
                accelerator.backward(nll * world / targets_per_step)
                loss_sum += nll.detach()
            grad_norm = accelerator.clip_grad_norm_(model.parameters(), config.optimizer.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            window_steps += 1
            bar.update(1)

            if step % t.log_interval == 0 or step == t.max_steps:
                last_loss = (accelerator.reduce(loss_sum, "sum") / targets_per_step).item()
                tps = window_steps * tokens_per_step / (time.perf_counter() - window_start)
                logger.log(
                    {"step": step, "loss": last_loss, "lr": lr, "grad_norm": float(grad_norm),
                     "tokens": step * tokens_per_step, "tokens_per_second": tps,
                     "mfu": flops_token * tps / world / peak if peak else None,
                     "schedule_fraction": schedule_fraction(step, config.schedule), "world_size": world}
                )  # fmt: skip
                window_start, window_steps = time.perf_counter(), 0
            if inputs.evaluator is not None and eval_every and step % eval_every == 0 and step < t.max_steps:
                log_held_out(inputs.evaluator, model, logger, output_dir, step)
            if step % t.checkpoint_interval == 0:
                save_checkpoint(accelerator, output_dir, trainer_state(), t.keep_checkpoints)
    latest = checkpoint_dirs(output_dir)
    if not latest or latest[-1].name != f"step-{step:07d}":
        save_checkpoint(accelerator, output_dir, trainer_state(), t.keep_checkpoints)
    if stop:
        print(f"stopped by {stop[0]} after step {step}; run the same command again to resume", file=sys.stderr)

    metrics = {"parameters": params.total, "non_embedding_parameters": params.non_embedding}
    if inputs.evaluator is not None and not stop:  # every process scores its share of the final model
        metrics["eval_loss"] = log_held_out(inputs.evaluator, model, logger, output_dir, step)
    state_dict = accelerator.get_state_dict(model)  # the full weights, gathered from all processes under FSDP

    # 7. Export in transformers format, with what `paloma submit` needs to know about the training.
    export_dir = None
    if export and accelerator.is_main_process and not stop:
        training = training_record(config, trainer_state(), tok, final_loss=last_loss)
        training["eval_loss"] = metrics.get("eval_loss")
        export_dir = write_transformers(state_dict, m, output_dir / "model", tok, training)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(
        output_dir=output_dir,
        export_dir=export_dir,
        steps=step,
        tokens=step * tokens_per_step,
        final_loss=last_loss,
        metrics=metrics,
    )


# ------------------------------------------------------------------------------------------ command line


def run_from_args(args: argparse.Namespace) -> int:
    result = train(
        args.config,
        output_dir=args.output,
        tokens=args.tokens,
        tokenizer=args.tokenizer,
        max_steps=args.max_steps,
        overrides=args.set,
        init_from=args.init_from,
        keep_layers=args.keep_layers,
        eval_corpus=args.eval_corpus,
        eval_every=args.eval_every,
        eval_max_tokens_per_domain=args.eval_max_tokens_per_domain,
        export=not args.no_export,
        overwrite=args.overwrite,
        quiet=args.quiet,
    )
    if result.export_dir is not None:
        print(f"trained {result.steps} steps ({result.tokens:,} tokens), final loss {result.final_loss:.4f}")
        print(f"exported to {result.export_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="paloma_baselines.train", description=__doc__.split("\n\n")[0])
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except PalomaError as err:
        sys.stderr.write(f"paloma_baselines.train: error: {err}\n")  # one write: lines of two processes never mix
        return 2


if __name__ == "__main__":
    sys.exit(main())
