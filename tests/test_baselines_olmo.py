"""baselines/ against AI2's own OLMo code (the `ai2-olmo` package): the optimizer's parameter groups and
updates, the global data order, and the token-file instances are OLMo's, on the same inputs.

The Paloma baselines were trained by OLMo at commit 1f2f020. ai2-olmo 0.6.0 differs from it only where these
tests set it to behave as 1f2f020 did: its `decay_norm_and_bias` / `decay_embeddings` flags (both false here)
are the two halves of 1f2f020's `no_decay_norm_and_bias=True`, and its `IterableDataset` seeds epoch e with
seed + e where 1f2f020 had a single epoch (its epoch 0 is 0.6.0's). docs/baselines.md records the check of
1f2f020's own code (benchmarks/olmo_1f2f020_check.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from paloma_baselines.config import ModelConfig, load_config
from paloma_baselines.data import GlobalOrder, load_tokenizer, open_tokens
from paloma_baselines.model import Transformer
from paloma_baselines.optim import build_optimizer, parameter_groups
from tests.baselines_helpers import (
    expected_token_stream,
    stdlib_documents,
    tiny_tokens,
    train_tokenizer,
    write_corpus_files,
)

olmo_config = pytest.importorskip("olmo.config", reason="ai2-olmo is installed by the README's test line")


def olmo_model_config(m: ModelConfig, init_device: str = "cpu"):
    """OLMo's ModelConfig for our recipe, written as the baselines' YAML (v1_5-mix-small-mitch-ish-*) is."""
    c = olmo_config
    return c.ModelConfig(
        d_model=m.d_model, n_heads=m.n_heads, n_layers=m.n_layers, mlp_hidden_size=2 * m.mlp_hidden,
        weight_tying=False, alibi=False, rope=True, rope_theta=m.rope_theta, include_bias=m.bias,
        block_type=c.BlockType.sequential, layer_norm_type=c.LayerNormType.default, layer_norm_with_affine=False,
        bias_for_layer_norm=False, attention_layer_norm_with_affine=False, activation_type=c.ActivationType.swiglu,
        max_sequence_length=m.max_seq_len, vocab_size=m.vocab_size, embedding_size=m.vocab_size,
        eos_token_id=m.eos_token_id, pad_token_id=m.pad_token_id, init_device=init_device,
        init_fn=c.InitFnType.mitchell,
    )  # fmt: skip


def olmo_train_config(m: ModelConfig, init_device: str = "cpu"):
    """1f2f020's optimizer settings in 0.6.0's terms: no decay on norms, biases or embeddings."""
    c = olmo_config
    optimizer = c.OptimizerConfig(
        name=c.OptimizerType.lionw, learning_rate=2e-4, weight_decay=0.1, betas=(0.9, 0.95),
        decay_norm_and_bias=False, decay_embeddings=False,
    )  # fmt: skip
    return c.TrainConfig(model=olmo_model_config(m, init_device), optimizer=optimizer, max_grad_norm=1.0)


# ------------------------------------------------------------------------------------------ optimizer


@pytest.mark.parametrize("name", ["tiny", "c4"])
def test_parameter_groups_equal_olmos(name: str) -> None:
    from olmo.model import OLMo
    from olmo.optim import get_param_groups

    m = load_config(name).model
    with torch.device("meta"):  # the 1B recipe is compared without allocating it
        ours = Transformer(m)
    theirs_model = OLMo(olmo_model_config(m, init_device="meta"))
    theirs = get_param_groups(olmo_train_config(m, "meta"), theirs_model)
    assert [(g["param_names"], g.get("weight_decay")) for g in parameter_groups(ours)] == [
        (g["param_names"], g.get("weight_decay")) for g in theirs
    ]
    # Linear weights only are decayed: the embedding and every bias are not
    decayed, not_decayed = (set(g["param_names"]) for g in theirs)
    assert "transformer.wte.weight" in not_decayed and all(n.endswith("weight") for n in decayed)
    assert {n for n, _ in ours.named_parameters()} == decayed | not_decayed
    shapes = {n: p.shape for n, p in theirs_model.named_parameters()}
    assert {n: p.shape for n, p in ours.named_parameters()} == shapes  # the same tensors, name for name


def test_lionw_updates_equal_olmos_lionw_and_leave_unused_embedding_rows_alone() -> None:
    from olmo.model import OLMo
    from olmo.optim import LionW, get_param_groups

    config = load_config("tiny", ["model.vocab_size=256", "optimizer.lr=1e-2"])
    m, o = config.model, config.optimizer
    torch.manual_seed(0)
    ours, theirs = Transformer(m), Transformer(m)
    theirs.load_state_dict(ours.state_dict())
    names = get_param_groups(olmo_train_config(m), OLMo(olmo_model_config(m)))
    named = dict(theirs.named_parameters())
    groups = [{"params": [named[n] for n in g["param_names"]], **({"weight_decay": 0.0} if "weight_decay" in g else {})}
              for g in names]  # fmt: skip
    optimizers = [build_optimizer(ours, o), LionW(groups, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)]
    ids = torch.randint(2, 256, (4, 33), generator=torch.Generator().manual_seed(1))  # ids 0 and 1 never occur
    before = ours.transformer.wte.weight[:2].detach().clone()
    for _ in range(3):
        for model, optimizer in zip((ours, theirs), optimizers, strict=True):
            model(ids[:, :-1], targets=ids[:, 1:]).backward()
            optimizer.step()
            optimizer.zero_grad()
    for (name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-7, msg=name)
    # rows of tokens that never occur get no gradient and, undecayed, do not move (decay would shrink them)
    assert torch.equal(ours.transformer.wte.weight[:2], before)


# ------------------------------------------------------------------------------------------ data order


def olmo_instance_ids(num: int, seed: int, batch: int, world: int, rank: int, epoch: int, count: int) -> list[int]:
    """The first `count` instance ids that OLMo's IterableDataset gives `rank` in `epoch`."""
    from olmo.data import IterableDataset

    dataset = IterableDataset(
        list(range(num)), batch, seed=seed, epoch=epoch, drop_last=True, world_size=world, rank=rank,
        fs_local_rank=0,
    )  # fmt: skip
    ids = []
    for item in dataset:
        ids.append(item["index"])
        if len(ids) == count:
            break
    return ids


