"""Train a Paloma baseline: one file that reads top to bottom as the training run.

    accelerate launch -m baselines.train --config c4 --output runs/c4          # one node or many
    paloma train --config tiny --corpus docs.jsonl --output runs/tiny             # one process, in-process

The run: load the recipe, check every input (corpus, tokenizer, decontamination index, an earlier
checkpoint) before spending compute, build the model from the seed, tokenize and pack the corpus once,
then for each optimizer step: set the LR from the schedule, take this process's share of the step's
global batch, accumulate gradients over micro-batches, clip, update, log; checkpoint at the interval
and at exit; finally export the model in `transformers` format. A stopped run resumes exactly where it
was: same data position, optimizer state, RNG.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import re
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from baselines.config import (
    Config,
    add_train_arguments,
    config_from_dict,
    load_config,
    merge_overrides,
    parse_overrides,
)
from baselines.data import (
    GlobalOrder,
    check_tokenizer,
    load_decontamination,
    load_tokenizer,
    local_files,
    open_corpus,
    prepare_data,
)
from baselines.evaluate import evaluate_texts
from baselines.export import export_model, load_export, training_record
from baselines.model import Transformer, count_parameters, flops_per_token, init_from_larger
from baselines.optim import build_optimizer, lion_class
from baselines.schedule import lr_at, schedule_fraction
from paloma.errors import PalomaError
from paloma.io import atomic_write, write_json

STATE_FILE = "trainer_state.json"

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


# ------------------------------------------------------------------------------------------ checkpoints


def checkpoint_dirs(output_dir: Path) -> list[Path]:
    """Complete checkpoints (those with a trainer state), oldest first."""
    found = [p for p in (output_dir / "checkpoints").glob("step-*") if (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def check_resumable(checkpoint: Path, config: Config) -> dict:
    """The checkpoint's trainer state, if it was written under the same recipe; otherwise a clear error."""
    state = json.loads((checkpoint / STATE_FILE).read_text())
    if state["config_fingerprint"] != config.fingerprint():
        raise PalomaError(
            f"{checkpoint}: written by config {state['config_name']!r} with a different recipe "
            f"(fingerprint {state['config_fingerprint']}, this run {config.fingerprint()}); "
            "use a new --output folder or the same config"
        )
    return state


def save_checkpoint(accelerator, output_dir: Path, state: dict, keep: int | None) -> Path:
    """Save model, optimizer and RNG states atomically: written to a staging folder, then renamed."""
    final = output_dir / "checkpoints" / f"step-{state['step']:07d}"
    staging = final.with_name(f".{final.name}.partial")
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    if accelerator.is_main_process:
        write_json(staging / STATE_FILE, state)
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
    """Weights of a larger model: an export folder, a run folder (its latest checkpoint) or a checkpoint."""
    from safetensors.torch import load_file

    if (path / "config.json").is_file():
        return load_export(path)[1]
    if (path / "checkpoints").is_dir() and checkpoint_dirs(path):
        path = checkpoint_dirs(path)[-1]
    weights = path / "model.safetensors"
    if not weights.is_file():
        raise PalomaError(f"--init-from {path}: not an exported model, a run folder or a checkpoint")
    return load_file(weights)


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


def available_trackers() -> list[str]:
    """TensorBoard and W&B, where installed (accelerate does the rest)."""
    import importlib.util

    return [name for name in ("tensorboard", "wandb") if importlib.util.find_spec(name)]


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


# ------------------------------------------------------------------------------------------ the run


