"""The evaluation runner: documents → token windows → model forward → per-document records → results.

It orchestrates and contains no metric math and no planning of its own: documents come from
`paloma.eval.data`, tokens from `paloma.eval.tokens`, batches from `paloma.eval.plan`, the scoring loop is
`paloma.eval.loop`, aggregates come from `paloma.metrics` through `paloma.eval.results`.

Everything that can be checked before work is: the device, the output folder (writable, the right kind, not
an input, not holding a run unless --resume or --overwrite), the arguments; only then is data read. Memory
stays bounded: documents stream into compact arrays, token ids live in a memory-mapped cache, records stream
to disk and are aggregated in one pass. Several processes (`accelerate launch -m paloma eval …`) split the
documents by token count; each plans and scores only its share.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import paloma
from paloma.errors import PalomaError
from paloma.eval.data import (
    DataSpec,
    cap_tokens,
    check_whole_suite,
    describe,
    index_documents,
    iter_documents,
    iter_selected_texts,
    resolve_data,
    spec_differences,
)
from paloma.eval.data import select as select_documents
from paloma.eval.live import Ranks, is_sharded, parameter_dtype, scoring_model, unwrap
from paloma.eval.loop import (
    LoopOptions,
    Processes,
    TokenTypeStats,
    document_records,
    save_token_type_stats,
    score_chunks,
)
from paloma.eval.model import (
    DTYPES,
    LoadedModel,
    ModelOptions,
    check_max_length_config,
    content_hash,
    embedding_rows,
    lm_eval_max_length,
    load_model,
    load_tokenizer_and_config,
    model_revision,
    resolve_legacy,
    resolve_prefix,
    vocabulary_size,
)
from paloma.eval.plan import auto_batch_tokens, plan_chunks, share_window_tokens
from paloma.eval.records import (
    RECORDS_DIR,
    RecordWriter,
    done_digests,
    iter_unique_records,
    key_digest,
    next_attempt,
    record_files,
)
from paloma.eval.results import Results, build_results, format_results, write_results
from paloma.eval.scoring import Scorer, input_device, uses_plain_head
from paloma.eval.sequences import Documents, special_tokens_added
from paloma.eval.tokens import (
    DEFAULT_CACHE,
    TokenStore,
    cache_key,
    check_vocabulary,
    load_cached,
    tokenize,
    tokenizer_hash,
)
from paloma.io import check_output_dir, redact_command, write_json
from paloma.outputs import Outputs
from paloma.protocol import RUN_FINGERPRINT_FIELDS, Protocol, differences, preset_word_count, protocol_from_preset
from paloma.registry import resolve_registry

FLUSH_SECONDS = 10.0  # how often finished documents' records are made durable
RUN_FILES = ("records", "results.json", "domains.csv", "run.json", "token_stats.npz")


@dataclass
class EvalConfig:
    """Everything `paloma eval` takes; see `paloma eval --help` for each option's meaning."""

    model: str
    data: DataSpec
    output: Path | None = None
    revision: str | None = None
    trust_remote_code: bool = False
    token: str | None = None
    preset: str = "paloma"
    prefix: str | None = None
    max_length: int | None = None
    dtype: str = "float32"
    device: str | None = None
    batch_tokens: int | None = None
    resume: bool = False
    overwrite: bool = False
    bootstrap: int = 0
    bootstrap_seed: int = 0
    dry_run: bool = False
    cache_dir: Path | None = DEFAULT_CACHE
    registry: str = "paloma"
    token_stats: bool = False
    flush_seconds: float = FLUSH_SECONDS
    progress: bool = True
    model_args: dict = field(default_factory=dict)
    peft: str | None = None
    command: list[str] = field(default_factory=lambda: list(sys.argv))

    def model_options(self) -> ModelOptions:
        return ModelOptions(
            revision=self.revision,
            dtype=self.dtype,
            trust_remote_code=self.trust_remote_code,
            token=self.token,
            model_args=dict(self.model_args),
            peft=self.peft,
        )


@dataclass
class Prepared:
    """What planning needs: the documents, their tokens, the protocol and the model to load."""

    index: object  # paloma.eval.data.DocumentIndex
    tokens: TokenStore
    protocol: Protocol
    data_info: dict
    model_path: str
    converted_from: str | None
    tokenizer: object
    model_config: object


# --------------------------------------------------------------------------------------------- the Evaluator


