"""The submission format, version 1: one evaluated model state, with everything needed to check it.

A submission carries per-domain *sums* (nll_sum, tokens, bytes, documents), not just scores, so that every
aggregate on the leaderboard can be recomputed with `paloma.metrics` and so that two submissions of the same
release can be cross-checked (bytes and documents do not depend on the tokenizer). The pydantic model below
is the single definition; `submissions/schema/v1.json` is generated from it (`paloma submissions schema`).

The format is versioned (`schema: "paloma-submission/1"`) and extensible: optional fields may be added
within a version, and `extra` holds data for site extensions (e.g. scaling-ladder fits of a run), keyed by
the extension's name.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_ID = "paloma-submission/1"

# A submission's name becomes a folder and a URL path segment: lower-case letters, digits, and inner
# '-', '_', '.'; never '..', a slash, or anything a browser or shell would interpret.
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9._-]{0,78}[a-z0-9])?$"
_MARKUP = re.compile(r"[<>&\"'`]|\{\{|\}\}")
# `paloma decon` writes "blake2b-256:<64 hex>"; sha256 and xxh digests are accepted for other tools.
_CHECKSUM = re.compile(r"^(sha256:|blake2b-256:)?[0-9a-f]{64}$|^xxh(64|128):[0-9a-f]{16,32}$")


def _safe_name(value: str) -> str:
    if not re.match(NAME_PATTERN, value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a safe name: use 1-80 lower-case letters, digits, '-', '_', '.', "
            "starting and ending with a letter or digit, without '..'"
        )
    return value


def _plain_text(value: str) -> str:
    """Names shown as headings must be plain text: markup characters are refused outright."""
    if _MARKUP.search(value):
        raise ValueError(f"{value!r} holds markup characters (< > & \" ' ` {{{{ }}}}); use plain text")
    if not value.strip() or any(ch in value for ch in "\r\n\t\x00"):
        raise ValueError(f"{value!r} must be one non-empty line")
    return value


def _http_url(value: str) -> str:
    """Only http(s) links: a `javascript:` or `data:` URL would run code when clicked."""
    if not re.match(r"^https?://[^\s<>\"'`]+$", value):
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]
PlainText = Annotated[str, Field(max_length=200), AfterValidator(_plain_text)]
HttpUrl = Annotated[str, Field(max_length=2000), AfterValidator(_http_url)]


class _Strict(BaseModel):
    """Unknown fields are errors (typos must not pass silently) unless a model opts out."""

    model_config = ConfigDict(extra="forbid")


class Link(_Strict):
    label: str = Field(max_length=200, description="what the link points to, e.g. 'paper', 'weights'")
    url: HttpUrl


class ConfidenceInterval(BaseModel):
    """As `paloma eval --bootstrap` records it; other fields it records (e.g. the seed) are kept."""

    model_config = ConfigDict(extra="allow")
    level: float = Field(gt=0, lt=1)
    n: int | None = Field(default=None, ge=0, description="bootstrap resamples")
    ppl: tuple[float, float] | None = None
    bpb: tuple[float, float] | None = None


class DomainSums(_Strict):
    """Additive totals of one domain: what every metric is computed from (see docs/formats.md)."""

    nll_sum: float = Field(ge=0, description="−Σ ln p(token) over the domain, natural log")
    tokens: int = Field(ge=0)
    bytes: int = Field(ge=0, description="UTF-8 bytes of the scored text (tokenizer-independent)")
    documents: int = Field(ge=0)
    chars: int | None = Field(default=None, ge=0)
    words: int | None = Field(default=None, ge=0)
    empty_documents: int = Field(default=0, ge=0)
    ci: ConfidenceInterval | None = None

    @field_validator("nll_sum")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("nll_sum must be finite")
        return value


class Model(_Strict):
    display_name: PlainText
    organisation: PlainText
    links: list[Link] = Field(default_factory=list)
    model_id: str = Field(max_length=300, description="e.g. a Hugging Face repo id, or a local name")
    revision: str | None = Field(default=None, max_length=100, description="commit or tag of the weights")
    parameters: int = Field(gt=0, description="all parameters, embeddings included")
    non_embedding_parameters: int = Field(gt=0)
    training_tokens: int = Field(gt=0, description="tokens seen in training up to this checkpoint")
    tokenizer: str = Field(max_length=300)
    training_data: str = Field(max_length=2000)
    description: str = Field(default="", max_length=5000)

    @model_validator(mode="after")
    def _non_embedding_within_total(self) -> Model:
        if self.non_embedding_parameters > self.parameters:
            raise ValueError("non_embedding_parameters exceeds parameters")
        return self


class Checkpoint(_Strict):
    """One checkpoint of a training run: submissions sharing `run` are checkpoints of the same model."""

    run: SafeName
    step: int | None = Field(default=None, ge=0)
    lr_schedule_fraction: float = Field(
        gt=0, le=1, description="fraction of the learning-rate schedule completed (1.0 = the final model)"
    )


class Decontamination(_Strict):
    met: bool
    index_checksum: str | None = Field(default=None, description="checksum of the `paloma decon` index used")
    report: str | None = Field(
        default=None, description="the `paloma decon` report: a file beside submission.json, or an http(s) URL"
    )
    removed_fraction: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _evidence(self) -> Decontamination:
        if not self.met:
            return self
        if not self.index_checksum or not _CHECKSUM.match(self.index_checksum):
            raise ValueError(
                "decontamination is claimed: index_checksum must be 'blake2b-256:<64 hex>' (paloma decon), "
                "'sha256:<64 hex>' or 'xxh64:<hex>'"
            )
        if not self.report:
            raise ValueError("decontamination is claimed: report (the `paloma decon` report) is required")
        if not self.report.startswith(("http://", "https://")):
            _safe_relative_file(self.report)
        else:
            _http_url(self.report)
        return self


def _safe_relative_file(value: str) -> str:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", value) or ".." in value:
        raise ValueError(f"report {value!r} must be a plain file name beside submission.json (no folders)")
    return value


class Guidelines(_Strict):
    """Paloma's comparability guidelines (paloma.md §4) that the submitter claims to meet."""

    decontamination: Decontamination
    fixed_training_order: bool
    fixed_vocabulary: bool


