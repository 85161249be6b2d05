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
import json
import math
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from paloma.submissions.text import text_problem

SCHEMA_ID = "paloma-submission/1"

# Sane bounds: beyond them a number is a typo or an attack (10**400 parameters overflowed the site build).
MAX_PARAMETERS = 10**14  # 100T
MAX_TRAINING_TOKENS = 10**17  # 100 quadrillion
MAX_COUNT = 10**12  # documents, tokens, bytes, characters or words of one domain
MAX_NLL_PER_TOKEN = 1000.0  # nats; a uniform guess over 2**64 types is 44
MAX_LINKS = 20
# Plausible costs (docs/submissions-and-site.md, "Costs"): the narrowest transformer anyone ranks is wider than
# MIN_WIDTH (the demo's smallest rung is 16 wide), so a model has at least one block of 12·MIN_WIDTH² weights and,
# with a known vocabulary, an embedding of at least vocabulary × MIN_WIDTH; a model is trained on at least one
# token per MAX_PARAMETERS_PER_TOKEN parameters (Chinchilla-optimal is 1 per 20 tokens the other way round).
MIN_WIDTH = 16
MIN_NON_EMBEDDING = 12 * MIN_WIDTH**2
MAX_PARAMETERS_PER_TOKEN = 1000
# Intervals are shown under "95% CI" and feed the compare page: only that level is accepted.
INTERVAL_LEVEL = 0.95
# `extra` is data for site extensions: known keys are typed (below), every key is bounded in nesting and size.
MAX_EXTRA_DEPTH = 8
MAX_EXTRA_BYTES = 512 * 1024

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
    if value != value.strip() or "  " in value:
        raise ValueError(f"{value!r} has leading, trailing or repeated spaces")
    return _visible_text(value)


def _visible_text(value: str) -> str:
    """Text shown on the site must look like what it is (see paloma.submissions.text)."""
    problem = text_problem(value)
    if problem:
        raise ValueError(f"{value!r} {problem}")
    return value


def _visible_multiline(value: str) -> str:
    problem = text_problem(value, allow_newlines=True)
    if problem:
        raise ValueError(f"{value!r} {problem}")
    return value


def _https_url(value: str) -> str:
    """A link a reader can trust by its look: https only (a `javascript:` or `data:` URL runs code, plain http can
    be rewritten on the way), no user name before the host (`https://paypal.com@evil.example/` goes to
    evil.example), a host in ASCII (an internationalised host must be written in punycode, `xn--…`, so a
    Cyrillic "а" cannot pass for a Latin one), and no control or invisible character anywhere."""
    problem = text_problem(value)
    if problem:
        raise ValueError(f"{value!r} {problem}")
    parts = urlsplit(value) if re.match(r"^https://[^\s<>\"'`\\]+$", value) else None
    if parts is None or not parts.hostname:
        raise ValueError(f"{value!r} is not an https URL (https://host/path, no spaces or markup characters)")
    if "@" in parts.netloc:
        raise ValueError(f"{value!r} has a user name before its host (the link would go to what follows '@')")
    if not parts.hostname.isascii():
        try:
            ascii_host = parts.hostname.encode("idna").decode("ascii")
        except UnicodeError:
            ascii_host = "its punycode form"
        raise ValueError(f"{value!r} has a non-ASCII host: write it in punycode ({ascii_host}) so readers see it")
    return value


SafeName = Annotated[str, AfterValidator(_safe_name)]
PlainText = Annotated[str, Field(max_length=200), AfterValidator(_plain_text)]
HttpsUrl = Annotated[str, Field(max_length=2000), AfterValidator(_https_url)]


def _text(max_length: int) -> type[str]:
    """A free-text field of at most `max_length` characters, one line, visible characters only."""
    return Annotated[str, Field(max_length=max_length), AfterValidator(_visible_text)]


Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    """Unknown fields are errors (typos must not pass silently) unless a model opts out; NaN and ±inf are not
    numbers here (a NaN fraction must say so, not "should be less than or equal to 1")."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Link(_Strict):
    label: PlainText = Field(description="what the link points to, e.g. 'paper', 'weights'")
    url: HttpsUrl


class ConfidenceInterval(BaseModel):
    """As `paloma eval --bootstrap` records it; other fields it records (e.g. the seed) are kept."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    level: float = Field(description=f"the interval's level: {INTERVAL_LEVEL} only")
    n: int | None = Field(default=None, ge=0, le=10**7, description="bootstrap resamples")
    ppl: tuple[Finite, Finite] | None = None
    bpb: tuple[Finite, Finite] | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ConfidenceInterval:
        if self.level != INTERVAL_LEVEL:
            raise ValueError(f"level is {self.level!r}: intervals are shown as 95% intervals, so it must be 0.95")
        for name in ("ppl", "bpb"):
            bounds = getattr(self, name)
            if bounds is not None and not 0 <= bounds[0] <= bounds[1]:
                raise ValueError(f"the {name} interval {list(bounds)} must be ordered (low ≤ high) and ≥ 0")
        return self