class Evaluator:
    """Paloma for a model in memory: documents read, tokenized and planned once; `evaluate(model)` only scores.

    `data` is a local Paloma folder, a hub dataset id, generic JSONL/Parquet files, or a `DataSpec`;
    `tokenizer` a transformers tokenizer or the folder/hub id of one. The protocol options are `paloma
    eval`'s (`preset`, `max_length`, `prefix`); `max_documents_per_domain` / `max_tokens_per_domain` with
    `seed` choose a deterministic subset of whole documents, recorded in the protocol (and its fingerprint).
    `dtype` None scores in the model's own parameter dtype and records it; a name (float32, bfloat16, …)
    is checked against the model. Under an initialized `torch.distributed` every rank builds its Evaluator
    (the first rank fills the token cache, the others read it) and calls `evaluate` together.

    `paloma eval` runs the same preparation and the same scoring loop (`_score`), writing records to disk.
    """

    def __init__(
        self,
        data: str | Path | DataSpec,
        tokenizer,
        *,
        preset: str = "paloma",
        max_length: int | None = None,
        prefix: str | None = None,
        dtype: str | None = None,
        max_documents_per_domain: int | None = None,
        max_tokens_per_domain: int | None = None,
        seed: int = 1234,
        split: str | None = None,
        sources: Sequence[str] = (),
        domains: Sequence[str] = (),
        batch_tokens: int | None = None,
        registry: str = "paloma",
        cache_dir: Path | None = DEFAULT_CACHE,
        progress: bool = False,
    ):
        spec = data if isinstance(data, DataSpec) else DataSpec(
            path=str(data), split=split, sources=list(sources), domains=list(domains), limit=max_documents_per_domain,
            seed=seed, max_tokens_per_domain=max_tokens_per_domain,
        )  # fmt: skip
        config = EvalConfig(model="<in memory>", data=spec, preset=preset, prefix=prefix, max_length=max_length,
                            dtype=dtype or "float32", batch_tokens=batch_tokens, cache_dir=cache_dir,
                            registry=registry, progress=progress, command=[])  # fmt: skip
        _check_config(config)
        if spec.max_tokens_per_domain is not None and spec.max_tokens_per_domain < 1:
            raise PalomaError(f"max_tokens_per_domain must be ≥ 1, got {spec.max_tokens_per_domain}")
        tokenizer = _as_tokenizer(tokenizer)
        ranks = Ranks.current()
        if not ranks.main:
            ranks.barrier()
        index, tokens, data_info = _documents(config, tokenizer, ranks)
        if ranks.main:
            ranks.barrier()
        # no model here: a preset that takes the model's own length needs max_length
        protocol = _data_protocol(config, tokenizer, data_info, None)
        registry_ = resolve_registry(registry)
        data_info["release"] = registry_.release if registry_ is not None else None
        self._setup(config, index, tokens, protocol, data_info, registry_, tokenizer)
        self._dtype_option = dtype

    @classmethod
    def _of_run(cls, config: EvalConfig, prepared: Prepared, registry) -> Evaluator:
        """The Evaluator of a `paloma eval` run, over what the run prepared (with its model)."""
        evaluator = cls.__new__(cls)
        evaluator._setup(config, prepared.index, prepared.tokens, prepared.protocol, prepared.data_info, registry,
                         prepared.tokenizer)  # fmt: skip
        evaluator._dtype_option = config.dtype
        return evaluator

    def _setup(self, config, index, tokens, protocol, data_info, registry, tokenizer) -> None:
        self.config, self.protocol, self.data_info, self.registry = config, protocol, data_info, registry
        self.documents = Documents(index, tokens, protocol.prefix_token_id, protocol.added_before,
                                   protocol.added_after)  # fmt: skip
        self.lengths = self.documents.sequence_lengths
        self.pad_id = getattr(tokenizer, "pad_token_id", None) or 0
        self._digests: np.ndarray | None = None  # record keys' digests, sorted (for in-memory records)
        self._plans: dict[tuple, list] = {}  # planned chunks by (batch tokens, world, rank)

    def __len__(self) -> int:
        """Documents evaluated."""
        return len(self.documents.index)

    @property
    def scored_tokens(self) -> int:
        """Tokens every call scores (all ranks together)."""
        return int(self.documents.scored_tokens(np.arange(len(self))).sum())

    def evaluate(self, model: torch.nn.Module) -> Results:
        """Score `model` on every selected document; the structure of results.json (plus `.scalars()`).

        The model is put in eval mode and scored under `torch.inference_mode()` with autocast off (the numbers
        must not depend on the caller's context); its training mode is restored afterwards. DDP is scored
        through `.module`, a compiled model through its original module; FSDP through its own forward, every
        rank running the same number of forwards. Every rank returns the same results.
        """
        module = unwrap(model)
        scored, plain_head = scoring_model(module)
        dtype = self._model_dtype(module)
        ranks = Ranks.current()
        scorer = Scorer(scored, input_device(scored))
        if plain_head is not None:
            scorer.plain_head = plain_head
        index = self.documents.index
        check_vocabulary(self.documents.tokens, index.key, self.protocol.prefix_token_id, scorer.vocab,
                         type(module).__name__, "entries of its vocabulary")  # fmt: skip
        budget = self.config.batch_tokens or _auto_budget_live(scorer, self.protocol.max_length, dtype)
        options = LoopOptions(math.inf, dtype, self.config.progress and ranks.main, self.pad_id)
        collected = _Collected(self._record_digests(), scorer.device)
        was_training = module.training
        module.eval()
        try:
            with torch.autocast(scorer.device.type, enabled=False), torch.inference_mode():
                stats = self._score(scorer, collected, options, budget, ranks)
                if ranks.world > 1 and is_sharded(module):  # no collective before every rank's last forward
                    forwards = [self._forwards(scorer, budget, ranks.world, r) for r in range(ranks.world)]
                    _pad_forwards(scorer, max(forwards) - forwards[ranks.rank])
        finally:
            module.train(was_training)
        nll, done = ranks.sum_(collected.nll), ranks.sum_(collected.done)
        seconds = ranks.max(int(stats["seconds"] * 1e6), scorer.device) / 1e6
        return self._results(nll.cpu().numpy(), done.cpu().numpy(), module, dtype, stats, seconds, ranks, budget)

    def _score(self, scorer: Scorer, writer, options: LoopOptions, budget: int, procs, todo=None, token_stats=None):
        """Plan (once per budget and rank) and run the scoring loop over this process's share."""
        L = self.protocol.max_length
        if todo is None:
            chunks, total = self._plan(budget, procs.world, procs.rank)
        else:
            chunks = plan_chunks(self.lengths, todo, L, budget, procs.world, procs.rank)
            total = share_window_tokens(self.lengths, todo, L, procs.world, procs.rank)
        return score_chunks(scorer, self.documents, chunks, writer, options, total, token_stats)

    def _plan(self, budget: int, world: int, rank: int) -> tuple[list, int]:
        """A rank's chunks of every document and their window tokens, planned once and kept for later calls."""
        key = (budget, world, rank)
        if key not in self._plans:
            every, L = np.arange(len(self)), self.protocol.max_length
            self._plans[key] = (list(plan_chunks(self.lengths, every, L, budget, world, rank)),
                                share_window_tokens(self.lengths, every, L, world, rank))  # fmt: skip
        return self._plans[key]

    def _forwards(self, scorer: Scorer, budget: int, world: int, rank: int) -> int:
        """The forwards a rank's share takes, computed from its plan by any rank, without communicating."""
        total = 0
        for chunk in self._plan(budget, world, rank)[0]:
            for b, windows in enumerate(chunk.schedule.batches()):
                most_scored = int(chunk.windows.scored[windows].max())
                total += scorer.model_forwards(len(windows), int(chunk.schedule.widths[b]), most_scored)
        return total

    def _model_dtype(self, module: torch.nn.Module) -> str:
        names = {v: k for k, v in DTYPES.items()}
        dtype = parameter_dtype(module)
        if dtype not in names:
            raise PalomaError(f"the model's parameters are {dtype}: score it in one of {', '.join(DTYPES)}")
        if self._dtype_option is not None and names[dtype] != self._dtype_option:
            raise PalomaError(f"Evaluator(dtype={self._dtype_option!r}) but the model's parameters are "
                              f"{names[dtype]}: cast the model, or leave dtype=None to score in its own")  # fmt: skip
        return names[dtype]

    def _record_digests(self) -> np.ndarray:
        if self._digests is None:
            index = self.documents.index
            self._digests = np.fromiter((key_digest(index.key(i)) for i in range(len(index))), dtype=np.uint64,
                                        count=len(index))  # fmt: skip
        return self._digests

    def _results(self, nll, done, module, dtype: str, stats: dict, seconds: float, ranks, budget: int) -> Results:
        missing = np.flatnonzero(done != 1)
        if len(missing):
            raise PalomaError(f"{len(missing)} documents were scored {set(done[missing].tolist())} times, not once")
        records = map(asdict, document_records(self.documents.index, self.documents, np.arange(len(self)), nll))
        scored = self.scored_tokens
        meta = {
            "protocol": self.protocol.with_(dtype=dtype).to_dict(),
            "data": self.data_info,
            "model": {"in_memory": True, "class": type(module).__name__, "dtype": dtype},
            "speed": {"scored_tokens": scored, "seconds": seconds, "processes": ranks.world, "batch_tokens": budget,
                      "tokens_per_second": scored / seconds if seconds else None},
        }  # fmt: skip
        return Results(build_results(records, self.registry, meta))