class Benchmark(_Strict):
    release: SafeName = Field(description="the registry release, e.g. 'paloma'")
    split: Literal["val", "test"]


class Protocol(BaseModel):
    """The evaluation protocol as `paloma eval` recorded it; other recorded fields are kept as they are."""

    model_config = ConfigDict(extra="allow")
    prefix: str
    max_length: int
    add_special_tokens: bool
    window: str
    fingerprint: str = Field(min_length=8, max_length=200)


class SourceAggregates(_Strict):
    macro_ppl: float | None
    macro_bpb: float | None


class SuiteAggregates(_Strict):
    macro_ppl: float | None
    macro_bpb: float | None
    ordinary_ppl: float | None
    ordinary_bpb: float | None


class Aggregates(_Strict):
    """The aggregates as the submitter computed them; validation recomputes them from the sums."""

    suite: SuiteAggregates
    sources: dict[str, SourceAggregates]


class Submission(_Strict):
    schema_id: Literal["paloma-submission/1"] = Field(default=SCHEMA_ID, alias="schema")
    name: SafeName = Field(description="unique id; also the submission's folder name and URL")
    submitted: dt.date
    model: Model
    checkpoint: Checkpoint | None = None
    guidelines: Guidelines
    benchmark: Benchmark
    protocol: Protocol
    results: dict[str, dict[str, DomainSums]] = Field(description="source → domain → sums")
    aggregates: Aggregates
    extra: dict[str, Any] = Field(
        default_factory=dict, description="data for site extensions, keyed by extension name (optional)"
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @property
    def is_final(self) -> bool:
        """A final model (not an intermediate checkpoint) is what the leaderboard ranks by default."""
        return self.checkpoint is None or self.checkpoint.lr_schedule_fraction == 1.0

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def json_schema() -> dict[str, Any]:
    """The JSON Schema published as `submissions/schema/v1.json`."""
    schema = Submission.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Paloma submission, version 1"
    return schema