class DomainSums(_Strict):
    """Additive totals of one domain: what every metric is computed from (see docs/formats.md)."""

    nll_sum: float = Field(ge=0, description="−Σ ln p(token) over the domain, natural log")
    tokens: Count
    bytes: Count = Field(description="UTF-8 bytes of the scored text (tokenizer-independent)")
    documents: Count
    chars: Count | None = None
    words: Count | None = None
    empty_documents: Count = 0
    ci: ConfidenceInterval | None = None

    @model_validator(mode="after")
    def _consistent(self) -> DomainSums:
        """Counts that cannot happen together are refused (zeroed domains must not pass as scored)."""
        if self.empty_documents > self.documents:
            raise ValueError("empty_documents exceeds documents")
        if self.documents == 0 and (self.tokens or self.bytes or self.nll_sum):
            raise ValueError("a domain without documents cannot have tokens, bytes or a loss")
        if self.bytes > 0 and self.tokens == 0:
            raise ValueError(f"{self.bytes} bytes of text scored with 0 tokens (a zeroed domain?)")
        if self.tokens > 0 and self.bytes == 0:
            raise ValueError(f"{self.tokens} tokens scored from 0 bytes of text")
        if self.tokens > 0 and self.nll_sum == 0:
            raise ValueError("nll_sum is 0 over scored tokens (every token predicted with probability 1?)")
        if self.nll_sum > MAX_NLL_PER_TOKEN * max(self.tokens, 1):
            raise ValueError(f"nll_sum exceeds {MAX_NLL_PER_TOKEN:g} nats per token")
        if self.ci is not None and self.tokens:
            self._interval_holds_the_estimate()
            self._interval_has_width()
        return self

    def _interval_has_width(self) -> None:
        """Two or more documents that differ give an interval of positive width; a zero-width one from them is
        made up (one document alone gives a point, which the site does not show as an interval)."""
        for name in ("ppl", "bpb"):
            bounds = getattr(self.ci, name)
            if bounds is not None and self.documents >= 2 and not bounds[0] < bounds[1]:
                raise ValueError(f"the {name} interval {list(bounds)} has zero width over {self.documents} documents")

    def _interval_holds_the_estimate(self) -> None:
        estimates = {"ppl": math.exp(self.nll_sum / self.tokens), "bpb": self.nll_sum / (self.bytes * math.log(2))}
        for name, value in estimates.items():
            bounds = getattr(self.ci, name)
            slack = 1e-9 * max(abs(value), 1.0)
            if bounds is not None and not bounds[0] - slack <= value <= bounds[1] + slack:
                raise ValueError(f"the {name} interval {list(bounds)} does not contain the estimate {value:.6g}")


class Model(_Strict):
    display_name: PlainText
    organisation: PlainText
    links: list[Link] = Field(default_factory=list, max_length=MAX_LINKS)
    model_id: _text(300) = Field(description="e.g. a Hugging Face repo id, or a local name")
    revision: _text(100) | None = Field(default=None, description="commit or tag of the weights")
    parameters: int = Field(gt=0, le=MAX_PARAMETERS, description="all parameters, embeddings included")
    non_embedding_parameters: int = Field(ge=MIN_NON_EMBEDDING, le=MAX_PARAMETERS)
    training_tokens: int = Field(
        gt=0, le=MAX_TRAINING_TOKENS, description="tokens seen in training up to this checkpoint"
    )
    tokenizer: _text(300)
    training_data: _text(2000)
    description: Annotated[str, Field(max_length=5000), AfterValidator(_visible_multiline)] = ""

    parameters_source: _text(300) | None = Field(
        default=None,
        description="where `paloma submit --parameters-from` read `parameters` (a hub id or folder of safetensors "
        "weights); absent: the count is only declared",
    )

    @model_validator(mode="after")
    def _costs_fit_together(self) -> Model:
        if self.non_embedding_parameters > self.parameters:
            raise ValueError("non_embedding_parameters exceeds parameters")
        if self.training_tokens * MAX_PARAMETERS_PER_TOKEN < self.parameters:
            raise ValueError(
                f"training_tokens {self.training_tokens} is fewer than one per {MAX_PARAMETERS_PER_TOKEN} parameters "
                f"({self.parameters}): not a trained model's budget"
            )
        return self

    @property
    def embedding_parameters(self) -> int:
        return self.parameters - self.non_embedding_parameters


class Checkpoint(_Strict):
    """One checkpoint of a training run: submissions sharing `run` are checkpoints of the same model."""

    run: SafeName
    step: int | None = Field(default=None, ge=0, le=10**12)
    lr_schedule_fraction: float = Field(
        gt=0, le=1, description="fraction of the learning-rate schedule completed (1.0 = the final model)"
    )


