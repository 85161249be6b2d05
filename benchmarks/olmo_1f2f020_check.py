"""baselines/ against OLMo's code at commit 1f2f020, the code that trained the Paloma baselines. By hand:

    git clone https://github.com/allenai/OLMo && git -C OLMo archive 1f2f020 olmo | tar -x -C /tmp/olmo-1f2f020
    python benchmarks/olmo_1f2f020_check.py /tmp/olmo-1f2f020

The test suite compares with the `ai2-olmo` 0.6.0 package (what pip installs); this script runs the commit's own
`olmo` package (its dependencies are those of the dev extra) on the same inputs: the optimizer's parameter
groups for the tiny and the 1B recipe, three LionW updates, the instance ids of steps 1-3 of its
IterableDataset at 1 and 4 processes, and MemMapDataset's instances of an OLMo-format token file. One line
per check; exit status 0 when all agree. Record the result in docs/baselines.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    if len(sys.argv) != 2 or not (Path(sys.argv[1]) / "olmo" / "optim.py").is_file():
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    sys.path.insert(0, sys.argv[1])  # the commit's `olmo`, ahead of any installed ai2-olmo
    sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
    import olmo
    from olmo.config import (
        ActivationType,
        BlockType,
        InitFnType,
        LayerNormType,
        ModelConfig,
        OptimizerConfig,
        TrainConfig,
    )
    from olmo.data import IterableDataset, MemMapDataset
    from olmo.model import Olmo
    from olmo.optim import LionW, get_param_groups

    from paloma_baselines.config import load_config
    from paloma_baselines.data import GlobalOrder, TokenFiles
    from paloma_baselines.model import Transformer
    from paloma_baselines.optim import build_optimizer, parameter_groups

    print(f"olmo from {Path(olmo.__file__).parent}")

    def olmo_config(m, device: str) -> TrainConfig:
        model = ModelConfig(
            d_model=m.d_model, n_heads=m.n_heads, n_layers=m.n_layers, mlp_hidden_size=2 * m.mlp_hidden,
            weight_tying=False, alibi=False, rope=True, include_bias=True, block_type=BlockType.sequential,
            layer_norm_type=LayerNormType.default, layer_norm_with_affine=False, bias_for_layer_norm=False,
            attention_layer_norm_with_affine=False, activation_type=ActivationType.swiglu,
            max_sequence_length=m.max_seq_len, vocab_size=m.vocab_size, embedding_size=m.vocab_size,
            eos_token_id=0, pad_token_id=1, init_device=device, init_fn=InitFnType.mitchell,
        )  # fmt: skip
        return TrainConfig(model=model, optimizer=OptimizerConfig(learning_rate=2e-4, weight_decay=0.1))

    results = []
    for name in ("tiny", "c4"):
        m = load_config(name).model
        config = olmo_config(m, "meta")
        assert config.optimizer.no_decay_norm_and_bias  # the commit's default, which its configs never override
        theirs = [(g["param_names"], g.get("weight_decay")) for g in get_param_groups(config, Olmo(config.model))]
        with torch.device("meta"):
            ours = [(g["param_names"], g.get("weight_decay")) for g in parameter_groups(Transformer(m))]
        results.append((f"parameter groups ({name})", ours == theirs))

    config = load_config("tiny", ["model.vocab_size=256", "optimizer.lr=1e-2"])
    torch.manual_seed(0)
    ours_model, theirs_model = Transformer(config.model), Transformer(config.model)
    theirs_model.load_state_dict(ours_model.state_dict())
    named = dict(theirs_model.named_parameters())
    groups = get_param_groups(olmo_config(config.model, "cpu"), Olmo(olmo_config(config.model, "cpu").model))
    groups = [{"params": [named[n] for n in g["param_names"]], **({"weight_decay": 0.0} if "weight_decay" in g else {})}
              for g in groups]  # fmt: skip
    o = config.optimizer
    optimizers = [build_optimizer(ours_model, o), LionW(groups, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)]
    ids = torch.randint(2, 256, (4, 33), generator=torch.Generator().manual_seed(1))
    for _ in range(3):
        for model, optimizer in zip((ours_model, theirs_model), optimizers, strict=True):
            model(ids[:, :-1], targets=ids[:, 1:]).backward()
            optimizer.step()
            optimizer.zero_grad()
    diff = max(
        (a - b).abs().max().item() for a, b in zip(ours_model.parameters(), theirs_model.parameters(), strict=True)
    )
    results.append((f"LionW, 3 updates (max |Δ| {diff:.1e})", diff <= 1e-7))

    for world in (1, 4):
        num, batch, seed = 1001, 16, 6198
        order = GlobalOrder(num, seed, batch, world)
        same = True
        for rank in range(world):
            dataset = IterableDataset(list(range(num)), seed=seed, drop_last=True, world_size=world, rank=rank,
                                      fs_local_rank=0, global_batch_size=batch)  # fmt: skip
            theirs_ids = [item["index"] for _, item in zip(range(3 * batch // world), dataset, strict=False)]
            same &= theirs_ids == [i for step in (1, 2, 3) for i in order.step_instances(step, rank)]
        results.append((f"instance ids of steps 1-3, W={world}", same))

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "part-000-00000.npy"
        array = np.memmap(path, dtype=np.uint16, mode="w+", shape=(10_000,))
        array[:] = np.random.default_rng(0).integers(0, 50304, size=10_000)
        array.flush()
        ours_files = TokenFiles([path], "uint16", 128)
        theirs_files = MemMapDataset(str(path), chunk_size=128, memmap_dtype=np.uint16)
        same = len(ours_files) == len(theirs_files) and all(
            torch.equal(torch.from_numpy(ours_files.instance(i)), theirs_files[i]["input_ids"])
            for i in range(len(ours_files))
        )
        results.append((f"MemMapDataset instances ({len(ours_files)})", same))

    for what, ok in results:
        print(f"{'ok  ' if ok else 'FAIL'} {what}")
    return 0 if all(ok for _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
