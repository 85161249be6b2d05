"""The OLMo architecture of the Paloma baselines, and its one exact representation in `transformers`.

Both the baselines' trainer (`paloma_baselines.export`) and the evaluator (converting the released
`hf_olmo` checkpoints, `paloma.eval.hf_olmo`) write models through this module, so there is one rewrite of
the weights and one reader of it. It needs no training code: the architecture is a plain dataclass and the
weights are a dict of tensors with OLMo's names.

Write a trained model in standard `transformers` format, loadable with AutoModelForCausalLM, no remote code.

No stock `transformers` architecture has this model's exact combination (LayerNorm without parameters,
biases on every linear layer *including the output layer*, SwiGLU, RoPE): Llama and OLMo lack the output
bias, OLMo lacks MLP biases. `Ernie4_5_MoeForCausalLM` with `use_bias: true` and every layer dense has
all of the biases, but RMSNorm (with a weight) instead of LayerNorm and interleaved instead of half-split
RoPE. Two exact rewrites of the weights close that gap, so the exported model computes the same function:

1. LayerNorm → RMSNorm. LN(h) = RMSNorm(h − mean(h)) with the same ε, and LN ignores the mean of its
   input. So we keep the residual stream centred: with P = I − 11ᵀ/d, every write into the stream
   (embedding rows, attention and MLP output projections and their biases) is multiplied by P. The stream
   then always has mean zero, where RMSNorm (weights 1) equals LayerNorm.
2. Half-split RoPE → interleaved RoPE. Each rotated pair (i, i + head_dim/2) becomes the pair (2i, 2i+1) by
   permuting the rows of the query and key projections within each head; attention scores are sums over
   those dimensions, so they do not change.

The exported model has (2·n_layers + 1)·d_model extra parameters (the RMSNorm weights, all 1);
`paloma_training.json` reports the recipe's own count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from paloma.errors import PalomaError
from paloma.io import atomic_dir, honour_umask, write_json

TRAINING_FILE = "paloma_training.json"  # training facts beside an export: parameters, tokens (docs/baselines.md)


@dataclass
class OlmoConfig:
    """The OLMo-style decoder of the Paloma baselines (Paloma §6): what the weights' shapes and function need.

    `mlp_hidden` is the width of ONE SwiGLU half: OLMo's `mlp_ratio: 8` makes a fused 2048→16384 input
    projection that is split into value and gate halves of 8192 each, and the output projection maps
    8192→2048. That reading gives the ~1.2B parameters the paper states (a fused width of 8192 would
    give ~0.88B).
    """

    d_model: int = 2048
    n_layers: int = 16
    n_heads: int = 16
    mlp_hidden: int = 8192
    vocab_size: int = 50304  # the embedding size: GPT-NeoX-20B + 3 PII tokens (50280) padded to a multiple of 128
    max_seq_len: int = 2048
    rope_theta: float = 10000.0
    layer_norm_eps: float = 1e-5
    bias: bool = True  # biases on every linear layer, the output layer included
    eos_token_id: int = 0
    pad_token_id: int = 1


def weight_shapes(config: OlmoConfig) -> dict[str, tuple[int, ...]]:
    """Every weight of the architecture with OLMo's name and its shape, in the model's order.

    The one statement of the architecture's parameters: conversions check checkpoints against it and the
    baselines count parameters from it (a 1B model need not be built to know its shapes).
    """
    d, h, v = config.d_model, config.mlp_hidden, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {"transformer.wte.weight": (v, d)}
    for i in range(config.n_layers):
        block = f"transformer.blocks.{i}."
        layer = {"att_proj": (3 * d, d), "attn_out": (d, d), "ff_proj": (2 * h, d), "ff_out": (d, h)}
        for name, shape in layer.items():
            shapes[f"{block}{name}.weight"] = shape
            if config.bias:
                shapes[f"{block}{name}.bias"] = (shape[0],)
    shapes["transformer.ff_out.weight"] = (v, d)
    if config.bias:
        shapes["transformer.ff_out.bias"] = (v,)
    return shapes


def _rope_permutation(n_heads: int, head_dim: int) -> torch.Tensor:
    """Row order that turns half-split RoPE pairs (i, i+hd/2) into interleaved pairs (2i, 2i+1), per head."""
    half = torch.arange(head_dim // 2)
    within = torch.stack((half, half + head_dim // 2), dim=1).flatten()
    return torch.cat([within + h * head_dim for h in range(n_heads)])


def _centre_rows(weight: torch.Tensor) -> torch.Tensor:
    """P·W for an output projection W (d_out = d_model): subtract each column's mean over the d outputs."""
    return weight - weight.mean(dim=0, keepdim=True)


