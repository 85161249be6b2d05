"""The baseline recipe: configs, parameter arithmetic, the LR schedule, LionW, and the exact export."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from paloma.errors import PalomaError
from paloma.eval.olmo import weight_shapes, write_transformers
from paloma_baselines.config import CONFIG_DIR, PALOMA_BASELINES, ModelConfig, available_configs, load_config
from paloma_baselines.export import load_export
from paloma_baselines.model import Transformer, count_parameters, init_from_larger
from paloma_baselines.optim import build_optimizer
from paloma_baselines.schedule import lr_at
from tests.baselines_helpers import launch_env
from tests.conftest import REPO_ROOT, run_paloma


def recipe_parameters(d: int, layers: int, hidden: int, vocab: int) -> int:
    """Paloma §6 written out by hand: every linear layer has a bias, the output layer is untied."""
    embedding = vocab * d
    attention = 4 * (d * d + d)  # q, k, v and output projections, each d×d plus a bias
    mlp = (d * 2 * hidden + 2 * hidden) + (hidden * d + d)  # SwiGLU: fused value/gate in, then out
    output = vocab * d + vocab
    return embedding + layers * (attention + mlp) + output


def test_the_six_baselines_have_the_recipes_1_28b_parameters() -> None:
    assert set(PALOMA_BASELINES) <= set(available_configs())
    expected = recipe_parameters(2048, 16, 8192, 50304)
    assert expected == 1_280_263_296  # "~1.2B" in the paper; a fused MLP width of 8192 would give ~0.88B
    for name in PALOMA_BASELINES:
        config = load_config(name)
        counts = count_parameters(config.model)
        assert counts.total == expected, name
        assert counts.non_embedding == expected - 2 * 50304 * 2048 - 50304
        assert config.model.eos_token_id == 0 and config.model.pad_token_id == 1


def test_the_baselines_share_the_recipe_and_differ_only_in_corpus_and_batch() -> None:
    configs = {name: load_config(name) for name in PALOMA_BASELINES}
    for name, config in configs.items():
        t, o, s = config.train, config.optimizer, config.schedule
        assert (o.lr, o.betas, o.weight_decay, o.grad_clip) == (2e-4, (0.9, 0.95), 0.1, 1.0)
        assert (s.total_steps, t.max_steps, s.final_lr_factor, s.warmup_steps) == (70000, 35000, 0.1, 5000)
        assert (t.seq_len, t.seed, t.checkpoint_interval) == (2048, 6198, 5000)
        assert t.global_batch_size == (2112 if name in ("dolma", "falcon-refinedweb") else 2048)
    assert len({c.data.corpus + str(c.data.corpus_config) + str(c.data.data_files) for c in configs.values()}) == 6
    assert configs["falcon-refinedweb"].data.text_field == "content"
    assert "github" not in configs["redpajama"].data.corpus and configs["redpajama"].data.corpus.count(".txt") == 6


@pytest.mark.parametrize("name", ["tiny", "ladder-s", "ladder-m", "ladder-150m", "c4"])
def test_built_models_have_exactly_the_counted_parameters(name: str) -> None:
    config = load_config(name)
    with torch.device("meta"):  # shapes only: the 1B model is built without allocating its weights
        model = Transformer(config.model)
    m = config.model
    assert sum(p.numel() for p in model.parameters()) == count_parameters(m).total
    assert count_parameters(m).total == recipe_parameters(m.d_model, m.n_layers, m.mlp_hidden, m.vocab_size)


def test_params_command_prints_the_counts(paloma_cli) -> None:
    proc = paloma_cli("baselines", "params", "c4", "tiny", check=True)
    assert "1,280,263,296" in proc.stdout and "1,074,167,808" in proc.stdout
    assert "146,800,640,000" in proc.stdout  # 35k steps × 2048 × 2048 tokens ≈ 147B


def test_unknown_keys_and_bad_values_are_refused_with_the_field_named(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"inherit: {CONFIG_DIR / '_small.yaml'}\ntrain: {{max_stesp: 10}}\n")
    with pytest.raises(PalomaError, match=r"unknown key train\.max_stesp"):
        load_config(bad)
    with pytest.raises(PalomaError, match=r"optimizer\.lr: 'fast' is not a valid float"):
        load_config("tiny", ["optimizer.lr=fast"])
    with pytest.raises(PalomaError, match="unknown config 'c5'"):
        load_config("c5")
    proc = run_paloma("baselines", "show", "tiny", "--set", "model.n_layer=3")
    assert proc.returncode == 2 and "unknown key model.n_layer" in proc.stderr
    assert proc.stderr.count("\n") == 1


def olmo_lr(step: int, peak: float, warmup: int, total: int, alpha_f: float = 0.1) -> float:
    """OLMo's CosWithWarmup.get_lr, re-typed from its definition (warmup from 10% of the peak)."""
    if step < warmup:
        return peak * 0.1 + (peak - peak * 0.1) * step / warmup
    if step >= total:
        return peak * alpha_f
    eta_min = peak * alpha_f
    return eta_min + (peak - eta_min) * (1 + math.cos(math.pi * (step - warmup) / (total - warmup))) / 2


