"""Loading a causal language model and its tokenizer, and the checks that keep results trustworthy.

Checks made before any compute: the model can take the protocol's maximum length; the prefix token
exists in the tokenizer; loading left no weights at their random initialisation (which is what
happens when an old OLMo checkpoint, format `hf_olmo`, is loaded without its remote code).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from paloma.errors import PalomaError

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Config fields under which architectures state how many positions they can take.
MAX_POSITION_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    name_or_path: str
    revision: str | None

    def describe(self) -> dict:
        config = self.model.config
        total, non_embedding = parameter_counts(self.model)
        return {
            "name_or_path": self.name_or_path,
            "revision": self.revision,
            "architecture": (getattr(config, "architectures", None) or [type(self.model).__name__])[0],
            "model_type": getattr(config, "model_type", None),
            "parameters": total,
            "non_embedding_parameters": non_embedding,
            "output_embedding_parameters": output_embedding_parameters(self.model),
            "vocab_size": getattr(config, "vocab_size", None),
            "max_positions": max_positions(config),
            **_training_metadata(self.name_or_path),
        }


def parameter_counts(model: torch.nn.Module) -> tuple[int, int]:
    """(total, non-embedding) parameter counts; input and output embeddings count as embedding."""
    total = sum(p.numel() for p in model.parameters())
    embedding_ids = set()
    for module in (model.get_input_embeddings(), model.get_output_embeddings()):
        if module is not None:
            embedding_ids.update(id(p) for p in module.parameters())
    embedding = sum(p.numel() for p in model.parameters() if id(p) in embedding_ids)
    return total, total - embedding


def output_embedding_parameters(model: torch.nn.Module) -> int:
    """Parameters of the output embedding not shared with the input embedding (0 when tied): what OLMo-ladder
    counts in N beside the non-embedding parameters (`paloma ladder fit --count-output-embedding`)."""
    output, inputs = model.get_output_embeddings(), model.get_input_embeddings()
    if output is None:
        return 0
    shared = {id(p) for p in inputs.parameters()} if inputs is not None else set()
    return sum(p.numel() for p in output.parameters() if id(p) not in shared)


def max_positions(config) -> int | None:
    for name in MAX_POSITION_FIELDS:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _training_metadata(name_or_path: str) -> dict:
    """Training facts exported beside a checkpoint by `baselines` (parameters, training tokens), if any."""
    path = Path(name_or_path) / "paloma_training.json"
    if not path.is_file():
        return {}
    meta = json.loads(path.read_text())
    # The recipe's count: the exported architecture adds RMSNorm weights (all 1) that the trained model lacks.
    counts = meta.get("parameters") or {}
    recipe = {"parameters": counts["total"], "non_embedding_parameters": counts["non_embedding"]} if counts else {}
    return {**recipe, "training_tokens": meta.get("training_tokens"), "training": meta}


def load_model(
    name_or_path: str,
    revision: str | None = None,
    dtype: str = "float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    token: str | None = None,
) -> LoadedModel:
    """Load model and tokenizer from a local folder or a hub id; errors are one line and name the model."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if dtype not in DTYPES:
        raise PalomaError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    refuse_unconvertible_olmo(name_or_path, trust_remote_code)
    common = {"revision": revision, "trust_remote_code": trust_remote_code, "token": token}
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, **common)
        model, info = AutoModelForCausalLM.from_pretrained(
            name_or_path, dtype=DTYPES[dtype], output_loading_info=True, **common
        )
    except OSError as err:
        raise PalomaError(f"model {name_or_path!r}: cannot load ({_first_line(err)})") from None
    except ValueError as err:
        raise PalomaError(f"model {name_or_path!r}: {_first_line(err)}") from None
    missing = [k for k in info.get("missing_keys", []) if not _is_tied(model, k)]
    if missing:
        raise PalomaError(
            f"model {name_or_path!r}: {len(missing)} weights were not in the checkpoint and would be random "
            f"(e.g. {missing[0]}); an old-format checkpoint needs --trust-remote-code"
        )
    model.to(device).eval()
    return LoadedModel(model, tokenizer, name_or_path, revision or _local_revision(model))


def _is_tied(model, key: str) -> bool:
    """The output embedding of a tied model is reported missing but shares the input embedding."""
    return key.endswith(("lm_head.weight", "embed_out.weight")) and getattr(model.config, "tie_word_embeddings", False)


def _local_revision(model) -> str | None:
    return getattr(model.config, "_commit_hash", None)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


def refuse_unconvertible_olmo(name_or_path: str, trust_remote_code: bool) -> None:
    """The Paloma baselines use the old `hf_olmo` format; without remote code their weights stay random."""
    config = Path(name_or_path) / "config.json"
    if config.is_file() and not trust_remote_code:
        model_type = json.loads(config.read_text()).get("model_type")
        if model_type == "hf_olmo":
            raise PalomaError(
                f"model {name_or_path!r} is in the old OLMo checkpoint format (hf_olmo): pass --trust-remote-code "
                "(and install ai2-olmo); loading it natively would leave the weights random"
            )


def check_max_length_config(config, name_or_path: str, max_length: int) -> None:
    """Refuse a maximum length beyond the model's positions (before any weights are loaded)."""
    limit = max_positions(config)
    if limit is not None and max_length > limit:
        raise PalomaError(
            f"--max-length {max_length} exceeds what model {name_or_path!r} can take ({limit} positions); "
            f"pass --max-length {limit} or less (results at different lengths are not comparable)"
        )


def resolve_prefix(tokenizer, prefix: str) -> int | None:
    """The prefix token id for `eos`, `bos`, `bos-else-eos`, `none` or a literal id."""
    if prefix == "none":
        return None
    if prefix.lstrip("-").isdigit():
        token_id = int(prefix)
        if not 0 <= token_id < len(tokenizer):
            raise PalomaError(f"--prefix {token_id} is not a token id of the tokenizer (size {len(tokenizer)})")
        return token_id
    if prefix == "bos-else-eos":
        return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else resolve_prefix(tokenizer, "eos")
    if prefix not in ("eos", "bos"):
        raise PalomaError(f"--prefix {prefix!r}: choose eos, bos, bos-else-eos, none or a token id")
    token_id = getattr(tokenizer, f"{prefix}_token_id")
    if token_id is None:
        raise PalomaError(f"--prefix {prefix}: the tokenizer has no {prefix.upper()} token; pass --prefix ID or none")
    return token_id
