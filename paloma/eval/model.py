"""Loading a causal language model and its tokenizer, and the checks that keep results trustworthy.

Checks made before any compute: the model can take the protocol's maximum length; the prefix token exists in
the tokenizer; loading left no weights at their random initialisation. Legacy OLMo checkpoints (`hf_olmo`,
the format of the released Paloma baselines) are converted on load, without remote code, into a cache folder
keyed by the checkpoint's content hash (`paloma.eval.hf_olmo`, the same conversion `paloma convert` writes).

Options in the spirit of lm-evaluation-harness's `--model_args` reach `from_pretrained`: `attn_implementation`,
`device_map` (`auto`, `balanced`, … with `offload_folder`/`max_memory`), `revision`, `quantization_config`
where its package is installed; `--peft` applies an adapter. A model's revision (what `--resume` compares)
covers its whole weights: hub commits, or a content hash of local files cached by size and mtime.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from paloma.errors import PalomaError
from paloma.io import cache_root, file_hash

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Config fields under which architectures state how many positions they can take.
MAX_POSITION_FIELDS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")
# --model-args that place the model without changing its numbers; every other one is part of its revision.
PLACEMENT_ARGS = frozenset({"device_map", "max_memory", "offload_folder", "offload_state_dict", "low_cpu_mem_usage"})
QUANTIZATION_PACKAGES = {"bitsandbytes": "bitsandbytes", "gptq": "optimum", "awq": "awq", "hqq": "hqq"}


@dataclass
class ModelOptions:
    """How to load a model: what `paloma eval` passes through to `from_pretrained` and peft."""

    revision: str | None = None
    dtype: str = "float32"
    trust_remote_code: bool = False
    token: str | None = None
    model_args: dict = field(default_factory=dict)
    peft: str | None = None

    def pretrained_kwargs(self) -> dict:
        kwargs = {"revision": self.revision, "trust_remote_code": self.trust_remote_code, "token": self.token}
        return {**kwargs, **{k: v for k, v in self.model_args.items() if k not in ("dtype", "torch_dtype")}}

    @property
    def spread(self) -> bool:
        """Whether accelerate places the model (`device_map`): then it is never moved as a whole."""
        return self.model_args.get("device_map") is not None


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object
    name_or_path: str
    revision: str | None
    converted_from: str | None = None

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
            **({"converted_from": self.converted_from} if self.converted_from else {}),
            **({"device_map": {k: str(v) for k, v in placed.items()}} if (placed := _placement(self.model)) else {}),
            **_training_metadata(self.name_or_path),
        }


def _placement(model) -> dict:
    """Where accelerate put each module (device_map), as it reports it; empty for a model in one piece."""
    inner = getattr(model, "base_model", None)
    return dict(getattr(model, "hf_device_map", None) or getattr(inner, "hf_device_map", None) or {})


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


def vocabulary_size(config) -> int | None:
    """The rows of the input embedding a config declares (its text config's, for a multimodal model)."""
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else None
    for candidate in (config, text_config):
        value = getattr(candidate, "vocab_size", None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def embedding_rows(model: torch.nn.Module) -> int | None:
    """The rows of a loaded model's input embedding (None where the model does not say)."""
    try:
        module = model.get_input_embeddings()
    except (AttributeError, NotImplementedError):
        return None
    return getattr(module, "num_embeddings", None)


def lm_eval_max_length(config, tokenizer) -> int:
    """The length lm-evaluation-harness's HFLM uses when none is given (its `max_length` property)."""
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        if hasattr(config, name):
            return int(getattr(config, name))
    limit = getattr(tokenizer, "model_max_length", None)
    if limit is None or limit == 1000000000000000019884624838656:  # transformers' "no limit"
        return 2048
    return int(limit)


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


# ------------------------------------------------------------------------------------------ --model-args


def parse_model_args(text: str | None) -> dict:
    """`key=value,key=value` → dict; values are JSON where they parse (numbers, true/false, {…}), else strings."""
    if not text:
        return {}
    parts, depth, current = [], 0, ""
    for char in text:
        depth += (char in "{[") - (char in "}]")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    args = {}
    for part in (p.strip() for p in parts):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise PalomaError(
                f"--model-args: {part!r} is not key=value (e.g. device_map=auto,attn_implementation=sdpa)"
            )
        args[key.strip()] = _parse_value(value.strip())
    return check_model_args(args)


def _parse_value(value: str):
    lowered = {"true": True, "false": False, "none": None, "null": None}
    if value.lower() in lowered:
        return lowered[value.lower()]
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def check_model_args(args: dict) -> dict:
    """Refuse what cannot work before anything loads: a quantization without its package, clashing options."""
    for key in ("trust_remote_code", "revision", "token"):
        if key in args:
            raise PalomaError(f"--model-args {key}=…: use --{key.replace('_', '-')} instead")
    quantization = args.get("quantization_config")
    if args.get("load_in_4bit") or args.get("load_in_8bit"):
        quantization = {"quant_method": "bitsandbytes"}
    if quantization is not None:
        if not isinstance(quantization, dict) or "quant_method" not in quantization:
            raise PalomaError("--model-args quantization_config must be a JSON object with quant_method")
        package = QUANTIZATION_PACKAGES.get(str(quantization["quant_method"]), str(quantization["quant_method"]))
        if importlib.util.find_spec(package) is None:
            raise PalomaError(f"--model-args: {quantization['quant_method']} quantization needs the {package} package "
                              f"(pip install {package})")  # fmt: skip
    return args


def _quantization(args: dict) -> dict:
    config = args.get("quantization_config")
    if isinstance(config, dict):
        from transformers import AutoConfig  # noqa: F401 (transformers resolves the class from quant_method)
        from transformers.quantizers.auto import AutoQuantizationConfig

        return {**args, "quantization_config": AutoQuantizationConfig.from_dict(config)}
    return args


# ------------------------------------------------------------------------------------------ revisions


def content_hash(folder: Path) -> str:
    """A hash of every file of a model folder (names and contents), each file's hash cached by size and mtime.

    Two checkpoints that differ in one late layer hash differently; a 140 GB checkpoint is read once.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        digest.update(path.name.encode() + b"\0" + file_hash(path).encode() + b"\0")
    return digest.hexdigest()[:16]


def model_revision(name_or_path: str, options: ModelOptions, hub_commit: str | None) -> str | None:
    """What identifies the weights scored: the hub commit or the local content hash, plus adapter and options."""
    folder = Path(name_or_path)
    base = options.revision or hub_commit or (f"local:{content_hash(folder)}" if folder.is_dir() else None)
    extras = []
    if options.peft:
        peft = Path(options.peft)
        extras.append(f"peft:{content_hash(peft) if peft.is_dir() else options.peft}")
    numeric = {k: v for k, v in sorted(options.model_args.items()) if k not in PLACEMENT_ARGS}
    if numeric:
        extras.append(
            "args:" + hashlib.sha256(json.dumps(numeric, sort_keys=True, default=str).encode()).hexdigest()[:12]
        )
    return "+".join([str(base), *extras]) if extras else base


# ------------------------------------------------------------------------------------------ legacy OLMo


def _hub_file(repo: str, filename: str, options: ModelOptions) -> Path | None:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo, filename, revision=options.revision, token=options.token))
    except (EntryNotFoundError, LocalEntryNotFoundError, HfHubHTTPError, OSError, ValueError):
        return None


def resolve_legacy(name_or_path: str, options: ModelOptions, main: bool = True) -> tuple[str, str | None]:
    """(what to load, the legacy format it was converted from or None).

    An hf_olmo checkpoint, local or on the hub, is converted once into `<cache>/converted/<content hash>/`
    and loaded from there natively: with or without --trust-remote-code, it never runs remote code. Only the
    main process converts (`main`); the others find the folder it wrote.
    """
    from paloma.eval import hf_olmo

    folder = Path(name_or_path)
    if not folder.is_dir():
        if name_or_path.count("/") != 1:
            return name_or_path, None
        config = _hub_file(name_or_path, "config.json", options)
        if config is None or json.loads(config.read_text()).get("model_type") != hf_olmo.MODEL_TYPE:
            return name_or_path, None
        folder = hub_snapshot(name_or_path, options)
    if not hf_olmo.is_hf_olmo(folder):
        return name_or_path, None
    target = cache_root() / "converted" / f"hf_olmo-{content_hash(folder)}"
    if main and not (target / "config.json").is_file():
        hf_olmo.convert(folder, target)
    return str(target), hf_olmo.MODEL_TYPE


def hub_snapshot(repo: str, options: ModelOptions) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo, revision=options.revision, token=options.token))
    except LocalEntryNotFoundError:
        raise PalomaError(f"model {repo!r}: not in the hub cache while the hub cannot be reached") from None
    except HfHubHTTPError as err:
        raise PalomaError(f"model {repo!r}: download failed ({err})") from None


# ------------------------------------------------------------------------------------------ loading


def load_tokenizer_and_config(name_or_path: str, options: ModelOptions):
    """The tokenizer and model config alone: enough to plan (and dry-run) without loading weights."""
    from transformers import AutoConfig, AutoTokenizer

    common = {"revision": options.revision, "trust_remote_code": options.trust_remote_code, "token": options.token}
    if not Path(name_or_path).exists() and name_or_path.count("/") != 1:
        raise PalomaError(f"model {name_or_path!r}: no such folder, and not a hub id (org/name)")
    try:
        return AutoTokenizer.from_pretrained(name_or_path, **common), AutoConfig.from_pretrained(name_or_path, **common)
    except (OSError, ValueError, KeyError) as err:
        raise PalomaError(f"model {name_or_path!r}: cannot load ({_first_line(err)})") from None


def load_model(name_or_path: str, options: ModelOptions, device: torch.device | str) -> torch.nn.Module:
    """Load the weights (placed by `device_map`, or moved to `device`), with the adapter applied if asked."""
    from transformers import AutoModelForCausalLM

    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            name_or_path,
            dtype=DTYPES[options.dtype],
            output_loading_info=True,
            **_quantization(options.pretrained_kwargs()),
        )
    except OSError as err:
        raise PalomaError(f"model {name_or_path!r}: cannot load ({_first_line(err)})") from None
    except (ValueError, TypeError, ImportError) as err:
        raise PalomaError(f"model {name_or_path!r}: {_first_line(err)}") from None
    except AttributeError as err:  # remote code written for another transformers version
        raise PalomaError(
            f"model {name_or_path!r}: its remote code fails with this transformers ({_first_line(err)}); "
            "a native conversion may exist (paloma convert), or pin the transformers version it was written for"
        ) from None
    missing = [k for k in info.get("missing_keys", []) if not _is_tied(model, k)]
    if missing:
        raise PalomaError(
            f"model {name_or_path!r}: {len(missing)} weights were not in the checkpoint and would be random "
            f"(e.g. {missing[0]}); the checkpoint does not match its architecture"
        )
    if not options.spread and getattr(model, "hf_quantizer", None) is None:
        model.to(device)
    if options.peft:
        model = _with_adapter(model, options.peft)
    return model.eval()


def _with_adapter(model, path: str):
    if importlib.util.find_spec("peft") is None:
        raise PalomaError("--peft needs the peft package (pip install peft)")
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, path)
    except (OSError, ValueError) as err:
        raise PalomaError(f"--peft {path}: cannot load the adapter ({_first_line(err)})") from None


def _is_tied(model, key: str) -> bool:
    """The output embedding of a tied model is reported missing but shares the input embedding."""
    return key.endswith(("lm_head.weight", "embed_out.weight")) and getattr(model.config, "tie_word_embeddings", False)


def _first_line(err: Exception) -> str:
    return str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__


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