class _Collected:
    """Where the scoring loop's records go in memory: each document's NLL at its position in the run."""

    def __init__(self, digests: np.ndarray, device: torch.device):
        self.order = np.argsort(digests, kind="stable")
        self.sorted = digests[self.order]
        self.nll = torch.zeros(len(digests), dtype=torch.float64, device=device)
        self.done = torch.zeros(len(digests), dtype=torch.int64, device=device)

    def write_many(self, records) -> None:
        records = list(records)
        digests = np.fromiter((key_digest(r.key) for r in records), dtype=np.uint64, count=len(records))
        positions = torch.from_numpy(self.order[np.searchsorted(self.sorted, digests)]).to(self.nll.device)
        values = torch.tensor([r.nll_sum for r in records], dtype=torch.float64, device=self.nll.device)
        self.nll.index_add_(0, positions, values)
        self.done.index_add_(0, positions, torch.ones_like(positions))

    def flush(self) -> None:
        """Nothing to make durable."""


def _pad_forwards(scorer: Scorer, count: int) -> None:
    """Forwards whose output is thrown away, so that this rank ran as many as the busiest (FSDP gathers)."""
    ids = torch.zeros((1, 1), dtype=torch.int64, device=scorer.inputs_on)
    for _ in range(count):
        scorer.model(input_ids=ids, **({"use_cache": False} if scorer.cache_flag else {}))


