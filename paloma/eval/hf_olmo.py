"""Legacy OLMo checkpoints (`hf_olmo` format, e.g. the released Paloma baselines) → a standard `transformers` folder.

The six Paloma baselines were trained with AI2's OLMo code and released in its older Hugging Face wrapper
(`model_type: hf_olmo`, loadable only with `ai2-olmo`'s remote code, which no longer runs on transformers 5).
Their weights are exactly the architecture of `paloma.eval.olmo` (OLMo's module names), so a checkpoint
converts in two plain steps, with no remote code and no rewrite of its own:

1. `config.json` (the fields of OLMo's own ModelConfig) → `OlmoConfig`; anything the architecture cannot represent
   (ALiBi, QK-norm, grouped-query attention, affine norms, logit scaling, clipping, …) is refused with the
   field's name, never silently approximated;
2. `model.transformer.…` weights (`pytorch_model.bin` or safetensors, sharded or not) → OLMo-named weights, by
   dropping the wrapper's `model.` prefix, checked name by name and shape by shape against `weight_shapes`.

`paloma.eval.olmo.write_transformers` then writes the standard folder, the one exact representation the
baselines' exports use too, so `paloma eval`, `paloma convert hf-olmo` and the baselines share one conversion.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from paloma.errors import PalomaError
from paloma.eval.olmo import OlmoConfig, weight_shapes, write_transformers

MODEL_TYPE = "hf_olmo"
WRAPPER_PREFIX = "model."
# OLMo ModelConfig fields whose only value our model supports, and that value (None: unset / off).
REQUIRED_VALUES = {
    "alibi": False,
    "rope": True,
    "attention_layer_norm": False,
    "clip_qkv": None,
    "multi_query_attention": (None, False),
    "embedding_layer_norm": False,
    "norm_after": False,
    "scale_logits": False,
    "block_type": "sequential",
    "activation_type": "swiglu",
    "layer_norm_type": ("default", "low_precision"),
    "layer_norm_with_affine": False,
    "attention_layer_norm_with_affine": (False, None, True),  # unused without attention_layer_norm
}


def is_hf_olmo(folder: str | Path) -> bool:
    """Whether a folder holds an hf_olmo checkpoint (its config says `model_type: hf_olmo`)."""
    config = Path(folder) / "config.json"
    try:
        return config.is_file() and json.loads(config.read_text()).get("model_type") == MODEL_TYPE
    except (OSError, json.JSONDecodeError):
        return False


def model_config(raw: dict, where: str) -> OlmoConfig:
    """The OlmoConfig of an hf_olmo `config.json`; unsupported settings are errors naming the field."""
    for name, allowed in REQUIRED_VALUES.items():
        value = raw.get(name, allowed[0] if isinstance(allowed, tuple) else allowed)
        if value not in (allowed if isinstance(allowed, tuple) else (allowed,)):
            raise PalomaError(f"{where}: {name} = {value!r} is not supported by the conversion (expected {allowed!r})")
    d_model, n_heads = int(raw["d_model"]), int(raw["n_heads"])
    if raw.get("n_kv_heads") not in (None, n_heads):
        raise PalomaError(f"{where}: n_kv_heads = {raw['n_kv_heads']} (grouped-query attention) is not supported")
    fused = raw.get("mlp_hidden_size") or int(raw.get("mlp_ratio", 4)) * d_model  # value and gate halves together
    return OlmoConfig(
        d_model=d_model,
        n_layers=int(raw["n_layers"]),
        n_heads=n_heads,
        mlp_hidden=fused // 2,
        vocab_size=int(raw.get("embedding_size") or raw["vocab_size"]),
        max_seq_len=int(raw.get("max_sequence_length", 2048)),
        rope_theta=float(raw.get("rope_theta", 10000.0)),
        layer_norm_eps=float(raw.get("layer_norm_eps", 1e-5)),
        bias=bool(raw.get("include_bias", True)),
        eos_token_id=int(raw.get("eos_token_id", 0)),
        pad_token_id=int(raw.get("pad_token_id", 1)),
    )


def _weight_files(folder: Path) -> list[Path]:
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        index = folder / index_name
        if index.is_file():
            return [folder / name for name in sorted(set(json.loads(index.read_text())["weight_map"].values()))]
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return [folder / name]
    raise PalomaError(f"{folder}: no weights (model.safetensors or pytorch_model.bin, or their .index.json)")


def _load_weights(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # torch raises several types for unreadable or pickled-code files
        raise PalomaError(f"{path}: cannot read the weights ({type(err).__name__}: {err})") from None


def state_dict(folder: Path, config: OlmoConfig, tied: bool) -> dict[str, torch.Tensor]:
    """Our (OLMo-named) state dict from the checkpoint's `model.transformer.…` weights."""
    state: dict[str, torch.Tensor] = {}
    for path in _weight_files(folder):
        for name, tensor in _load_weights(path).items():
            state[name.removeprefix(WRAPPER_PREFIX)] = tensor
    if tied:  # the output layer is the input embedding (OLMo's weight tying has no output bias)
        state["transformer.ff_out.weight"] = state["transformer.wte.weight"]
        if config.bias:
            state["transformer.ff_out.bias"] = torch.zeros(
                config.vocab_size, dtype=state["transformer.wte.weight"].dtype
            )
    expected = weight_shapes(config)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise PalomaError(f"{folder}: the weights do not match the OLMo architecture of its config.json ({detail})")
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise PalomaError(f"{folder}: {name} has shape {tuple(state[name].shape)}, the config implies {shape}")
    return {name: state[name] for name in expected}