def hf_config(config: OlmoConfig):
    from transformers import Ernie4_5_MoeConfig

    return Ernie4_5_MoeConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.d_model,
        intermediate_size=config.mlp_hidden,
        num_hidden_layers=config.n_layers,
        num_attention_heads=config.n_heads,
        num_key_value_heads=config.n_heads,
        hidden_act="silu",
        max_position_embeddings=config.max_seq_len,
        rms_norm_eps=config.layer_norm_eps,
        use_bias=config.bias,
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
        # A dense model in a mixture-of-experts class: no layer index reaches moe_layer_start_index, and the
        # expert counts say so too, so no reader of config.json believes there are experts.
        moe_layer_start_index=config.n_layers,
        moe_layer_end_index=config.n_layers - 1,
        moe_num_experts=0,
        moe_num_shared_experts=0,
        moe_k=0,
        moe_intermediate_size=0,
        eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id,
        bos_token_id=None,
        use_cache=True,
    )


def to_hf_state_dict(state: dict[str, torch.Tensor], config: OlmoConfig) -> dict[str, torch.Tensor]:
    """OLMo-named weights → the Ernie-4.5 layout, applying the two rewrites of the module docstring."""
    d, hd = config.d_model, config.d_model // config.n_heads
    perm = _rope_permutation(config.n_heads, hd)
    ones = torch.ones(d, dtype=state["transformer.wte.weight"].dtype)
    out = {"model.embed_tokens.weight": state["transformer.wte.weight"] - state["transformer.wte.weight"].mean(1, True)}
    for i in range(config.n_layers):
        src, dst = f"transformer.blocks.{i}.", f"model.layers.{i}."
        qkv_w, qkv_b = state[src + "att_proj.weight"], state.get(src + "att_proj.bias")
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            rows = slice(j * d, (j + 1) * d)
            order = perm if name != "v_proj" else torch.arange(d)
            out[f"{dst}self_attn.{name}.weight"] = qkv_w[rows][order]
            if qkv_b is not None:
                out[f"{dst}self_attn.{name}.bias"] = qkv_b[rows][order]
        value_w, gate_w = state[src + "ff_proj.weight"].chunk(2, dim=0)
        out[f"{dst}mlp.up_proj.weight"], out[f"{dst}mlp.gate_proj.weight"] = value_w, gate_w
        out[f"{dst}self_attn.o_proj.weight"] = _centre_rows(state[src + "attn_out.weight"])
        out[f"{dst}mlp.down_proj.weight"] = _centre_rows(state[src + "ff_out.weight"])
        if config.bias:
            value_b, gate_b = state[src + "ff_proj.bias"].chunk(2, dim=0)
            out[f"{dst}mlp.up_proj.bias"], out[f"{dst}mlp.gate_proj.bias"] = value_b, gate_b
            out[f"{dst}self_attn.o_proj.bias"] = state[src + "attn_out.bias"] - state[src + "attn_out.bias"].mean()
            out[f"{dst}mlp.down_proj.bias"] = state[src + "ff_out.bias"] - state[src + "ff_out.bias"].mean()
        out[f"{dst}input_layernorm.weight"] = ones.clone()
        out[f"{dst}post_attention_layernorm.weight"] = ones.clone()
    out["model.norm.weight"] = ones.clone()
    out["lm_head.weight"] = state["transformer.ff_out.weight"]
    if config.bias:
        out["lm_head.bias"] = state["transformer.ff_out.bias"]
    return {k: v.contiguous() for k, v in out.items()}