def _auto_budget_live(scorer: Scorer, max_length: int, dtype: str) -> int:
    device = scorer.device
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    return auto_batch_tokens(scorer.model.config, max_length, free, _dtype_bytes(dtype), not scorer.plain_head)


def _as_tokenizer(tokenizer):
    if isinstance(tokenizer, str | Path):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(str(tokenizer))
    return tokenizer


# --------------------------------------------------------------------------------------------- the runner


def evaluate(config: EvalConfig) -> dict:
    """Evaluate a model per domain; returns results (or, with dry_run, the plan) as plain data."""
    started = _now()
    _check_config(config)
    procs = Processes(config.device)
    output = _check_output(config)
    registry = resolve_registry(config.registry)
    prepared = _prepare(config, procs)
    prepared.data_info["release"] = registry.release if registry is not None else None  # what submissions check
    protocol = prepared.protocol
    documents = Documents(prepared.index, prepared.tokens, protocol.prefix_token_id, protocol.added_before,
                          protocol.added_after)  # fmt: skip
    lengths = documents.sequence_lengths
    if config.batch_tokens is not None and config.batch_tokens < prepared.protocol.max_length:
        raise PalomaError(f"--batch-tokens {config.batch_tokens} is below one window of --max-length "
                          f"{prepared.protocol.max_length}")  # fmt: skip
    if config.dry_run:
        budget = config.batch_tokens or auto_batch_tokens(
            prepared.model_config, prepared.protocol.max_length, None, _dtype_bytes(config.dtype), False
        )
        return dry_run_report(prepared, lengths, budget, procs.world)
    done = _prepare_output(output, config, prepared.protocol, procs)
    todo = np.flatnonzero(~_already_done(prepared.index, done)) if len(done) else np.arange(len(prepared.index))
    if len(todo) == 0:
        return _nothing_left(output, config, registry, started, procs)
    loaded = _load_model(config, prepared, procs.device)
    check_vocabulary(prepared.tokens, prepared.index.key, prepared.protocol.prefix_token_id,
                     embedding_rows(loaded.model), config.model, "rows of its input embedding")  # fmt: skip
    evaluator = Evaluator._of_run(config, prepared, registry)
    scorer = Scorer(loaded.model, procs.device)
    budget = config.batch_tokens or _auto_budget(loaded.model, config, prepared.protocol.max_length, procs.device)
    model_info = loaded.describe()
    if procs.main:
        run = {"protocol": prepared.protocol.to_dict(), "data": prepared.data_info, "model": model_info}
        write_json(output / "run.json", run)
    attempt = next_attempt(output)
    procs.barrier()
    token_stats = TokenTypeStats(prepared.index, scorer.vocab, procs.device) if config.token_stats else None
    options = LoopOptions(config.flush_seconds, config.dtype, config.progress and procs.main, _pad_id(loaded))
    with RecordWriter(output, procs.rank, procs.world, attempt) as writer:
        stats = evaluator._score(scorer, writer, options, budget, procs, todo, token_stats)
    procs.barrier()
    scored, forward, window_tokens, splits = procs.sum(
        [stats["scored"], stats["forward"], stats["window_tokens"], stats["oom_splits"]]
    )
    (seconds,) = procs.max([stats["seconds"]])
    if token_stats is not None:
        save_token_type_stats(output, token_stats, procs)
    speed = {**_speed(scored, forward, window_tokens, seconds, procs, budget), "oom_splits": int(splits)}
    results = None
    if procs.main:
        meta = {**json.loads((output / "run.json").read_text()), "provenance": provenance(config, started)}
        results = build_results(iter_unique_records(output), registry, {**meta, "speed": speed}, config.bootstrap,
                                config.bootstrap_seed)  # fmt: skip
        write_results(output, results)
    procs.barrier()
    return results or {}


