"""Evaluate one saved model under torch.distributed, the way trainers hold it; each rank writes its results.

    torchrun --nproc_per_node 2 tests/evaluator_ranks.py MODEL DATA OUTPUT {plain,ddp,fsdp} BATCH_TOKENS

plain: the model itself on every rank; ddp: wrapped in DistributedDataParallel; fsdp: sharded with FSDP2's
`fully_shard` (one unit per decoder layer plus the root), gloo on CPU. OUTPUT/rank<r>.json holds the results
and how many batches the rank's share had (unequal shares are what FSDP's padding forwards are for).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from transformers import AutoModelForCausalLM

from paloma import Evaluator


def main(model_dir: str, data: str, output: str, mode: str, batch_tokens: int) -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    if mode == "ddp":
        model = torch.nn.parallel.DistributedDataParallel(model)
    elif mode == "fsdp":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        mesh = init_device_mesh("cpu", (world,))
        for layer in model.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
    model.train()
    evaluator = Evaluator(data, model_dir, max_length=16, registry="none", cache_dir=Path(output) / "cache",
                          batch_tokens=batch_tokens)  # fmt: skip
    results = evaluator.evaluate(model)
    batches = sum(len(chunk.schedule) for chunk in evaluator._plan(batch_tokens, world, rank)[0])
    record = {"results": results, "batches": batches, "training": model.training}
    (Path(output) / f"rank{rank}.json").write_text(json.dumps(record))
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:5], int(sys.argv[5]))
