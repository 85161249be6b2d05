"""Merged models: the weighted parameter average of checkpoints of one architecture (paloma.md §7).

Averaging the parameters of models continued from one seed model on different data partitions simulates a
model trained on their union, so a data ablation can be read off per Paloma domain without training it.
Two ways in:

- `paloma merge A B [C…] --weights … --output DIR` writes the average as an ordinary `transformers` model
  (safetensors) with the first model's tokenizer and a `merge.json` recipe beside it;
- a recipe file (YAML or JSON, `models: [{path, weight}]`) is built in memory by `load_merged(recipe)`, which
  is what `paloma eval --model recipe.yaml` calls, so nothing has to be written first.

Checkpoints must share the architecture (config and every tensor's shape) and the tokenizer vocabulary;
anything else fails with a message naming the difference. Config fields that do not change the weights
(`use_cache`, output flags, dropout, generation settings, where the checkpoint was saved) may differ.
Averages accumulate in float32, or float64 for float64 parameters, and are stored in the first model's dtype.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml

from paloma.errors import PalomaError
from paloma.io import atomic_dir, check_output_dir, current_umask

# Config fields that do not change the weights or what they compute at inference, so two checkpoints of one
# architecture may differ in them (the merge keeps the first model's values).
CONFIG_FIELDS_IGNORED = frozenset(
    {
        # where and how the checkpoint was saved
        *("_name_or_path", "name_or_path", "transformers_version", "torch_dtype", "dtype", "_commit_hash", "auto_map"),
        # what a forward pass returns or caches, and which attention kernel computes it
        *("use_cache", "output_attentions", "output_hidden_states", "return_dict", "torchscript"),
        *("attn_implementation", "_attn_implementation", "_attn_implementation_autoset"),
        # training-only settings (dropout is off in evaluation; initialisation is over once trained)
        *("initializer_range", "attention_dropout", "hidden_dropout", "embd_pdrop", "resid_pdrop", "attn_pdrop"),
        # task heads' labels and generation settings
        *("id2label", "label2id", "problem_type", "finetuning_task", "task_specific_params"),
        *("max_length", "min_length", "do_sample", "temperature", "top_k", "top_p", "num_beams"),
    }
)


@dataclass(frozen=True)
class MergeRecipe:
    """Which checkpoints to average, with weights normalised to sum to one."""

    paths: tuple[str, ...]
    weights: tuple[float, ...]

    def to_dict(self) -> dict:
        return {"models": [{"path": p, "weight": w} for p, w in zip(self.paths, self.weights, strict=True)]}


def make_recipe(paths: Sequence[str | Path], weights: Sequence[float] | None = None) -> MergeRecipe:
    """Validate paths and weights (equal by default; non-negative; normalised to sum to one)."""
    if len(paths) < 1:
        raise PalomaError("a merge needs at least one model")
    weights = [1.0] * len(paths) if weights is None else [float(w) for w in weights]
    if len(weights) != len(paths):
        raise PalomaError(f"{len(weights)} weights for {len(paths)} models")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise PalomaError(f"weights must be non-negative and not all zero, got {weights}")
    total = sum(weights)
    return MergeRecipe(tuple(str(p) for p in paths), tuple(w / total for w in weights))


def is_merge_recipe(path: str | Path) -> bool:
    """True for a YAML/JSON file with a `models` list: what `paloma eval --model` should hand to load_merged."""
    path = Path(path)
    if not path.is_file() or path.suffix not in (".yaml", ".yml", ".json"):
        return False
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return False
    return isinstance(raw, dict) and isinstance(raw.get("models"), list)


def read_recipe(path: str | Path) -> MergeRecipe:
    """Read a recipe file; relative model paths are resolved against the recipe's folder."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PalomaError(f"{path}: no such file") from None
    except yaml.YAMLError as err:
        raise PalomaError(f"{path}: invalid YAML/JSON ({err})") from None
    models = raw.get("models") if isinstance(raw, dict) else None
    if not isinstance(models, list) or not models:
        raise PalomaError(f"{path}: field 'models' must be a non-empty list of {{path, weight}}")
    paths, weights = [], []
    for i, entry in enumerate(models):
        if not isinstance(entry, dict) or "path" not in entry:
            raise PalomaError(f"{path}: models[{i}] lacks the field 'path'")
        model_path = Path(str(entry["path"])).expanduser()
        paths.append(model_path if model_path.is_absolute() else (path.parent / model_path))
        weights.append(entry.get("weight", 1.0))
    return make_recipe(paths, weights)


