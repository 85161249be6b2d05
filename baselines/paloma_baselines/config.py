"""The training recipe as plain dataclasses, loaded from YAML files in `baselines/configs/`.

A config file holds the whole recipe of one run (architecture, tokenizer, optimizer, schedule, batch,
corpus), so two runs that share a file differ only where the file says. A file may `inherit` another:
the six Paloma baselines inherit `_paloma-1b.yaml` and name their corpus (`inherit: c4` names a shipped
config; a path is relative to the file). Unknown keys are errors that name the file and the key, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from paloma.errors import PalomaError
from paloma.eval.olmo import OlmoConfig

_HERE = Path(__file__).resolve().parent

# The recipes: `baselines/configs/` beside this package in a checkout, inside it in the wheel (pyproject.toml).
CONFIG_DIR = next(
    (folder for folder in (_HERE / "configs", _HERE.parent / "configs") if folder.is_dir()), _HERE / "configs"
)

# The six reference corpora of Paloma §6, in the order the paper lists them.
PALOMA_BASELINES = ("c4", "mc4", "falcon-refinedweb", "redpajama", "pile", "dolma")


@dataclass
class ModelConfig(OlmoConfig):
    """The architecture (`paloma.eval.olmo.OlmoConfig`, shared with the evaluator's exports) plus how to
    initialise it, which only training needs."""

    init: str = "mitchell"  # OLMo's "mitchell" initialisation; "normal" uses init_std everywhere
    init_std: float = 0.02


@dataclass
class DataConfig:
    """The raw corpus (read by `paloma baselines tokenize`) and the tokenized files training reads.

    Training never tokenizes: it reads `tokens`, token files in OLMo's format (flat uint16/uint32 memmaps;
    each file is cut into instances of train.seq_len on its own, as OLMo's `MemMapDataset` does). `tokens` is
    a folder written by `paloma baselines tokenize` (it records its dtype, tokenizer and decontamination), or
    OLMo's or Dolma's own files: `.npy` paths, folders or globs, comma-separated in OLMo's order, or a `.txt`
    file that lists them one per line; their dtype is `memmap_dtype`.
    """

    corpus: str = ""  # a Hugging Face dataset id, or a local file/folder/glob of JSONL(.gz/.zst) or Parquet
    corpus_config: str | None = None  # the dataset's configuration (e.g. "en"); several: comma-separated
    data_files: str | None = None  # a glob inside the dataset repository (e.g. mC4-en's files in allenai/c4)
    split: str = "train"
    text_field: str = "text"
    tokenizer: str = "allenai/gpt-neox-olmo-dolma-v1_5"  # a hub id or a local folder/tokenizer.json
    decontamination_index: str | None = None  # a `paloma decon` index applied while tokenizing; null: none
    tokens: str | None = None  # the tokenized training data (see above); null: set it or pass --tokens
    memmap_dtype: str = "uint16"  # dtype of OLMo files named in `tokens` (a tokenize folder records its own)
    shard_tokens: int = 1 << 28  # tokenize: a task starts a new file after this many tokens (512 MiB of uint16)


@dataclass
class OptimizerConfig:
    """LionW with decoupled weight decay, as OLMo trained the baselines.

    `no_decay_norm_and_bias` is OLMo's option of that name at commit 1f2f020 (the code of the Paloma
    baselines): true by default and never overridden by their configs, so weight decay applies to the weights
    of linear layers only, never to biases, norms or the embedding (OLMo's `get_param_groups`). False decays
    every parameter.
    """

    name: str = "lionw"
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.1
    no_decay_norm_and_bias: bool = True
    grad_clip: float = 1.0


@dataclass
class ScheduleConfig:
    """Cosine with linear warmup, laid out over `total_steps` and usually stopped early (train.max_steps).

    Warmup: OLMo's configs for these runs say 5000 steps, the paper says 2000 (Paloma §6, uncertain). We
    take 5000 because the configs are what the code ran; set 2000 to follow the paper.
    """

    warmup_steps: int = 5000
    total_steps: int = 70000
    final_lr_factor: float = 0.1  # the cosine ends at lr * final_lr_factor
    warmup_start_factor: float = 0.1  # OLMo's warmup starts at 10% of the peak LR


@dataclass
class TrainConfig:
    """The batch, the length of the run, how it is computed, and its bookkeeping.

    `activation_checkpointing`, `compile` and `loss_chunk_tokens` change memory and speed, never the
    result (up to float summation order), so they may change between resumes.
    """

    global_batch_size: int = 2048  # sequences per optimizer step, over all processes
    micro_batch_size: int = 8  # sequences per forward pass on one process
    seq_len: int = 2048
    max_steps: int = 35000
    seed: int = 6198  # seeds initialisation and the one global data permutation
    mixed_precision: str = "bf16"  # "bf16", "fp16" or "no"; "no" is forced on CPU
    activation_checkpointing: bool = False  # recompute each block's activations in the backward pass
    compile: bool = False  # torch.compile each block
    loss_chunk_tokens: int = 4096  # the loss is computed this many tokens at a time (fp32 logits of one chunk)
    checkpoint_interval: int = 5000
    keep_checkpoints: int | None = None  # keep only the newest N (null: keep all)
    log_interval: int = 10
    record_order: bool = False  # write the instance ids of every step to order.jsonl (for audits and tests)
    peak_flops: float | None = None  # per-device peak FLOP/s for MFU; null: looked up from the device name
    # accelerate trackers that also receive the logged values, comma-separated (tensorboard, wandb, ...); empty:
    # log.jsonl only. Never chosen by what happens to be installed: an installed wandb would demand an account.
    log_with: str = ""


# Fields that do not change a run's trajectory: a run may be resumed or extended with other values.
NOT_IN_FINGERPRINT = {
    "data": ("tokens", "shard_tokens"),
    "train": (
        "max_steps", "checkpoint_interval", "keep_checkpoints", "log_interval", "record_order", "peak_flops",
        "activation_checkpointing", "compile", "loss_chunk_tokens", "log_with",
    ),
}  # fmt: skip


@dataclass
class Config:
    """One run's complete recipe."""

    name: str = ""
    description: str = ""
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """A hash of everything that shapes the model and its training trajectory.

        A checkpoint records it; resuming under a different recipe is refused. What does not change the
        trajectory (NOT_IN_FINGERPRINT: the run length, logging and checkpointing cadence, where the token
        files lie, memory/speed switches) is left out, so a run can be extended, moved or re-logged. The
        token files themselves are checked by their own digest (`paloma_baselines.data.TokenFiles.digest`).
        """
        data = self.to_dict()
        data.pop("description")
        for section, keys in NOT_IN_FINGERPRINT.items():
            for key in keys:
                data[section].pop(key)
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def validate(self) -> None:
        """Check each field's range and the relations between fields; the first problem is one line naming it."""
        m, t, s, o = self.model, self.train, self.schedule, self.optimizer
        for where, ok in _RANGES:
            section, key = where.split(".")
            value = getattr(getattr(self, section), key)
            if value is not None and not ok[0](value):
                raise PalomaError(f"config {self.name or '?'}: {where} must be {ok[1]}, got {value!r}")
        checks = [
            (m.d_model % m.n_heads == 0, f"model.d_model ({m.d_model}) must be a multiple of n_heads ({m.n_heads})"),
            ((m.d_model // m.n_heads) % 2 == 0, "model.d_model / n_heads must be even for RoPE"),
            (t.seq_len <= m.max_seq_len, f"train.seq_len ({t.seq_len}) exceeds model.max_seq_len ({m.max_seq_len})"),
            (
                t.global_batch_size % t.micro_batch_size == 0,
                "train.global_batch_size must be a multiple of micro_batch_size",
            ),
            (s.warmup_steps < s.total_steps, "schedule.warmup_steps must be < total_steps"),
            (o.name == "lionw", f"optimizer.name {o.name!r} is not supported (lionw)"),
            (m.init in ("mitchell", "normal"), f"model.init {m.init!r} must be 'mitchell' or 'normal'"),
            (t.mixed_precision in ("bf16", "fp16", "no"), "train.mixed_precision must be bf16, fp16 or no"),
            (m.eos_token_id < m.vocab_size, f"model.eos_token_id ({m.eos_token_id}) must be < vocab_size"),
            (m.pad_token_id < m.vocab_size, f"model.pad_token_id ({m.pad_token_id}) must be < vocab_size"),
        ]
        for ok, message in checks:
            if not ok:
                raise PalomaError(f"config {self.name or '?'}: {message}")


def _at_least(n: int) -> tuple:
    return (lambda v: v >= n, f"≥ {n}")


_POSITIVE = (lambda v: v > 0, "> 0")  # NaN fails every comparison, so it is refused too
_UNIT = (lambda v: 0 <= v <= 1, "in [0, 1]")
# (field, (predicate, what it must be)); null values of optional fields are not checked.
_RANGES = [
    *[(f"model.{k}", _at_least(1)) for k in ("d_model", "n_layers", "n_heads", "mlp_hidden")],
    ("model.vocab_size", _at_least(2)),
    ("model.max_seq_len", _at_least(2)),
    ("model.rope_theta", _POSITIVE),
    ("model.layer_norm_eps", _POSITIVE),
    ("model.init_std", _POSITIVE),
    ("model.eos_token_id", _at_least(0)),
    ("model.pad_token_id", _at_least(0)),
    ("data.memmap_dtype", (lambda v: v in ("uint16", "uint32"), "uint16 or uint32")),
    ("data.shard_tokens", _at_least(1)),
    ("optimizer.lr", _POSITIVE),
    ("optimizer.betas", (lambda v: len(v) == 2 and all(0 <= b < 1 for b in v), "two numbers in [0, 1)")),
    ("optimizer.weight_decay", _at_least(0)),
    ("optimizer.grad_clip", _POSITIVE),
    ("schedule.warmup_steps", _at_least(0)),
    ("schedule.total_steps", _at_least(1)),
    ("schedule.final_lr_factor", _UNIT),
    ("schedule.warmup_start_factor", _UNIT),
    *[(f"train.{k}", _at_least(1)) for k in ("global_batch_size", "micro_batch_size", "checkpoint_interval")],
    *[(f"train.{k}", _at_least(1)) for k in ("keep_checkpoints", "log_interval", "loss_chunk_tokens")],
    ("train.seq_len", _at_least(2)),
    ("train.max_steps", _at_least(0)),
    ("train.seed", _at_least(0)),
    ("train.peak_flops", _POSITIVE),
]


SECTIONS = {"model": ModelConfig, "data": DataConfig, "optimizer": OptimizerConfig, "schedule": ScheduleConfig}
SECTIONS["train"] = TrainConfig


def available_configs() -> list[str]:
    """Names of the shipped configs (files starting with `_` are shared bases, not runnable)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if not p.stem.startswith("_"))


def resolve_config_path(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
        return path
    shipped = CONFIG_DIR / f"{name_or_path}.yaml"
    if shipped.is_file():
        return shipped
    known = ", ".join(available_configs())
    raise PalomaError(f"unknown config {str(name_or_path)!r}: not a file, and not one of: {known}")


def _read_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read one file and the chain it inherits from, merged section by section (child wins)."""
    if path in seen:
        raise PalomaError(f"{path}: inherits from itself")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise PalomaError(f"{path}: invalid YAML ({err})") from None
    if not isinstance(raw, dict):
        raise PalomaError(f"{path}: expected a mapping at the top level")
    parent_name = raw.pop("inherit", None)
    if parent_name is None:
        return raw
    parent_path = (path.parent / parent_name).resolve()
    if not parent_path.is_file():  # `inherit: c4` names a shipped config
        parent_path = CONFIG_DIR / f"{Path(parent_name).stem}.yaml"
    if not parent_path.is_file():
        raise PalomaError(f"{path}: inherits from {parent_name!r}, which is neither a file nor a shipped config")
    parent = _read_raw(parent_path, (*seen, path))
    return merge_overrides(parent, raw)


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Turn a YAML value into the field's type, so `2e-4` and `[0.9, 0.95]` land as float and tuple."""
    kinds = set(get_args(annotation)) if get_origin(annotation) in (Union, UnionType) else {annotation}
    if value is None:
        if type(None) not in kinds:
            raise PalomaError(f"{where}: must not be null")
        return None
    kinds.discard(type(None))
    (kind,) = kinds
    ok = True
    if get_origin(kind) is tuple:
        ok = isinstance(value, (list, tuple)) and all(isinstance(v, (int, float)) for v in value)
        value = tuple(float(v) for v in value) if ok else value
    elif kind is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            with contextlib.suppress(ValueError):
                value = float(value)
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind in (bool, str):
        ok = isinstance(value, kind)
    if not ok:
        name = getattr(kind, "__name__", str(kind))
        raise PalomaError(f"{where}: {value!r} is not a valid {name}")
    return value


def config_from_dict(raw: dict[str, Any], where: str = "config") -> Config:
    """Build a Config from nested dicts; every key must be a known field."""
    config = Config()
    for key, value in raw.items():
        if key in ("name", "description"):
            setattr(config, key, str(value))
            continue
        if key not in SECTIONS:
            raise PalomaError(f"{where}: unknown key {key!r} (known: name, description, {', '.join(SECTIONS)})")
        if not isinstance(value, dict):
            raise PalomaError(f"{where}: {key} must be a mapping")
        section = getattr(config, key)
        hints = get_type_hints(type(section))
        for sub_key, sub_value in value.items():
            if sub_key not in hints:
                raise PalomaError(f"{where}: unknown key {key}.{sub_key} (known: {', '.join(hints)})")
            setattr(section, sub_key, _coerce(sub_value, hints[sub_key], f"{where}: {key}.{sub_key}"))
    return config


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Turn `section.key=value` strings (values in YAML syntax) into a nested dict."""
    nested: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key.count(".") != 1:
            raise PalomaError(f"override {item!r}: expected SECTION.KEY=VALUE, e.g. train.max_steps=100")
        section, sub_key = key.split(".")
        try:
            nested.setdefault(section, {})[sub_key] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or type(err).__name__
            raise PalomaError(f"override {key}: {value!r} is not a YAML value ({problem})") from None
    return nested


def merge_overrides(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Merge section by section: a section given in `overrides` updates the base section's keys."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged


def load_config(name_or_path: str | Path, overrides: dict[str, Any] | list[str] | None = None) -> Config:
    """Load a shipped config by name (`c4`, `tiny`, `ladder-s`) or a YAML/JSON file, then apply overrides."""
    path = resolve_config_path(name_or_path)
    raw = _read_raw(path.resolve())
    raw.setdefault("name", path.stem)
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    raw = merge_overrides(raw, overrides or {})
    config = config_from_dict(raw, where=str(path))
    config.validate()
    return config


def resolve_config(config: Config | str | Path, overrides: dict | list[str] | None = None, **shortcuts: Any) -> Config:
    """A validated Config from a name, file or Config, `overrides` ({"train": {"seed": 1}} or ["train.seed=1"])
    and shortcuts named `section_key` (e.g. data_tokens="...", train_max_steps=10; None leaves a field as is)."""
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    overrides = overrides or {}
    for name, value in shortcuts.items():
        if value is not None:
            section, key = name.split("_", 1)
            overrides = merge_overrides(overrides, {section: {key: value}})
    if isinstance(config, Config):
        resolved = config_from_dict(merge_overrides(config.to_dict(), overrides), where=f"config {config.name}")
        resolved.validate()
        return resolved
    return load_config(config, overrides)


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config, --set and --tokenizer, shared by `train` and `baselines tokenize`."""
    parser.add_argument(
        "--config", required=True, help="a shipped config (c4, dolma, tiny, ladder-s, ...) or a YAML file"
    )
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE", help="override any field")
    parser.add_argument("--tokenizer", help="override data.tokenizer: a hub id, a folder or a tokenizer.json")


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """The options shared by `python -m paloma_baselines.train` and `paloma train`."""
    from paloma.commands.args import non_negative_int, positive_int

    add_config_arguments(parser)
    parser.add_argument(
        "--output", required=True, help="run folder: checkpoints, log.jsonl, model/ (resumes if present)"
    )
    parser.add_argument(
        "--tokens", help="override data.tokens: a `paloma baselines tokenize` folder or OLMo .npy token files"
    )
    parser.add_argument(
        "--max-steps", type=non_negative_int, help="override train.max_steps (the schedule stays as configured)"
    )
    parser.add_argument("--init-from", help="start from a larger model (export, run folder or checkpoint)")
    parser.add_argument("--keep-layers", help="with --init-from: which of its layers to keep, e.g. 0-7 or 0,2,4,6")
    parser.add_argument(
        "--eval-corpus",
        help="held-out documents scored under Paloma's protocol at the end (and every --eval-every steps): a Paloma "
        "folder, a hub dataset or local JSONL/Parquet, as `paloma eval --data` reads",
    )
    parser.add_argument("--eval-every", type=positive_int, metavar="N", help="also score --eval-corpus every N steps")
    parser.add_argument(
        "--eval-max-tokens-per-domain",
        type=positive_int,
        metavar="N",
        help="score a seeded subset of --eval-corpus: whole documents, at most N tokens a domain",
    )
    parser.add_argument("--no-export", action="store_true", help="do not write model/ at the end")
    parser.add_argument(
        "--overwrite", action="store_true", help="start over: delete the run already in --output (default: resume it)"
    )
    parser.add_argument("--quiet", action="store_true", help="no per-step log lines on stdout")