@pytest.mark.parametrize("step", [1, 2500, 4999, 5000, 20000, 35000, 37500, 69999, 70000, 90000])
def test_lr_schedule_matches_the_recipe_formula(step: int) -> None:
    config = load_config("c4")
    assert lr_at(step, config.optimizer, config.schedule) == pytest.approx(olmo_lr(step, 2e-4, 5000, 70000), rel=1e-12)


def test_lr_schedule_landmarks() -> None:
    config = load_config("c4")
    lr = lambda s: lr_at(s, config.optimizer, config.schedule)  # noqa: E731
    assert lr(5000) == pytest.approx(2e-4)  # the peak right after warmup
    assert lr(37500) == pytest.approx(2e-5 + 1.8e-4 / 2)  # half-way through the cosine: midpoint of peak and floor
    assert lr(35000) == pytest.approx(2e-5 + 1.8e-4 * (1 + math.cos(math.pi * 30000 / 65000)) / 2)
    assert lr(70000) == pytest.approx(2e-5)  # the floor, never reached by the 35k-step runs


def test_lionw_update_matches_its_definition() -> None:
    config = load_config("tiny")
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = build_optimizer(model, config.optimizer)
    lr, (b1, b2), wd = config.optimizer.lr, config.optimizer.betas, config.optimizer.weight_decay
    momentum = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for _ in range(3):
        model(torch.randn(4, 5)).square().sum().backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters()}
        optimizer.step()
        optimizer.zero_grad()
        for name, p in before.items():  # p ← p(1 − lr·wd) − lr·sign(β1·m + (1−β1)·g); m ← β2·m + (1−β2)·g
            g, decay = grads[name], wd if name == "weight" else 0.0  # OLMo decays a Linear's weight, not its bias
            before[name] = p * (1 - lr * decay) - lr * torch.sign(b1 * momentum[name] + (1 - b1) * g)
            momentum[name] = b2 * momentum[name] + (1 - b2) * g
    for name, p in model.named_parameters():
        torch.testing.assert_close(p.detach(), before[name], rtol=0, atol=1e-7)


def random_model(d: int = 64, layers: int = 2, heads: int = 4, vocab: int = 256) -> Transformer:
    config = load_config(
        "tiny",
        [f"model.d_model={d}", f"model.n_layers={layers}", f"model.n_heads={heads}", f"model.vocab_size={vocab}"],
    ).model
    torch.manual_seed(1)
    model = Transformer(config)
    with torch.no_grad():  # trained models have non-zero biases and off-centre embeddings: test that case
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0, 0.5)
        model.transformer.wte.weight.add_(0.7)
    return model