def from_hf_state_dict(hf: dict[str, torch.Tensor], config: OlmoConfig) -> dict[str, torch.Tensor]:
    """The inverse map, for continuing training from an export (`--init-from`).

    The centring is kept: LayerNorm ignores the mean of its input, so centred weights compute the same
    function in the OLMo architecture. RMSNorm weights other than 1 have no counterpart and are refused.
    """
    hd = config.d_model // config.n_heads
    inverse = torch.argsort(_rope_permutation(config.n_heads, hd))
    for name, tensor in hf.items():
        if (name.endswith("layernorm.weight") or name == "model.norm.weight") and not torch.all(tensor == 1):
            raise PalomaError(f"{name}: norm weights are not all 1, so this is not a model baselines exported")
    out = {"transformer.wte.weight": hf["model.embed_tokens.weight"]}
    for i in range(config.n_layers):
        src, dst = f"model.layers.{i}.", f"transformer.blocks.{i}."
        q, k, v = (hf[f"{src}self_attn.{n}.weight"] for n in ("q_proj", "k_proj", "v_proj"))
        out[dst + "att_proj.weight"] = torch.cat((q[inverse], k[inverse], v))
        out[dst + "attn_out.weight"] = hf[src + "self_attn.o_proj.weight"]
        out[dst + "ff_proj.weight"] = torch.cat((hf[src + "mlp.up_proj.weight"], hf[src + "mlp.gate_proj.weight"]))
        out[dst + "ff_out.weight"] = hf[src + "mlp.down_proj.weight"]
        if config.bias:
            q, k, v = (hf[f"{src}self_attn.{n}.bias"] for n in ("q_proj", "k_proj", "v_proj"))
            out[dst + "att_proj.bias"] = torch.cat((q[inverse], k[inverse], v))
            out[dst + "attn_out.bias"] = hf[src + "self_attn.o_proj.bias"]
            out[dst + "ff_proj.bias"] = torch.cat((hf[src + "mlp.up_proj.bias"], hf[src + "mlp.gate_proj.bias"]))
            out[dst + "ff_out.bias"] = hf[src + "mlp.down_proj.bias"]
    out["transformer.ff_out.weight"] = hf["lm_head.weight"]
    if config.bias:
        out["transformer.ff_out.bias"] = hf["lm_head.bias"]
    return out


def write_transformers(
    state: dict[str, torch.Tensor],
    config: OlmoConfig,
    output_dir: str | Path,
    tokenizer=None,
    training: dict | None = None,
) -> Path:
    """Write config.json, model.safetensors, the tokenizer and paloma_training.json into `output_dir`.

    The folder is written beside its final place and renamed into it (replacing an earlier export), so it
    appears complete or not at all.
    """
    from transformers import AutoModelForCausalLM

    output_dir = Path(output_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config(config))
    hf_state = to_hf_state_dict({k: v.detach().float().cpu() for k, v in state.items()}, config)
    model.load_state_dict(hf_state, assign=True)
    with atomic_dir(output_dir, replace=True) as staging:
        model.save_pretrained(staging)
        # transformers 4.x and other engines read `rope_theta` at the top level (5.x nests it in
        # rope_parameters); without it they would fall back to Ernie's default θ of 500000.
        hf = json.loads((staging / "config.json").read_text())
        write_json(staging / "config.json", {**hf, "rope_theta": config.rope_theta})
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        if training is not None:
            write_json(staging / TRAINING_FILE, training)
        honour_umask(staging)
    return output_dir


def read_transformers(path: str | Path) -> tuple[OlmoConfig, dict[str, torch.Tensor]]:
    """Read a folder written by `write_transformers` back as (its OlmoConfig, OLMo-named weights)."""
    from safetensors.torch import load_file

    path = Path(path)
    config_file = path / "config.json"
    if not config_file.is_file():
        raise PalomaError(f"{path}: no config.json (not an exported model)")
    hf = json.loads(config_file.read_text())
    dense = hf.get("moe_layer_start_index", 0) >= hf.get("num_hidden_layers", 0)
    if hf.get("model_type") != "ernie4_5_moe" or not dense:
        raise PalomaError(f"{config_file}: not a model exported by baselines (model_type {hf.get('model_type')!r})")
    config = OlmoConfig(
        d_model=hf["hidden_size"],
        n_layers=hf["num_hidden_layers"],
        n_heads=hf["num_attention_heads"],
        mlp_hidden=hf["intermediate_size"],
        vocab_size=hf["vocab_size"],
        max_seq_len=hf["max_position_embeddings"],
        rope_theta=float((hf.get("rope_parameters") or {}).get("rope_theta", 10000.0)),
        layer_norm_eps=hf["rms_norm_eps"],
        bias=hf["use_bias"],
        eos_token_id=hf["eos_token_id"],
        pad_token_id=hf["pad_token_id"],
    )
    weights: dict[str, torch.Tensor] = {}
    for file in sorted(path.glob("*.safetensors")):
        weights.update(load_file(file))
    return config, from_hf_state_dict(weights, config)