def _speed(scored, forward, window_tokens, seconds, procs: Processes, budget: int) -> dict:
    return {
        "tokens_per_second": scored / seconds if seconds else None,
        "scored_tokens": int(scored),
        "forward_tokens": int(forward),
        "padding_efficiency": scored / forward if forward else None,
        # forward tokens that are padding; the rest of the gap to 1 is the protocol's own overlap (the
        # right-aligned last window re-reads context it does not score)
        "padding_fraction": 1 - window_tokens / forward if forward else None,
        "overlap_fraction": (window_tokens - scored) / forward if forward else None,
        "seconds": seconds,
        "processes": procs.world,
        "batch_tokens": budget,
        "device": str(procs.device),
        # the most device memory this process held (GPU only): what the automatic budget left unused
        "device_peak_memory": torch.cuda.max_memory_allocated(procs.device) if procs.device.type == "cuda" else None,
    }


# --------------------------------------------------------------------------------------------- checks first


def _check_config(config: EvalConfig) -> None:
    """Argument checks a library caller gets as well as the CLI (argparse checks ranges for the CLI)."""
    if config.dtype not in DTYPES:
        raise PalomaError(f"--dtype {config.dtype!r} is not one of {', '.join(DTYPES)}")
    for name in ("max_length", "batch_tokens", "limit"):
        value = getattr(config.data if name == "limit" else config, name)
        if value is not None and value < 1:
            raise PalomaError(f"--{name.replace('_', '-')} must be ≥ 1, got {value}")
    if config.bootstrap < 0:
        raise PalomaError(f"--bootstrap must be ≥ 0, got {config.bootstrap}")
    if not config.flush_seconds > 0:
        raise PalomaError(f"--flush-seconds must be > 0, got {config.flush_seconds}")
    if config.resume and config.overwrite:
        raise PalomaError("--resume and --overwrite contradict each other: pass one")
    if config.token_stats and config.resume:
        raise PalomaError("--token-stats cannot be resumed exactly (partial documents); rerun with --overwrite")
    if config.peft and not Path(config.peft).exists() and config.peft.count("/") != 1:
        raise PalomaError(f"--peft {config.peft}: no such folder, and not a hub id (org/name)")


def _check_output(config: EvalConfig) -> Path | None:
    """The output folder, checked before any data is read: present (unless a dry run), of the right kind,
    writable, not overlapping the data or the model, and holding a run only with --resume or --overwrite."""
    if config.output is None:
        if config.dry_run:
            return None
        raise PalomaError("--output is required (where records and results are written)")
    output = Path(config.output)
    inputs = [p for p in (config.data.path, config.model, config.peft) if p and Path(p).exists()]
    check_output_dir(output, inputs)
    state = run_state(output)
    if state and not (config.resume or config.overwrite or config.dry_run):
        if state == "finished":
            raise PalomaError(f"--output {output} already holds a finished run: pass --overwrite to start over, "
                              "or --resume to rewrite its results from its records")  # fmt: skip
        raise PalomaError(f"--output {output} holds an unfinished run (killed or failed): pass --resume to continue "
                          "it, or --overwrite to start over")  # fmt: skip
    if config.resume and not state:
        raise PalomaError(f"--resume: {output} holds no run to continue (no run.json or records)")
    return output


def run_state(output: Path) -> str | None:
    """None (no run), "finished" (results.json written) or "unfinished" (run.json or records only)."""
    if not output.is_dir():
        return None
    if (output / "results.json").is_file():
        return "finished"
    if (output / "run.json").is_file() or record_files(output):
        return "unfinished"
    return None