def vocab_hash(tokenizer) -> str:
    """SHA-256 of the tokenizer's vocabulary (token → id), the identity two merged models must share."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    return hashlib.sha256(json.dumps(vocab, ensure_ascii=False).encode("utf-8")).hexdigest()


def _config_view(config) -> dict:
    return {k: v for k, v in config.to_dict().items() if k not in CONFIG_FIELDS_IGNORED}


def _check_same_architecture(first: str, config_a, other: str, config_b) -> None:
    """Refuse configs that differ where the weights depend on them. Different model types are named as
    such (`model_type: 'llama' vs 'gpt2'`), not by the first of the fields that differ as a consequence."""
    a, b = _config_view(config_a), _config_view(config_b)
    if a.get("model_type") != b.get("model_type"):
        differing = ["model_type"]
    else:
        differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if differing:
        detail = ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in differing[:4])
        raise PalomaError(f"cannot merge {other} into {first}: different architectures ({detail})")


def check_architectures(paths: Sequence[str], trust_remote_code: bool = False) -> None:
    """Compare every model's config with the first's before any weights are loaded (configs are small)."""
    from transformers import AutoConfig

    def config(path: str):
        try:
            return AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as err:
            raise PalomaError(f"{path}: cannot read its config ({str(err).splitlines()[0]})") from None

    first = config(paths[0])
    for path in paths[1:]:
        _check_same_architecture(paths[0], first, path, config(path))


def _looks_like_a_path(name: str) -> bool:
    """A hub id is `name` or `org/name`; anything absolute, relative-marked or deeper is a local path."""
    return os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1 or name.endswith("/")


def check_model_paths(paths: Sequence[str | Path]) -> None:
    """Name a missing or wrong model folder before any model is loaded (instead of the hub's id-format error)."""
    for given in map(str, paths):
        path = Path(given).expanduser()
        if path.is_dir():
            if not (path / "config.json").is_file():
                raise PalomaError(f"{given}: not a transformers model folder (no config.json)")
        elif path.exists():
            raise PalomaError(f"{given}: is a file; a merge takes model folders")
        elif _looks_like_a_path(given):
            raise PalomaError(f"{given}: no such model folder")


def _load(path: str, dtype: torch.dtype | None, trust_remote_code: bool):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype or "auto", trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        detail = str(err).splitlines()[0]
        if not Path(path).expanduser().exists():
            raise PalomaError(f"{path}: no such model folder, nor a hub model available offline ({detail})") from None
        raise PalomaError(f"{path}: cannot load as a transformers causal LM ({detail})") from None
    return model, tokenizer


def average_models(
    recipe: MergeRecipe, dtype: torch.dtype | None = None, trust_remote_code: bool = False
) -> tuple[torch.nn.Module, object]:
    """Build the weighted average in memory: returns (model, tokenizer) of the first checkpoint's kind.

    Memory: the first model (which receives the average), a float32 (float64) accumulator and one other model.
    """
    check_model_paths(recipe.paths)
    check_architectures(recipe.paths, trust_remote_code)
    model, tokenizer = _load(recipe.paths[0], dtype, trust_remote_code)
    reference_vocab = vocab_hash(tokenizer)
    state = model.state_dict()
    total = {k: _accumulator(v) * recipe.weights[0] if v.is_floating_point() else v.clone() for k, v in state.items()}
    for path, weight in zip(recipe.paths[1:], recipe.weights[1:], strict=True):
        other, other_tokenizer = _load(path, dtype, trust_remote_code)
        if vocab_hash(other_tokenizer) != reference_vocab:
            raise PalomaError(f"cannot merge {path} into {recipe.paths[0]}: different tokenizer vocabularies")
        _accumulate(total, other.state_dict(), weight, path)
        del other
    model.load_state_dict({k: v.to(state[k].dtype) for k, v in total.items()})
    model.eval()
    return model, tokenizer


def _accumulator(tensor: torch.Tensor) -> torch.Tensor:
    """A copy to sum into: float64 parameters keep float64 (float32 would round them), others float32."""
    return tensor.to(torch.float64 if tensor.dtype == torch.float64 else torch.float32, copy=True)


def _accumulate(total: dict[str, torch.Tensor], state: dict[str, torch.Tensor], weight: float, path: str) -> None:
    if set(state) != set(total):
        name = sorted(set(state) ^ set(total))[0]
        raise PalomaError(f"cannot merge {path}: parameter {name!r} is not in every model")
    for name, tensor in state.items():
        if tensor.shape != total[name].shape:
            raise PalomaError(
                f"cannot merge {path}: {name} has shape {tuple(tensor.shape)}, expected {tuple(total[name].shape)}"
            )
        if tensor.is_floating_point():
            total[name].add_(tensor.to(total[name].dtype), alpha=weight)
        elif not torch.equal(tensor, total[name]):
            raise PalomaError(f"cannot merge {path}: integer buffer {name} differs between models")


def load_merged(spec: str | Path, dtype: torch.dtype | None = None, trust_remote_code: bool = False):
    """A recipe file → (model, tokenizer) of the weighted average, built in memory (for `paloma eval`)."""
    return average_models(read_recipe(spec), dtype=dtype, trust_remote_code=trust_remote_code)


def merge(
    recipe: MergeRecipe, output: str | Path, dtype: torch.dtype | None = None, trust_remote_code: bool = False
) -> Path:
    """Write the average as a transformers model (safetensors), its tokenizer, and merge.json.

    The model is written into a temporary folder beside `output` and renamed into place, so a failed merge
    leaves nothing behind; an existing non-empty `output` is never overwritten.
    """
    output = check_output_dir(output, recipe.paths)
    if output.is_dir() and any(output.iterdir()):
        raise PalomaError(f"{output}: exists and is not empty; choose a new folder")
    check_model_paths(recipe.paths)
    model, tokenizer = average_models(recipe, dtype=dtype, trust_remote_code=trust_remote_code)
    with atomic_dir(output) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        info = {**recipe.to_dict(), "vocab_hash": vocab_hash(tokenizer), "dtype": str(next(model.parameters()).dtype)}
        (staging / "merge.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        _readable_like_any_file(staging)
    return output


def _readable_like_any_file(folder: Path) -> None:
    """Give every file the mode a new file gets (0644 under umask 022): safetensors writes its weights 0600."""
    mask = current_umask()
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~mask)
