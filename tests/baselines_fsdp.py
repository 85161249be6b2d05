"""Shard a checkpoint's model with real FSDP and save it the way accelerate saves FSDP checkpoints.

    ACCELERATE_USE_CPU=true torchrun --nproc_per_node 2 tests/baselines_fsdp.py SOURCE SHARDED FULL

SOURCE is a trainer checkpoint (model.safetensors); SHARDED and FULL get accelerate's FSDP model checkpoints of
the same weights (SHARDED_STATE_DICT: a torch.distributed.checkpoint folder with one file per process;
FULL_STATE_DICT: one torch file), each with SOURCE's trainer_state.json. accelerate runs FSDP only on GPUs, so the
model is sharded here with torch's own `fully_shard` (FSDP2, as baselines/accelerate/*.yaml configure it) over
the gloo processes, one unit per `Block` plus the root, and one forward and backward runs through it with the
trainer's chunked loss. tests/test_baselines_train.py then exports both and starts a run from one.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import save_fsdp_model
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from paloma_baselines.config import config_from_dict
from paloma_baselines.export import checkpoint_weights
from paloma_baselines.model import Transformer


def main(source: Path, targets: dict[str, Path]) -> None:
    accelerator = Accelerator()
    assert accelerator.num_processes == 2, "run under torchrun with two processes"
    config = config_from_dict(json.loads((source.parent.parent / "config.json").read_text()))
    model = Transformer(config.model)
    model.load_state_dict(checkpoint_weights(source))
    mesh = init_device_mesh("cpu", (accelerator.num_processes,))
    for block in model.transformer.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    ids = torch.randint(0, config.model.vocab_size, (2, 17), generator=torch.Generator().manual_seed(0))
    model(ids[:, :-1], targets=ids[:, 1:], loss_chunk_tokens=5).backward()
    for state_dict_type, target in targets.items():
        plugin = FullyShardedDataParallelPlugin(fsdp_version=2, state_dict_type=state_dict_type)
        save_fsdp_model(plugin, accelerator, model, str(target))
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            shutil.copy(source / "trainer_state.json", target / "trainer_state.json")


if __name__ == "__main__":
    main(Path(sys.argv[1]), {"SHARDED_STATE_DICT": Path(sys.argv[2]), "FULL_STATE_DICT": Path(sys.argv[3])})
