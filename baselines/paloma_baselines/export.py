"""Exports of training runs: a checkpoint's weights and training facts, written in `transformers` form.

The representation itself (the architecture's exact rewrite into a stock `transformers` class, see
`paloma.eval.olmo`) belongs to the evaluator, which also converts AI2's released checkpoints through it;
here are what only training knows: its checkpoints (one process, DDP or FSDP) and `paloma_training.json`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch

from paloma.errors import PalomaError
from paloma.eval.olmo import read_transformers, write_transformers
from paloma_baselines.config import Config, ModelConfig

TRAINING_SCHEMA = "paloma-training/1"


def load_export(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor]]:
    """An export read back as (the recipe's ModelConfig with default initialisation fields, our state dict)."""
    config, state = read_transformers(path)
    return ModelConfig(**dataclasses.asdict(config)), state


def training_record(config: Config, state: dict, tokenizer, final_loss: float | None = None) -> dict:
    """The contents of paloma_training.json (fields documented in docs/baselines.md), for the checkpoint at
    `state["step"]` (a trainer state as checkpoints store it, with its data summary)."""
    from paloma.eval.tokens import tokenizer_hash
    from paloma_baselines.model import count_parameters
    from paloma_baselines.schedule import schedule_fraction

    t, step, data = config.train, state["step"], state["data"]
    params = count_parameters(config.model)
    decontamination = data["decontamination"] or {}
    return {
        "schema": TRAINING_SCHEMA,
        "config": config.name,
        "config_fingerprint": config.fingerprint(),
        "parameters": {"total": params.total, "non_embedding": params.non_embedding},
        "training_tokens": step * t.global_batch_size * t.seq_len,
        "steps": step,
        "schedule_steps": config.schedule.total_steps,
        "schedule_fraction": schedule_fraction(step, config.schedule),
        "seq_len": t.seq_len,
        "global_batch_size": t.global_batch_size,
        "data_order_seed": t.seed,
        "corpus": data["corpus"],
        "token_files": {k: data[k] for k in ("tokens", "digest", "dtype", "files", "token_count", "instances")},
        "tokenizer": {"name": config.data.tokenizer, "hash": tokenizer_hash(tokenizer), "vocab_size": len(tokenizer)},
        "decontamination": {
            "index_checksum": decontamination.get("index_checksum"),
            "documents_read": decontamination.get("documents_read"),
            "documents_removed": decontamination.get("documents_removed"),
        },
        "init_from": state.get("init_from"),
        "keep_layers": state.get("keep_layers"),
        "final_loss": final_loss,
    }


FSDP_FULL_WEIGHTS = "pytorch_model_fsdp.bin"  # accelerate's FSDP checkpoint, FULL_STATE_DICT
FSDP_SHARDED_WEIGHTS = "pytorch_model_fsdp_0"  # accelerate's FSDP checkpoint, SHARDED_STATE_DICT (DCP folder)


def checkpoint_weights(checkpoint: Path, what: str = "checkpoint") -> dict[str, torch.Tensor]:
    """A checkpoint's full model weights, whichever way accelerate saved them.

    One process or DDP: `model.safetensors`. FSDP with FULL_STATE_DICT: `pytorch_model_fsdp.bin` (a torch
    state dict). FSDP with SHARDED_STATE_DICT: `pytorch_model_fsdp_0/`, a torch.distributed.checkpoint folder
    with one file per process, read here in one process and merged (as `accelerate merge-weights` does).
    """
    if (checkpoint / "model.safetensors").is_file():
        from safetensors.torch import load_file

        return load_file(checkpoint / "model.safetensors")
    if (checkpoint / FSDP_FULL_WEIGHTS).is_file():
        return torch.load(checkpoint / FSDP_FULL_WEIGHTS, map_location="cpu", weights_only=True)
    if (checkpoint / FSDP_SHARDED_WEIGHTS / ".metadata").is_file():
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.format_utils import _EmptyStateDictLoadPlanner, _load_state_dict

        merged: dict = {}
        reader = dcp.FileSystemReader(str(checkpoint / FSDP_SHARDED_WEIGHTS))
        _load_state_dict(merged, storage_reader=reader, planner=_EmptyStateDictLoadPlanner(), no_dist=True)
        return merged["model"] if set(merged) == {"model"} else merged  # accelerate saves {"model": weights}
    raise PalomaError(
        f"{what} {checkpoint}: not a checkpoint (no model.safetensors, {FSDP_FULL_WEIGHTS} or {FSDP_SHARDED_WEIGHTS}/)"
    )


def export_checkpoint(checkpoint: str | Path, output_dir: str | Path) -> Path:
    """Export one checkpoint of a run (e.g. runs/c4/checkpoints/step-0005000, or a run folder: its latest),
    saved by one process, DDP or FSDP (sharded or full).

    Intermediate checkpoints are how Paloma compares runs at the same fraction of their LR schedule.
    """
    from paloma_baselines.config import config_from_dict
    from paloma_baselines.data import load_tokenizer

    checkpoint = Path(checkpoint)
    if (checkpoint / "checkpoints").is_dir():
        found = sorted((checkpoint / "checkpoints").glob("step-*/trainer_state.json"))
        if not found:
            raise PalomaError(f"{checkpoint}: the run has no complete checkpoint")
        checkpoint = found[-1].parent
    state_file = checkpoint / "trainer_state.json"
    if not state_file.is_file():
        raise PalomaError(f"{checkpoint}: not a checkpoint (no trainer_state.json)")
    run_dir = checkpoint.parent.parent
    config = config_from_dict(json.loads((run_dir / "config.json").read_text()), where=str(run_dir / "config.json"))
    state = json.loads(state_file.read_text())
    weights = checkpoint_weights(checkpoint)
    tokenizer = load_tokenizer(config.data.tokenizer)
    return write_transformers(weights, config.model, output_dir, tokenizer, training_record(config, state, tokenizer))