@pytest.mark.parametrize("world", [1, 4])
@pytest.mark.parametrize("num", [1001, 38])  # 38: two steps per epoch, so step 3 opens epoch 1
def test_instances_of_steps_1_to_3_equal_olmos_iterable_dataset(world: int, num: int) -> None:
    batch, seed = 16, 6198
    order = GlobalOrder(num, seed, batch, world)
    per_rank = batch // world
    for rank in range(world):
        ours = {step: order.step_instances(step, rank) for step in (1, 2, 3)}
        for step, ids in ours.items():
            epoch, k = divmod(step - 1, order.steps_per_epoch)
            olmo = olmo_instance_ids(num, seed, batch, world, rank, epoch, (k + 1) * per_rank)[k * per_rank :]
            assert ids == olmo, (world, rank, step)
    assert order.epoch_of(3) == (1 if num == 38 else 0)


def test_the_order_is_memory_mapped_from_one_file_per_epoch(tmp_path: Path) -> None:
    order = GlobalOrder(5000, 6198, 64, 4, work_dir=tmp_path)
    assert order.step_instances(2, 3) == GlobalOrder(5000, 6198, 64, 4).step_instances(2, 3)
    stored = np.load(tmp_path / "order-seed6198-epoch0.npy", mmap_mode="r")
    assert stored.dtype == np.uint32 and isinstance(stored, np.memmap) and stored.shape == (5000,)
    assert isinstance(order._epoch_order(0), np.memmap)  # held by the page cache, not one array per process


# ------------------------------------------------------------------------------------------ token files