def _prepare_output(output: Path, config: EvalConfig, protocol: Protocol, procs: Processes) -> np.ndarray:
    """Clear (--overwrite) or check (--resume) the output; return the digests of documents already done.

    The folder is a `paloma.outputs.Outputs`, the resumable-output helper `paloma decon filter` uses too:
    temporaries of killed writers are removed here, so the next run of an output cleans up after the last.
    """
    out = Outputs(output)
    if procs.main:
        for folder in ("", RECORDS_DIR):
            out.clean_folder_temporaries(folder)
    if config.overwrite:
        procs.barrier()
        if procs.main:
            for name in RUN_FILES:
                out.remove(name)
        procs.barrier()
        return np.zeros(0, dtype=np.uint64)
    if not config.resume:
        return np.zeros(0, dtype=np.uint64)
    if out.exists("run.json"):
        previous = out.read_json("run.json")
        if not isinstance(previous, dict) or "protocol" not in previous:
            raise PalomaError(f"--resume: {output / 'run.json'} is unreadable, so the run cannot be checked: "
                              "pass --overwrite to start over")  # fmt: skip
        changed = {
            **spec_differences(previous.get("data") or {}, config.data),
            **differences(previous["protocol"], protocol.to_dict(), RUN_FINGERPRINT_FIELDS),
        }
        if changed:
            detail = ", ".join(f"{k}: {a!r} → {b!r}" for k, (a, b) in changed.items())
            raise PalomaError(f"--resume: {output} was run with another selection, protocol or model ({detail})")
    return done_digests(output)


def _already_done(index, done: np.ndarray) -> np.ndarray:
    digests = np.fromiter((key_digest(index.key(i)) for i in range(len(index))), dtype=np.uint64, count=len(index))
    return np.isin(digests, done)


def _nothing_left(output: Path, config: EvalConfig, registry, started: str, procs: Processes) -> dict:
    """`--resume` of a finished run: nothing is scored; results are rewritten from the records."""
    if procs.main:
        print(f"paloma eval: nothing left to score in {output}; results rewritten from its records", file=sys.stderr)
        results = _rebuild_results(output, registry, config.bootstrap, config.bootstrap_seed,
                                   provenance(config, started))  # fmt: skip
    procs.barrier()
    return results if procs.main else {}


# --------------------------------------------------------------------------------------------- preparing


def _prepare(config: EvalConfig, procs: Processes) -> Prepared:
    """Model files, tokenizer, documents, protocol and tokens: the main process first (it fills the caches)."""
    if not procs.main:
        procs.barrier()
    prepared = _prepare_here(config, procs)
    if procs.main:
        procs.barrier()
    return prepared


def _prepare_here(config: EvalConfig, procs: Processes) -> Prepared:
    from paloma.analysis.merge import is_merge_recipe, read_recipe

    options = config.model_options()
    if is_merge_recipe(config.model):  # a parameter average: plan with its first model's tokenizer and config
        model_path, converted = config.model, None
        tokenizer, model_config = load_tokenizer_and_config(read_recipe(config.model).paths[0], ModelOptions())
    else:
        model_path, converted = resolve_legacy(config.model, options, main=procs.main)
        tokenizer, model_config = load_tokenizer_and_config(model_path, options)
    index, tokens, data_info = _documents(config, tokenizer, procs)
    protocol = _make_protocol(config, tokenizer, model_config, data_info, model_path, converted)
    check_vocabulary(tokens, index.key, protocol.prefix_token_id, vocabulary_size(model_config), config.model,
                     "entries of its config's vocab_size")  # fmt: skip
    return Prepared(index, tokens, protocol, data_info, model_path, converted, tokenizer, model_config)


def _documents(config: EvalConfig, tokenizer, procs) -> tuple:
    """The selected documents' index, their tokens and the data's description (what `paloma eval` and the
    Evaluator read alike); --max-tokens-per-domain applies to the tokens, so it comes last."""
    source = resolve_data(config.data)
    check_whole_suite(source, config.data, resolve_registry(config.registry))
    everything = index_documents(iter_documents(source, config.data), preset_word_count(config.preset))
    keep = select_documents(everything, config.data)
    index = everything.subset(keep)
    del everything
    if not len(index):
        raise PalomaError(f"data: {config.data.path}: no documents match the selection")
    data_info = describe(source, config.data, index)
    tokens = _tokens(config, tokenizer, source, keep, index, procs, data_info["selection"])
    if config.data.max_tokens_per_domain is not None:
        capped = cap_tokens(index, tokens.lengths(), config.data.max_tokens_per_domain, config.data.seed)
        index, tokens = index.subset(capped), _token_subset(tokens, capped)
        data_info = describe(source, config.data, index)
    return index, tokens, data_info