def train(
    config: Config | str,
    *,
    output_dir: str | Path,
    corpus: str | None = None,
    tokenizer: str | None = None,
    max_steps: int | None = None,
    overrides: dict | list[str] | None = None,
    init_from: str | Path | None = None,
    keep_layers: str | None = None,
    eval_corpus: str | None = None,
    export: bool = True,
    quiet: bool = False,
) -> TrainResult:
    """Train (or resume) a run in `output_dir` and export it; the Python API behind both CLIs.

    `corpus`, `tokenizer` and `max_steps` are shortcuts for the config fields data.corpus, data.tokenizer
    and train.max_steps; `overrides` sets any other field ({"train": {"seed": 1}} or ["train.seed=1"]).
    `eval_corpus` (local JSONL/Parquet) is scored at the end under Paloma's protocol with windows of
    train.seq_len; per-document results go to <output>/eval.jsonl and the mean to metrics["eval_loss"].
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    # 1. The recipe, and every input checked before any compute is spent.
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    shortcuts = {"data": {"corpus": corpus, "tokenizer": tokenizer}, "train": {"max_steps": max_steps}}
    for section, values in shortcuts.items():
        values = {k: v for k, v in values.items() if v is not None}
        overrides = merge_overrides(overrides or {}, {section: values} if values else {})
    if isinstance(config, Config):
        config = config_from_dict(merge_overrides(config.to_dict(), overrides), where=f"config {config.name}")
        config.validate()
    else:
        config = load_config(config, overrides)
    output_dir = Path(output_dir)
    lion_class()  # the optimizer's package is present
    read_texts = open_corpus(config.data)
    eval_texts = None
    if eval_corpus is not None:
        eval_data = replace(config.data, corpus=str(eval_corpus))
        if local_files(eval_data.corpus) is None:
            raise PalomaError(f"--eval-corpus {eval_corpus}: must be local JSONL or Parquet files")
        eval_texts = list(open_corpus(eval_data)())
    tok = load_tokenizer(config.data.tokenizer)
    check_tokenizer(tok, config)
    is_contaminated, decon_checksum = load_decontamination(config.data.decontamination_index)
    checkpoints = checkpoint_dirs(output_dir)
    resume_state = check_resumable(checkpoints[-1], config) if checkpoints else None
    source_weights = None
    if keep_layers is not None and init_from is None:
        raise PalomaError("--keep-layers needs --init-from (the larger model whose layers to keep)")
    if init_from is not None and resume_state is None:
        source_weights = load_source_weights(Path(init_from))
        n_source = 1 + max(int(k.split(".")[2]) for k in source_weights if k.startswith("transformer.blocks."))
        layers = parse_layers(keep_layers, n_source) if keep_layers else list(range(n_source))
    t, m = config.train, config.model

    # 2. Processes, precision, seed. On CPU, mixed precision is off (bf16 autocast there is slow and lossy).
    precision = t.mixed_precision if torch.cuda.is_available() else "no"
    trackers = available_trackers()
    accelerator = Accelerator(mixed_precision=precision, log_with=trackers or None, project_dir=str(output_dir))
    world, rank = accelerator.num_processes, accelerator.process_index
    if t.global_batch_size % world:
        raise PalomaError(f"train.global_batch_size ({t.global_batch_size}) is not divisible by {world} processes")
    output_dir.mkdir(parents=True, exist_ok=True)
    if accelerator.is_main_process:
        write_json(output_dir / "config.json", config.to_dict())
    if trackers:
        accelerator.init_trackers(config.name or "baseline", config={"fingerprint": config.fingerprint()})
    set_seed(t.seed)

    # 3. The model: from the seed, or the kept layers of a larger model (teacher-free distillation).
    model = Transformer(m)
    if source_weights is not None:
        try:
            init_from_larger(model, source_weights, layers)
        except (KeyError, ValueError) as err:
            raise PalomaError(f"--init-from {init_from}: {err}") from None

    # 4. The data: tokenized and packed once (by the main process), ordered by one global permutation.
    with accelerator.main_process_first():
        cache_dir = Path(config.data.cache_dir or output_dir / "data")
        data = prepare_data(config, cache_dir, read_texts, tok, is_contaminated, decon_checksum, progress=not quiet)
    order = GlobalOrder(len(data), t.seed)

    # 5. Optimizer, prepared in one call with the model (so FSDP can re-map its parameters), then a checkpoint.
    model, optimizer = accelerator.prepare(model, build_optimizer(model, config.optimizer))
    step = 0
    if resume_state is not None:
        accelerator.load_state(str(checkpoints[-1]))
        step = resume_state["step"]
        if not quiet and accelerator.is_main_process:
            print(f"resuming from {checkpoints[-1]} (step {step})", flush=True)

    params = count_parameters(m)
    tokens_per_step = t.global_batch_size * t.seq_len
    targets_per_step = t.global_batch_size * (t.seq_len - 1)  # every position but the first is predicted
    flops_token, peak = flops_per_token(m, t.seq_len), peak_flops(config, accelerator.device)
    logger = Logger(accelerator, output_dir, quiet)

    def trainer_state() -> dict:
        return {
            "step": step,
            "tokens": step * tokens_per_step,
            "config_name": config.name,
            "config_fingerprint": config.fingerprint(),
            "data_fingerprint": data.manifest["fingerprint"],
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
            ids = order.step_instances(step + 1, t.global_batch_size, rank, world)
            if t.record_order and accelerator.is_main_process:
                with (output_dir / "order.jsonl").open("a") as handle:
                    everyone = order.step_instances(step + 1, t.global_batch_size)
                    handle.write(json.dumps({"step": step + 1, "instances": everyone}) + "\n")
            model.train()
            loss_sum.zero_()
            chunks = [ids[i : i + t.micro_batch_size] for i in range(0, mine, t.micro_batch_size)]
            for k, chunk in enumerate(chunks):
                batch = data.batch(chunk).to(accelerator.device)
                last = k == len(chunks) - 1  # gradients are all-reduced only after the last micro-batch
                with contextlib.nullcontext() if last else accelerator.no_sync(model), accelerator.autocast():
                    logits = model(batch[:, :-1])
                    nll = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten(), reduction="sum")
                # The mean over the GLOBAL batch; DDP averages gradients over processes, hence the factor W.
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
                     "schedule_fraction": schedule_fraction(step, config.schedule)}
                )  # fmt: skip
                window_start, window_steps = time.perf_counter(), 0
            if step % t.checkpoint_interval == 0:
                save_checkpoint(accelerator, output_dir, trainer_state(), t.keep_checkpoints)
    latest = checkpoint_dirs(output_dir)
    if not latest or latest[-1].name != f"step-{step:07d}":
        save_checkpoint(accelerator, output_dir, trainer_state(), t.keep_checkpoints)
    if stop:
        print(f"stopped by {stop[0]} after step {step}; run the same command again to resume", file=sys.stderr)

    metrics = {"parameters": params.total, "non_embedding_parameters": params.non_embedding}
    state_dict = accelerator.get_state_dict(model)  # the full weights, gathered from all processes under FSDP
    if eval_texts is not None and accelerator.is_main_process:
        with torch.device("meta"):
            evaluator = Transformer(m)
        evaluator.load_state_dict({k: v.to(accelerator.device) for k, v in state_dict.items()}, assign=True)
        records = evaluate_texts(evaluator, tok, eval_texts, t.seq_len)
        with atomic_write(output_dir / "eval.jsonl") as handle:
            handle.writelines(json.dumps(r) + "\n" for r in records)
        metrics["eval_loss"] = sum(r["nll_sum"] for r in records) / max(1, sum(r["tokens"] for r in records))

    # 7. Export in transformers format, with what `paloma submit` needs to know about the training.
    export_dir = None
    if export and accelerator.is_main_process and not stop:
        training = training_record(config, trainer_state(), tok, data.manifest, final_loss=last_loss)
        training["eval_loss"] = metrics.get("eval_loss")
        export_dir = export_model(state_dict, m, output_dir / "model", tok, training)
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
        corpus=args.corpus,
        tokenizer=args.tokenizer,
        max_steps=args.max_steps,
        overrides=args.set,
        init_from=args.init_from,
        keep_layers=args.keep_layers,
        eval_corpus=args.eval_corpus,
        export=not args.no_export,
        quiet=args.quiet,
    )
    if result.export_dir is not None:
        print(f"trained {result.steps} steps ({result.tokens:,} tokens), final loss {result.final_loss:.4f}")
        print(f"exported to {result.export_dir}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="baselines.train", description=__doc__.split("\n\n")[0])
    add_train_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_from_args(args)
    except PalomaError as err:
        print(f"baselines.train: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