def test_export_loads_with_automodel_and_computes_the_same_log_probabilities(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = random_model()
    write_transformers(model.state_dict(), model.config, tmp_path / "model", training={"steps": 0})
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "model")  # no trust_remote_code
    ids = torch.randint(0, 256, (3, 50), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours, theirs = model(ids).log_softmax(-1), hf(ids).logits.log_softmax(-1)
    torch.testing.assert_close(theirs, ours, rtol=0, atol=2e-5)
    assert (tmp_path / "model" / "paloma_training.json").is_file()
    assert not list(tmp_path.glob(".*partial"))


def test_export_round_trips_back_into_our_model(tmp_path: Path) -> None:
    model = random_model()
    write_transformers(model.state_dict(), model.config, tmp_path / "model")
    config, state = load_export(tmp_path / "model")
    assert config == model.config
    again = Transformer(config)
    again.load_state_dict(state)
    ids = torch.randint(0, 256, (2, 30))
    with torch.no_grad():
        torch.testing.assert_close(again(ids).log_softmax(-1), model(ids).log_softmax(-1), rtol=0, atol=2e-5)


def test_init_from_larger_keeps_the_chosen_layers() -> None:
    big, small = random_model(layers=4), random_model(layers=2)
    init_from_larger(small, big.state_dict(), [0, 3])
    torch.testing.assert_close(small.transformer.blocks[1].ff_out.weight, big.transformer.blocks[3].ff_out.weight)
    torch.testing.assert_close(small.transformer.wte.weight, big.transformer.wte.weight)
    with pytest.raises(ValueError, match="keep 3 layers"):
        init_from_larger(small, big.state_dict(), [0, 1, 2])


def test_the_export_describes_a_dense_model(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    model = random_model()
    write_transformers(model.state_dict(), model.config, tmp_path / "model")
    hf_config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert hf_config["architectures"] == ["Ernie4_5_MoeForCausalLM"] and hf_config["use_bias"] is True
    # no expert counts that claim experts, and no layer index reaches the first mixture-of-experts layer
    assert (hf_config["moe_num_experts"], hf_config["moe_k"], hf_config["moe_num_shared_experts"]) == (0, 0, 0)
    assert hf_config["moe_layer_start_index"] == hf_config["num_hidden_layers"] == 2
    assert hf_config["rope_theta"] == 10000.0  # also at the top level, where other engines read it
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    names = [name for name, _ in loaded.named_modules()]
    assert not any("expert" in name or name.endswith(".gate") for name in names)
    assert all(type(layer.mlp).__name__ == "Ernie4_5_MoeMLP" for layer in loaded.model.layers)


def test_the_supported_transformers_range_is_the_verified_one() -> None:
    """pyproject's lower bound is the lowest version benchmarks/check_export_transformers.py verified (recorded
    in docs/baselines.md); the installed version, tested above, lies in the range."""
    import re

    import transformers
    from packaging.requirements import Requirement

    (line,) = re.findall(r'^\s*"(transformers[^"]*)"', (REPO_ROOT / "pyproject.toml").read_text(), re.MULTILINE)
    spec = Requirement(line).specifier
    (lowest,) = [s.version for s in spec if s.operator == ">="]
    assert spec.contains(transformers.__version__)
    verified = (REPO_ROOT / "docs" / "baselines.md").read_text()
    assert re.search(rf"\| {re.escape(lowest)}(\.0)? \| loads; max abs Δ log-prob", verified), lowest


def test_the_chunked_loss_equals_the_cross_entropy_of_the_whole_batch() -> None:
    model = random_model()
    ids = torch.randint(0, 256, (3, 41), generator=torch.Generator().manual_seed(3))
    full = F.cross_entropy(model(ids[:, :-1]).flatten(0, 1), ids[:, 1:].flatten(), reduction="sum")
    full.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    for chunk, checkpointing in ((1, False), (7, True), (4096, False)):
        model.zero_grad()
        model.activation_checkpointing = checkpointing
        nll = model(ids[:, :-1], targets=ids[:, 1:], loss_chunk_tokens=chunk)
        assert nll.dtype == torch.float32
        torch.testing.assert_close(nll, full, rtol=1e-6, atol=0)
        nll.backward()
        for name, param in model.named_parameters():  # equal up to the order of float summation
            scale = expected[name].abs().max().item()
            torch.testing.assert_close(param.grad, expected[name], rtol=0, atol=1e-5 * scale, msg=name)


@pytest.mark.parametrize("name", ["fsdp-1x8.yaml", "fsdp-Nx8.yaml"])
def test_shipped_fsdp_configs_shard_each_block_and_reduce_in_fp32(name: str, monkeypatch) -> None:
    from torch.distributed.fsdp import MixedPrecisionPolicy

    from paloma_baselines.train import fsdp_plugin

    env = launch_env(REPO_ROOT / "baselines" / "accelerate" / name)
    assert env["ACCELERATE_USE_FSDP"] == "true" and env["FSDP_SHARDING_STRATEGY"] == "FULL_SHARD"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    plugin = fsdp_plugin("bf16")
    assert plugin.fsdp_version == 2 and plugin.reshard_after_forward is True
    assert plugin.mixed_precision_policy == MixedPrecisionPolicy(
        param_dtype=torch.bfloat16, reduce_dtype=torch.float32, output_dtype=torch.float32
    )  # OLMo's "mixed" FSDP precision; accelerate alone would reduce gradients in bf16
    assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"
    with torch.device("meta"):
        model = Transformer(load_config("c4").model)
    assert wrapped_blocks(model) == [f"transformer.blocks.{i}" for i in range(16)]
    monkeypatch.setattr(Transformer, "_no_split_modules", None)  # without it, nothing would be sharded by block
    assert wrapped_blocks(model) == []


def wrapped_blocks(model: torch.nn.Module) -> list[str]:
    """The modules accelerate's FSDP2 preparation makes units of, under the launch environment."""
    from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy

    from paloma_baselines.train import fsdp_plugin

    plugin = fsdp_plugin("bf16")
    plugin.set_auto_wrap_policy(model)
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    return [name for name, module in model.named_modules() if policy(module)]


@pytest.mark.parametrize("bias", [True, False])
def test_the_evaluators_statement_of_the_architecture_is_the_trainers_model(bias: bool) -> None:
    """`paloma.eval.olmo.weight_shapes` (what conversions check checkpoints against, and what parameter counts
    come from) names and shapes exactly the weights of the model the baselines train."""
    config = ModelConfig(d_model=32, n_layers=3, n_heads=4, mlp_hidden=48, vocab_size=101, bias=bias)
    with torch.device("meta"):
        built = {name: tuple(t.shape) for name, t in Transformer(config).state_dict().items()}
    assert list(weight_shapes(config).items()) == list(built.items())
    assert count_parameters(config).total == sum(math.prod(shape) for shape in built.values())