def _token_subset(tokens: TokenStore, keep: np.ndarray) -> TokenStore:
    """The kept documents' tokens, copied into memory (a subset is small by design)."""
    rows = np.flatnonzero(keep)
    parts = [np.asarray(tokens[i]) for i in rows]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return TokenStore(np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32), offsets)


def subset_of(spec: DataSpec) -> str | None:
    """The deterministic subset in protocol form (part of the fingerprint), or None for every document."""
    parts = [f"max_documents_per_domain={spec.limit}"] if spec.limit is not None else []
    if spec.max_tokens_per_domain is not None:
        parts.append(f"max_tokens_per_domain={spec.max_tokens_per_domain}")
    return ",".join([*parts, f"seed={spec.seed}"]) if parts else None


def _tokens(config, tokenizer, source, keep, index, procs: Processes, selection: str) -> TokenStore:
    key = cache_key(tokenizer_hash(tokenizer), selection)
    if config.cache_dir is not None:
        cached = load_cached(config.cache_dir, key, len(index))
        if cached is not None:
            return cached
    texts = iter_selected_texts(source, config.data, keep)
    return tokenize(tokenizer, texts, len(index), config.cache_dir, key, show_progress=config.progress and procs.main)


def _make_protocol(config, tokenizer, model_config, data_info: dict, model_path: str, converted) -> Protocol:
    protocol = _data_protocol(config, tokenizer, data_info, lm_eval_max_length(model_config, tokenizer))
    check_max_length_config(model_config, config.model, protocol.max_length)
    return protocol.with_(model_revision=_model_revision(config, model_path, model_config, converted))


def _data_protocol(config, tokenizer, data_info: dict, model_max_length: int | None) -> Protocol:
    """The protocol as far as the options, the tokenizer and the data fix it (the model adds its revision)."""
    try:
        protocol = protocol_from_preset(
            config.preset,
            model_max_length=model_max_length,
            prefix=config.prefix,
            max_length=config.max_length,
            dtype=config.dtype,
        )
    except ValueError as err:
        raise PalomaError(str(err)) from None
    prefix_token_id = resolve_prefix(tokenizer, protocol.prefix)
    if protocol.add_special_tokens:
        before, after = special_tokens_added(tokenizer)
        protocol = protocol.with_(added_before=before, added_after=after)
    return protocol.with_(
        prefix_token_id=prefix_token_id,
        split=data_info["split"],
        tokenizer_hash=tokenizer_hash(tokenizer),
        data_revision=data_info["revision"],
        selection=data_info["selection"],
        subset=subset_of(config.data),
    )


def _model_revision(config: EvalConfig, model_path: str, model_config, converted: str | None) -> str | None:
    from paloma.analysis.merge import is_merge_recipe, read_recipe

    options = config.model_options()
    if is_merge_recipe(config.model):  # the recipe (paths, weights) and each model's own revision
        import hashlib

        recipe = read_recipe(config.model)
        parts = [f"{w}:{model_revision(p, ModelOptions(), None)}" for p, w in zip(recipe.paths, recipe.weights,
                                                                                   strict=True)]  # fmt: skip
        return "merge:" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    if converted:  # the cache folder is named after the source checkpoint's content hash
        return model_revision(config.model, options, f"{converted}:{Path(model_path).name.rsplit('-', 1)[1]}")
    return model_revision(model_path, options, getattr(model_config, "_commit_hash", None))


def _load_model(config: EvalConfig, prepared: Prepared, device: torch.device) -> LoadedModel:
    from transformers.utils import logging as transformers_logging

    from paloma.analysis.merge import is_merge_recipe, load_merged

    if not config.progress:  # --no-progress silences transformers' loading bars too
        transformers_logging.disable_progress_bar()
    if is_merge_recipe(config.model):
        model, tokenizer = load_merged(config.model, dtype=DTYPES[config.dtype],
                                       trust_remote_code=config.trust_remote_code)  # fmt: skip
        return LoadedModel(model.to(device).eval(), tokenizer, config.model, prepared.protocol.model_revision)
    model = load_model(prepared.model_path, config.model_options(), device)
    return LoadedModel(model, prepared.tokenizer, config.model, prepared.protocol.model_revision,
                       prepared.converted_from)  # fmt: skip


