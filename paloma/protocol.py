"""The evaluation protocol (paloma.md §2): what is scored and how, written into every result.

Two results can be compared only when they were produced under the same protocol. The protocol is a
small frozen record (prefix token, maximum length, tokenizer special tokens, window scheme, dtype, split,
data and model revisions, tokenizer hash, the selection of documents) with a fingerprint; results with
different fingerprints are never merged silently. Identities come from content: the data revision is a digest
of the data files' bytes (not a hub commit or a path), the selection a digest of the documents scored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

# The window scheme shared by the reference (OLMo-Eval/catwalk) and lm-evaluation-harness's rolling
# log-likelihood: disjoint windows of L scored tokens, the last partial window right-aligned.
WINDOW_SCHEME = "disjoint-right-aligned"

# How the prefix is chosen. "eos" is the reference; "bos-else-eos" is lm-evaluation-harness's rule.
PREFIX_CHOICES = ("eos", "bos", "bos-else-eos", "none")

# A preset's max_length may be this: the model's own maximum length, found as lm-evaluation-harness finds it.
MODEL_MAX_LENGTH = "model"

# How words are counted for word perplexity. "split": Python's `str.split()` (runs of non-whitespace), the
# reference's whitespace-split words. "re-split": lm-evaluation-harness's `len(re.split(r"\s+", text))`, where
# leading and trailing whitespace each make one more (empty) word and an empty text is one word.
WORD_COUNTS = ("split", "re-split")

# The lm-evaluation-harness release whose `HFLM.loglikelihood_rolling` and `paloma_*` tasks the preset
# reproduces (tests/test_lm_eval_preset.py runs the installed release against it).
LM_EVAL_MATCHED = "lm-evaluation-harness 0.4.13"

PRESETS: dict[str, dict] = {
    # AI2's reference: each document alone, one EOS prefix token, L pinned to 2048, nothing added by the
    # tokenizer, whitespace-split words.
    "paloma": {"prefix": "eos", "max_length": 2048},
    # lm-evaluation-harness's loglikelihood_rolling as its release runs it: the text encoded with the tokenizer's
    # own special tokens (a Llama-style tokenizer's BOS), then its prefix token (BOS when the tokenizer has one,
    # else EOS) in front, so a BOS tokenizer scores its own BOS as well; L is the model's maximum length (HFLM's
    # default), recorded with max_length_source "model"; words counted as its paloma_* tasks count them.
    "lm-eval-harness": {
        "prefix": "bos-else-eos",
        "max_length": MODEL_MAX_LENGTH,
        "add_special_tokens": True,
        "word_count": "re-split",
        "matches": LM_EVAL_MATCHED,
    },
}

# The comparability fingerprint: what must agree for two models' numbers to be compared (the same data,
# scored the same way). Tokenizer and model differ between the models being compared, so they are not in it.
FINGERPRINT_FIELDS = ("prefix", "max_length", "add_special_tokens", "window", "split", "data_revision")
# The run fingerprint adds everything that identifies one run's numbers exactly: records are merged (by
# --resume, or across processes) only under an identical run fingerprint. `selection` is the digest of the
# documents selected (--sources, --domains, --limit, --seed over this content): another selection of the same
# data is another run.
RUN_FINGERPRINT_FIELDS = (
    *FINGERPRINT_FIELDS, "prefix_token_id", "dtype", "tokenizer_hash", "model_revision", "selection",
)  # fmt: skip


@dataclass(frozen=True)
class Protocol:
    """Everything that determines the numbers of an evaluation, apart from the model's weights."""

    preset: str = "paloma"
    prefix: str = "eos"
    prefix_token_id: int | None = None
    max_length: int = 2048
    max_length_source: str = "preset"  # preset, option (--max-length) or model (the model's own maximum)
    add_special_tokens: bool = False
    # with add_special_tokens: the ids the tokenizer adds before and after a document's own (e.g. (BOS,) and ())
    added_before: tuple[int, ...] = ()
    added_after: tuple[int, ...] = ()
    word_count: str = "split"  # see WORD_COUNTS; set by the preset together with add_special_tokens
    matches: str | None = None  # the outside implementation this preset reproduces, with its version
    window: str = WINDOW_SCHEME
    dtype: str = "float32"
    split: str = "test"
    tokenizer_hash: str | None = None
    model_revision: str | None = None
    data_revision: str | None = None  # a digest of the data files' contents (paloma.eval.data.data_revision)
    selection: str | None = None  # a digest of the selected documents (paloma.eval.data.DocumentIndex.selection)
    # a deterministic subset of the data (`paloma.eval.evaluate.subset_of`): None for every selected document
    subset: str | None = None

    def fingerprint(self) -> str:
        """Same value ⇔ two results were scored on the same data in the same way (comparable)."""
        return fingerprint_of(asdict(self))

    def run_fingerprint(self) -> str:
        """Same value ⇔ records come from the same model, tokenizer, dtype and protocol (mergeable)."""
        return _hash(_with_subset({k: getattr(self, k) for k in RUN_FINGERPRINT_FIELDS}, self.subset))

    def to_dict(self) -> dict:
        return {**asdict(self), "fingerprint": self.fingerprint(), "run_fingerprint": self.run_fingerprint()}

    def with_(self, **changes) -> Protocol:
        return replace(self, **changes)


def _hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint_of(protocol: Mapping[str, object]) -> str:
    """The comparability fingerprint of a protocol given as a mapping (a results.json `protocol`, a manifest)."""
    return _hash(_with_subset({k: protocol.get(k) for k in FINGERPRINT_FIELDS}, protocol.get("subset")))


def _with_subset(fields: dict, subset: object) -> dict:
    """A subset is part of the fingerprint when there is one; full-data fingerprints keep their old values."""
    return {**fields, "subset": subset} if subset is not None else fields


def protocol_from_preset(preset: str, model_max_length: int | None = None, **overrides) -> Protocol:
    """A protocol from a named preset, with explicit overrides (None values are ignored).

    A preset whose L is the model's own (`MODEL_MAX_LENGTH`) takes `model_max_length`, unless --max-length
    overrides it; `max_length_source` records which.
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown protocol preset {preset!r} (choose from {', '.join(PRESETS)})")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("max_length") is not None:
        values["max_length_source"] = "option"
    elif values["max_length"] == MODEL_MAX_LENGTH:
        if model_max_length is None:
            raise ValueError(f"preset {preset!r} takes the model's maximum length, which is unknown here")
        values.update(max_length=model_max_length, max_length_source="model")
    return Protocol(preset=preset, **values)


def preset_word_count(preset: str) -> str:
    """How a preset counts words (the reference's rule for a name that is no preset: that error comes later)."""
    return PRESETS.get(preset, {}).get("word_count", "split")


def differences(a: dict, b: dict, fields: tuple[str, ...] = FINGERPRINT_FIELDS) -> dict[str, tuple]:
    """Fields where two protocol dicts disagree: {field: (a's value, b's value)}."""
    return {k: (a.get(k), b.get(k)) for k in (*fields, "subset") if a.get(k) != b.get(k)}