def tokenizer(folder: Path, config: OlmoConfig):
    """The checkpoint's tokenizer as a plain fast tokenizer (its `OLMoTokenizerFast` class is remote code)."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    path = folder / "tokenizer.json"
    if not path.is_file():
        raise PalomaError(f"{folder}: no tokenizer.json beside the checkpoint")
    backend = Tokenizer.from_file(str(path))
    eos, pad = backend.id_to_token(config.eos_token_id), backend.id_to_token(config.pad_token_id)
    return PreTrainedTokenizerFast(tokenizer_object=backend, eos_token=eos, pad_token=pad)


def read_checkpoint(folder: str | Path) -> tuple[OlmoConfig, dict[str, torch.Tensor], object]:
    """(the OlmoConfig, the OLMo-named weights, the tokenizer) of an hf_olmo checkpoint folder."""
    folder = Path(folder)
    if not is_hf_olmo(folder):
        raise PalomaError(f"{folder}: not an hf_olmo checkpoint (its config.json must say model_type: hf_olmo)")
    where = str(folder / "config.json")
    raw = json.loads((folder / "config.json").read_text())
    try:
        config = model_config(raw, where)
    except (KeyError, TypeError, ValueError) as err:
        raise PalomaError(f"{where}: missing or malformed field ({err})") from None
    return config, state_dict(folder, config, tied=bool(raw.get("weight_tying", False))), tokenizer(folder, config)


def convert(source: str | Path, output_dir: str | Path) -> Path:
    """Write an hf_olmo checkpoint as a standard folder (loadable with AutoModelForCausalLM, no remote code)."""
    config, state, tok = read_checkpoint(source)
    total = sum(tensor.numel() for tensor in state.values())
    vocabulary_sized = ("transformer.wte.weight", "transformer.ff_out.weight", "transformer.ff_out.bias")
    non_embedding = total - sum(state[name].numel() for name in vocabulary_sized if name in state)
    record = {
        "converted_from": {"format": MODEL_TYPE, "path": str(source)},
        "parameters": {"total": total, "non_embedding": non_embedding},
        "training_tokens": None,
    }
    return write_transformers(state=state, config=config, output_dir=output_dir, tokenizer=tok, training=record)