class Decontamination(_Strict):
    met: bool
    index_checksum: str | None = Field(default=None, description="checksum of the `paloma decon` index used")
    report: str | None = Field(
        default=None, description="the `paloma decon` report: a file beside submission.json, or an https URL"
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
            _https_url(self.report)
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
    """The evaluation protocol as `paloma eval` recorded it; other recorded fields are kept as they are.

    The fields of the comparability fingerprint are required: validation recomputes the fingerprint from them.
    """

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    preset: _text(40) = "paloma"
    prefix: _text(40)
    max_length: int = Field(ge=1, le=10**7)
    add_special_tokens: bool
    window: _text(80)
    dtype: _text(40)
    split: _text(40)
    data_revision: _text(200)
    fingerprint: str = Field(min_length=8, max_length=200, pattern=r"^[0-9a-f]+$")

    @model_validator(mode="after")
    def _bounded(self) -> Protocol:
        _check_bounded(self.model_extra or {}, "protocol")
        return self


class SourceAggregates(_Strict):
    macro_ppl: Finite | None
    macro_bpb: Finite | None


class SuiteAggregates(_Strict):
    macro_ppl: Finite | None
    macro_bpb: Finite | None
    ordinary_ppl: Finite | None
    ordinary_bpb: Finite | None


class Aggregates(_Strict):
    """The aggregates as the submitter computed them; validation recomputes them from the sums."""

    suite: SuiteAggregates
    sources: dict[str, SourceAggregates]


# ---- extra: data for site extensions ------------------------------------------------------------------------


def _check_bounded(value: Any, where: str, depth: int = 0) -> None:
    """Nesting and size limits for free-form data (deep JSON crashed validation with a RecursionError)."""
    if depth > MAX_EXTRA_DEPTH:
        raise ValueError(f"{where} is nested deeper than {MAX_EXTRA_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or len(key) > 100:
                raise ValueError(f"{where} has a key that is not a short string")
            _check_bounded(item, where, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _check_bounded(item, where, depth + 1)
    elif isinstance(value, str) and len(value) > 10_000:
        raise ValueError(f"{where} holds a string longer than 10000 characters")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} holds a non-finite number")


class _Open(BaseModel):
    """Known fields typed; fields an analysis adds later are kept (bounded by Extra's limits), never rendered."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class ScalingLawParams(_Strict):
    E: Finite
    A: Finite
    alpha: Finite
    B: Finite
    beta: Finite


class LadderPointRef(_Open):
    name: _text(200)
    n: float = Field(gt=0, le=MAX_PARAMETERS, allow_inf_nan=False)
    d: float = Field(gt=0, le=MAX_TRAINING_TOKENS, allow_inf_nan=False)


class LadderTarget(_Open):
    n: float = Field(gt=0, le=MAX_PARAMETERS, allow_inf_nan=False)
    d: float = Field(gt=0, le=MAX_TRAINING_TOKENS, allow_inf_nan=False)


class LadderPrediction(LadderTarget):
    loss: Finite


class LadderFit(_Open):
    target: _text(300)
    law: ScalingLawParams
    observed: list[Finite] = Field(max_length=1000)
    loo_mean_abs_rel_error: Finite | None = None
    prediction: LadderPrediction | None = None


class LadderExtra(_Open):
    """`extra.ladder`: the scaling-ladder fits a family of submissions carries (paloma.analysis.ladder.extension)."""

    metric: Literal["loss", "bpb"] = "loss"
    unit: _text(100) = "loss"
    parameters: Literal["non_embedding", "total"] = "non_embedding"
    points: list[LadderPointRef] = Field(min_length=1, max_length=1000)
    predict: LadderTarget | None = None
    fits: list[LadderFit] = Field(max_length=200)

    @model_validator(mode="after")
    def _observed_per_point(self) -> LadderExtra:
        for fit in self.fits:
            if len(fit.observed) != len(self.points):
                raise ValueError(
                    f"fit {fit.target!r} has {len(fit.observed)} observed values for {len(self.points)} points"
                )
        return self


class Extra(_Open):
    """Known extension keys are typed; others must be safe names and are shown as escaped JSON."""

    ladder: LadderExtra | None = None

    @model_validator(mode="before")
    @classmethod
    def _limits(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key in value:
            _safe_name(key) if isinstance(key, str) else None
        _check_bounded(value, "extra")
        size = len(json.dumps(value, ensure_ascii=False, default=str))
        if size > MAX_EXTRA_BYTES:
            raise ValueError(f"extra is {size} bytes, more than the {MAX_EXTRA_BYTES} allowed")
        return value


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
    extra: Extra = Field(default_factory=lambda: Extra(), description="data for site extensions (optional)")

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    @property
    def is_final(self) -> bool:
        """A final model (not an intermediate checkpoint) is what the leaderboard ranks by default."""
        return self.checkpoint is None or self.checkpoint.lr_schedule_fraction == 1.0

    def to_json_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        if not data.get("extra"):
            data.pop("extra", None)
        return data


def json_schema() -> dict[str, Any]:
    """The JSON Schema published as `submissions/schema/v1.json`."""
    schema = Submission.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Paloma submission, version 1"
    return schema