def _pad_id(loaded: LoadedModel) -> int:
    return getattr(loaded.tokenizer, "pad_token_id", None) or 0


def _dtype_bytes(dtype: str) -> int:
    return torch.finfo(DTYPES[dtype]).bits // 8


def _auto_budget(model, config: EvalConfig, max_length: int, device: torch.device) -> int:
    free = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else None
    full_logits = not uses_plain_head(model)
    return auto_batch_tokens(model.config, max_length, free, _dtype_bytes(config.dtype), full_logits)


# --------------------------------------------------------------------------------------------- reports


def dry_run_report(prepared: Prepared, lengths: np.ndarray, budget: int, world: int) -> dict:
    """What a run would do: documents, tokens, windows, forward tokens and padding, without any weights."""
    index, max_length = prepared.index, prepared.protocol.max_length
    totals = {"windows": 0, "batches": 0, "forward": 0, "window_tokens": 0}
    per_doc_windows = np.zeros(len(index), dtype=np.int64)
    for chunk in plan_chunks(lengths, np.arange(len(index)), max_length, budget):
        totals["windows"] += len(chunk.windows)
        totals["batches"] += len(chunk.schedule)
        totals["forward"] += chunk.schedule.forward_tokens()
        totals["window_tokens"] += int(chunk.windows.length.sum())
        per_doc_windows[chunk.docs] = np.bincount(chunk.windows.doc, minlength=len(chunk.docs))
    per_doc_tokens = np.maximum(lengths - 1, 0)
    scored, forward = int(per_doc_tokens.sum()), totals["forward"]
    per_source: dict[str, dict] = {}
    for number, (source, _domain) in enumerate(index.names):
        members = index.domain == number
        if not members.any():
            continue
        entry = per_source.setdefault(source, {"domains": 0, "documents": 0, "tokens": 0, "windows": 0})
        entry["domains"] += 1
        entry["documents"] += int(members.sum())
        entry["tokens"] += int(per_doc_tokens[members].sum())
        entry["windows"] += int(per_doc_windows[members].sum())
    return {
        "dry_run": True,
        "documents": len(index),
        "empty_documents": int((per_doc_windows == 0).sum()),
        "scored_tokens": scored,
        "windows": totals["windows"],
        "batches": totals["batches"],
        "forward_tokens": forward,
        "padding_efficiency": scored / forward if forward else None,
        "padding_fraction": 1 - totals["window_tokens"] / forward if forward else None,
        "batch_tokens": budget,
        "processes": world,
        "sources": per_source,
        "protocol": prepared.protocol.to_dict(),
        "data": prepared.data_info,
    }


def provenance(config: EvalConfig, started: str) -> dict:
    import transformers

    hardware = {"cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count()}
    if torch.cuda.is_available():
        hardware["gpu"] = torch.cuda.get_device_name(0)
        hardware["gpus"] = torch.cuda.device_count()
    return {
        "paloma_version": paloma.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "platform": platform.platform(),
        "hardware": hardware,
        "command": redact_command(config.command),
        "started": started,
        "finished": _now(),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _rebuild_results(output: Path, registry, bootstrap: int, bootstrap_seed: int, provenance_: dict | None) -> dict:
    """results.json and domains.csv from run.json and the records (one streaming pass), keeping earlier speed."""
    run_file = output / "run.json"
    if not run_file.is_file():
        raise PalomaError(f"{output}: not a paloma eval output (no run.json)")
    meta = json.loads(run_file.read_text())
    previous = output / "results.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        meta.update({k: old[k] for k in ("provenance", "speed") if k in old})
    if provenance_ is not None:
        meta["provenance"] = provenance_
    results = build_results(iter_unique_records(output), registry, meta, bootstrap, bootstrap_seed)
    if not results["suite"]["documents"]:
        raise PalomaError(f"{output}: no per-document records to aggregate")
    write_results(output, results)
    return results


def reaggregate(output: Path, registry: str = "paloma", bootstrap: int = 0, bootstrap_seed: int = 0) -> dict:
    """Rebuild results.json and domains.csv of a finished run from its records, without the model."""
    output = Path(output)
    if not output.is_dir():
        raise PalomaError(f"{output}: no such folder")
    Outputs(output).clean_folder_temporaries()
    return _rebuild_results(output, resolve_registry(registry), bootstrap, bootstrap_seed, None)


__all__ = ["EvalConfig", "Evaluator", "content_hash", "evaluate", "format_results", "reaggregate", "subset_of"]