@pytest.fixture(scope="module")
def stdlib(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("olmo-data")
    docs = stdlib_documents()
    return {"docs": docs, "tokenizer": train_tokenizer(docs, root / "tok", vocab_size=512), "root": root}


def memmap_dataset(paths: list[Path], seq_len: int, dtype):
    from olmo.data import MemMapDataset

    return MemMapDataset(*map(str, paths), chunk_size=seq_len, memmap_dtype=dtype, include_instance_metadata=False)


def assert_same_instances(ours, theirs) -> None:
    assert len(ours) == len(theirs) > 0
    for i in range(len(ours)):
        assert torch.equal(torch.from_numpy(ours.instance(i)), theirs[i]["input_ids"]), i


def test_tokenized_files_are_read_by_olmos_memmap_dataset_as_by_us(stdlib, tmp_path: Path) -> None:
    corpus = write_corpus_files(tmp_path / "corpus", stdlib["docs"], files=3)
    tiny_tokens(corpus, stdlib["tokenizer"], tmp_path / "tokens", tasks=3, overrides=["data.shard_tokens=20000"])
    config = load_config("tiny", ["model.vocab_size=512", "train.seq_len=64", f"data.tokens={tmp_path / 'tokens'}"])
    ours = open_tokens(config)
    assert len(ours.paths) > 3  # several files per task: each is cut into instances on its own, as OLMo does
    assert_same_instances(ours, memmap_dataset(ours.paths, 64, np.uint16))


@pytest.mark.parametrize("dtype", [np.uint16, np.uint32])
def test_olmo_format_files_are_read_as_olmos_memmap_dataset_reads_them(stdlib, tmp_path: Path, dtype) -> None:
    """Files as Dolma's tokenizer writes them (np.memmap, no header), listed in OLMo's config order."""
    tokenizer = load_tokenizer(str(stdlib["tokenizer"]))
    paths = []
    for k, chunk in enumerate((stdlib["docs"][:40], stdlib["docs"][40:90], stdlib["docs"][90:100])):
        stream = expected_token_stream(chunk, tokenizer)
        path = tmp_path / f"part-{k:03d}-00000.npy"
        array = np.memmap(path, dtype=dtype, mode="w+", shape=(len(stream),))
        array[:] = stream
        array.flush()
        paths.append(path)
    listing = tmp_path / "paths.txt"
    listing.write_text("\n".join(map(str, [paths[2], paths[0], paths[1]])) + "\n")  # the listed order counts
    dtype_name = np.dtype(dtype).name
    config = load_config("tiny", ["train.seq_len=64", f"data.tokens={listing}", f"data.memmap_dtype={dtype_name}"])
    ours = open_tokens(config)
    assert ours.paths == [paths[2], paths[0], paths[1]]
    assert_same_instances(ours, memmap_dataset(ours.paths, 64, dtype))
    assert ours.instance(0).tolist() == expected_token_stream(stdlib["docs"][90:100], tokenizer)[:64]


@pytest.mark.slow
def test_tokenize_command_on_two_datatrove_workers_writes_what_memmap_dataset_reads(stdlib, tmp_path: Path) -> None:
    from tests.conftest import run_paloma

    corpus = write_corpus_files(tmp_path / "corpus", stdlib["docs"], files=4)
    proc = run_paloma(
        "baselines", "tokenize", "--config", "tiny", "--set", "model.vocab_size=512",
        "--tokenizer", stdlib["tokenizer"], "--corpus", corpus, "--output", tmp_path / "tokens",
        "--tasks", "4", "--workers", "2", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tokens/s" in proc.stdout
    executor = json.loads((tmp_path / "tokens" / "logs" / "executor.json").read_text())  # datatrove's record
    assert (executor["tasks"], executor["workers"]) == (4, 2)
    config = load_config("tiny", ["model.vocab_size=512", "train.seq_len=128", f"data.tokens={tmp_path / 'tokens'}"])
    ours = open_tokens(config)
    assert_same_instances(ours, memmap_dataset(ours.paths, 128, np.uint16))
    # task r read files r, r+4, ...: with one file each, file k holds the documents of part-k.jsonl
    tokenizer = load_tokenizer(str(stdlib["tokenizer"]))
    size = -(-len(stdlib["docs"]) // 4)
    for k, path in enumerate(ours.paths):
        expected = expected_token_stream(stdlib["docs"][k * size : (k + 1) * size], tokenizer)
        assert np.fromfile(path, dtype=np.uint16).tolist() == expected
