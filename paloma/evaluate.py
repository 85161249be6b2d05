"""The evaluation runner: documents → token windows → model forward → per-document records → results.

It orchestrates and contains no metric math: tokens come from `paloma.tokens`, windows from
`paloma.windows`, log-likelihoods from `paloma.scoring`, aggregates from `paloma.metrics`.

Speed comes from planning the whole run first: every window of every document is built up front,
sorted globally by length and packed into batches under a token budget, so padding is rare and each
batch is one forward pass. Per-document sums accumulate on the device; the host syncs only when it
writes finished documents to disk (every few seconds), which is also what makes `--resume` possible.
Several processes (`accelerate launch -m paloma eval …`) split the documents by token count.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

import paloma
from paloma.data import DataSpec, Document, load_documents
from paloma.errors import PalomaError
from paloma.io import write_json
from paloma.protocol import RUN_FINGERPRINT_FIELDS, Protocol, differences, protocol_from_preset
from paloma.records import DocumentRecord, RecordWriter, load_records, next_attempt, record_files
from paloma.registry import resolve_registry
from paloma.results import build_results, format_results, write_results
from paloma.scoring import Scorer, make_batch
from paloma.tokens import DEFAULT_CACHE, TokenizedDocuments, tokenize, tokenizer_hash
from paloma.windows import Window, document_windows

MAX_PADDING = 0.05  # the share of a row a batch may pad before it is closed early (once half full)
FLUSH_SECONDS = 10.0  # how often finished documents' records are made durable


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
    command: list[str] = field(default_factory=lambda: list(sys.argv))


@dataclass
class PlannedDocument:
    """A document with its tokens, the unique key its record carries and its windows."""

    key: str
    doc: Document
    sequence: np.ndarray  # prefix token (if any) followed by the document's tokens
    windows: list[Window]

    @property
    def scored_tokens(self) -> int:
        return sum(w.scored for w in self.windows)

    @property
    def forward_tokens(self) -> int:
        return sum(w.length for w in self.windows)


# ----------------------------------------------------------------------------------------------- planning


def document_keys(documents: list[Document]) -> list[str]:
    """source/domain/id, with "#k" appended to the k-th repeat of an id within its domain."""
    seen: Counter[str] = Counter()
    keys = []
    for doc in documents:
        base = f"{doc.source}/{doc.domain}/{doc.id}"
        seen[base] += 1
        keys.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return keys


def plan_documents(
    documents: list[Document], tokens: TokenizedDocuments, prefix_id: int | None, max_length: int
) -> list[PlannedDocument]:
    prefix = np.array([] if prefix_id is None else [prefix_id], dtype=np.int64)
    planned = []
    for i, (key, doc) in enumerate(zip(document_keys(documents), documents, strict=True)):
        sequence = np.concatenate([prefix, tokens[i].astype(np.int64)])
        planned.append(PlannedDocument(key, doc, sequence, document_windows(len(sequence), max_length)))
    return planned


def assign_to_processes(costs: list[int], world: int) -> list[list[int]]:
    """Split documents across processes by token count (largest first, to the least loaded process).

    Deterministic, so every process computes the same split without communicating.
    """
    loads = [0] * world
    shares: list[list[int]] = [[] for _ in range(world)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        target = min(range(world), key=lambda r: (loads[r], r))
        shares[target].append(i)
        loads[target] += costs[i]
    return [sorted(share) for share in shares]


def make_schedule(docs: list[PlannedDocument], batch_tokens: int) -> list[list[tuple[int, Window]]]:
    """All windows sorted by length (longest first), packed into batches of at most `batch_tokens`.

    Windows of one long document all have length L, so they stay together and the document finishes
    as early as possible; a batch's width is its first (longest) window's length. Once half the budget is
    used, a window more than MAX_PADDING shorter than the width starts a new batch instead.
    """
    items = sorted(
        ((i, w) for i, d in enumerate(docs) for w in d.windows), key=lambda iw: (-iw[1].length, iw[0], iw[1].start)
    )
    batches: list[list[tuple[int, Window]]] = []
    current: list[tuple[int, Window]] = []
    for item in items:
        width = current[0][1].length if current else item[1].length
        full = (len(current) + 1) * width > batch_tokens
        # a batch at least half full is closed rather than take a row that would be mostly padding
        too_short = 2 * (len(current) + 1) * width >= batch_tokens and width - item[1].length > MAX_PADDING * width
        if current and (full or too_short):
            batches.append(current)
            current = []
        current.append(item)
    if current:
        batches.append(current)
    return batches


def schedule_forward_tokens(schedule: list[list[tuple[int, Window]]]) -> int:
    return sum(len(batch) * batch[0][1].length for batch in schedule)


def auto_batch_tokens(config, max_length: int, device: torch.device, dtype: str) -> int:
    """A safe default token budget per forward pass.

    On a GPU: about half the free memory divided by an estimate of the activation bytes per token; on a
    CPU, where larger batches do not raise throughput, a few windows. Never less than one full window.
    """
    if device.type != "cuda":
        return max(max_length, 8192)
    free, _ = torch.cuda.mem_get_info(device)
    hidden = int(getattr(config, "hidden_size", 4096))
    inner = int(getattr(config, "intermediate_size", 4 * hidden) or 4 * hidden)
    width = torch.finfo(getattr(torch, dtype)).bits // 8
    per_token = width * (12 * hidden + 3 * inner)
    budget = int(0.5 * free / per_token)
    return max(max_length, min(budget, 64 * max_length) // max_length * max_length)


# ---------------------------------------------------------------------------------------------- processes


class Processes:
    """Rank, world size, device and barriers, through accelerate when launched by it."""

    def __init__(self, device: str | None):
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            from accelerate import PartialState

            state = PartialState(cpu=device == "cpu" or not torch.cuda.is_available())
            self.rank, self.world, self.device = state.process_index, state.num_processes, state.device
            self._state = state
        else:
            self.rank, self.world, self._state = 0, 1, None
            self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self._state is not None:
            self._state.wait_for_everyone()

    def sum(self, values: list[float]) -> list[float]:
        return self._reduce(values, "sum")

    def max(self, values: list[float]) -> list[float]:
        return self._reduce(values, "max")

    def _reduce(self, values: list[float], op: str) -> list[float]:
        if self._state is None:
            return values
        import torch.distributed as dist

        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX)
        return tensor.tolist()

    def all_sum_(self, tensor: torch.Tensor) -> None:
        if self._state is not None:
            import torch.distributed as dist

            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


# --------------------------------------------------------------------------------------------- the runner


def evaluate(config: EvalConfig) -> dict:
    """Evaluate a model per domain; returns results (or, with dry_run, the plan) as plain data."""
    started = _now()
    procs = Processes(config.device)
    registry = resolve_registry(config.registry)
    documents, data_info = load_documents(config.data)
    data_info["release"] = registry.release if registry is not None else None
    if not documents:
        raise PalomaError(f"data: {config.data.path}: no documents match the selection")
    tokenizer, model_config = _load_tokenizer_and_config(config)
    protocol = _make_protocol(config, tokenizer, model_config, data_info)
    texts = [d.text for d in documents]
    if not procs.main:
        procs.barrier()  # let the main process fill the token cache first
    tokens = tokenize(tokenizer, texts, config.cache_dir, show_progress=config.progress and procs.main)
    if procs.main:
        procs.barrier()
    planned = plan_documents(documents, tokens, protocol.prefix_token_id, protocol.max_length)
    budget = config.batch_tokens or auto_batch_tokens(model_config, protocol.max_length, procs.device, config.dtype)
    if budget < protocol.max_length:
        raise PalomaError(f"--batch-tokens {budget} is below one window of --max-length {protocol.max_length}")
    if config.dry_run:
        return dry_run_report(planned, budget, protocol, data_info, procs.world)
    if config.output is None:
        raise PalomaError("--output is required (where records and results are written)")
    output = Path(config.output)
    done = _prepare_output(output, config, protocol, procs)
    loaded = _load_model(config, procs.device)
    model_info = loaded.describe()
    if procs.main:
        write_json(output / "run.json", {"protocol": protocol.to_dict(), "data": data_info, "model": model_info})
    attempt = next_attempt(output)
    procs.barrier()
    todo = [i for i, d in enumerate(planned) if d.key not in done]
    shares = assign_to_processes([planned[i].forward_tokens + 1 for i in todo], procs.world)
    mine = [planned[todo[i]] for i in shares[procs.rank]]
    stats = _score(loaded, mine, budget, procs, output, attempt, config, tokenizer)
    procs.barrier()
    scored, forward, window_tokens = procs.sum([stats["scored"], stats["forward"], stats["window_tokens"]])
    (seconds,) = procs.max([stats["seconds"]])
    if config.token_stats:
        _save_token_stats(output, stats["token_stats"], procs)
    speed = {
        "tokens_per_second": scored / seconds if seconds else None,
        "scored_tokens": int(scored),
        "forward_tokens": int(forward),
        "padding_efficiency": scored / forward if forward else None,
        # forward tokens that are padding; the rest of the gap to 1 is the protocol's own overlap (the
        # right-aligned last window re-reads context it does not score)
        "padding_fraction": 1 - window_tokens / forward if forward else None,
        "seconds": seconds,
        "processes": procs.world,
        "batch_tokens": budget,
        "device": str(procs.device),
    }
    results = None
    if procs.main:
        meta = {
            "protocol": protocol.to_dict(),
            "model": model_info,
            "data": data_info,
            "provenance": provenance(config, started),
            "speed": speed,
        }
        results = build_results(load_records(output), registry, meta, config.bootstrap, config.bootstrap_seed)
        write_results(output, results)
    procs.barrier()
    return results or {}


def _score(loaded, docs, budget, procs, output, attempt, config, tokenizer) -> dict:
    """Score this process's documents, writing each record as soon as its document is finished."""
    from tqdm.auto import tqdm

    device = procs.device
    scorer = Scorer(loaded.model, device)
    schedule = make_schedule(docs, budget)
    remaining = np.array([len(d.windows) for d in docs])
    doc_nll = torch.zeros(len(docs), dtype=torch.float64, device=device)
    token_stats = _TokenStats(docs, scorer.vocab, device) if config.token_stats else None
    finished: list[int] = [i for i, d in enumerate(docs) if not d.windows]  # empty documents score nothing
    forward_total = schedule_forward_tokens(schedule)
    bar = tqdm(
        total=forward_total, unit="tok", unit_scale=True, desc="eval", disable=not (config.progress and procs.main)
    )
    scored_total, start = 0, time.perf_counter()
    with RecordWriter(output, procs.rank, procs.world, attempt) as writer:
        last_flush = time.perf_counter()
        for batch_items in schedule:
            for batch, nll in _score_splitting_on_oom(scorer, docs, batch_items, tokenizer.pad_token_id or 0):
                owners = batch.owners.to(device, non_blocking=True)
                doc_nll.index_add_(0, owners, nll.to(torch.float64))
                if token_stats is not None:
                    token_stats.add(owners, batch.targets.to(device, non_blocking=True), nll)
                scored_total += len(batch.targets)
            for i, _ in batch_items:
                remaining[i] -= 1
                if remaining[i] == 0:
                    finished.append(i)
            bar.update(len(batch_items) * batch_items[0][1].length)
            if time.perf_counter() - last_flush >= config.flush_seconds:
                _flush(writer, docs, finished, doc_nll)
                finished, last_flush = [], time.perf_counter()
                bar.set_postfix_str(f"{scored_total / (last_flush - start):,.0f} scored tok/s")
        _flush(writer, docs, finished, doc_nll)
    bar.close()
    seconds = time.perf_counter() - start
    return {
        "scored": scored_total,
        "forward": forward_total,
        "window_tokens": sum(d.forward_tokens for d in docs),
        "seconds": seconds,
        "token_stats": token_stats,
    }


def _score_splitting_on_oom(scorer: Scorer, docs: list[PlannedDocument], items: list, pad_id: int) -> list:
    """Score a batch; if the device runs out of memory, score its halves instead (recursively)."""
    batch = make_batch([(i, docs[i].sequence[w.start : w.start + w.length + 1], w.scored) for i, w in items], pad_id)
    try:
        return [(batch, scorer.nll(batch))]
    except torch.OutOfMemoryError:
        if len(items) == 1:
            raise PalomaError(
                "one window does not fit in device memory: lower --max-length or use --dtype bfloat16"
            ) from None
        torch.cuda.empty_cache()
        half = len(items) // 2
        return _score_splitting_on_oom(scorer, docs, items[:half], pad_id) + _score_splitting_on_oom(
            scorer, docs, items[half:], pad_id
        )


def _flush(writer: RecordWriter, docs: list[PlannedDocument], finished: list[int], doc_nll: torch.Tensor) -> None:
    """Write finished documents' records (one device→host copy for all of them) and make them durable."""
    if not finished:
        return
    values = doc_nll[torch.tensor(finished, device=doc_nll.device)].cpu().tolist()
    for i, nll in zip(finished, values, strict=True):
        d = docs[i]
        writer.write(
            DocumentRecord(
                key=d.key,
                id=d.doc.id,
                source=d.doc.source,
                domain=d.doc.domain,
                tokens=d.scored_tokens,
                bytes=len(d.doc.text.encode("utf-8", "surrogatepass")),
                chars=len(d.doc.text),
                words=len(d.doc.text.split()),
                nll_sum=nll,
            )
        )
    writer.flush()


class _TokenStats:
    """Per-domain count and summed NLL of every token type, accumulated in tensors on the device."""

    def __init__(self, docs: list[PlannedDocument], vocab: int, device: torch.device):
        self.domains = sorted({(d.doc.source, d.doc.domain) for d in docs})
        index = {k: j for j, k in enumerate(self.domains)}
        self.doc_domain = torch.tensor([index[(d.doc.source, d.doc.domain)] for d in docs], device=device)
        self.vocab = vocab
        self.count = torch.zeros(len(self.domains) * vocab, dtype=torch.int64, device=device)
        self.nll = torch.zeros(len(self.domains) * vocab, dtype=torch.float64, device=device)

    def add(self, owners: torch.Tensor, targets: torch.Tensor, nll: torch.Tensor) -> None:
        flat = self.doc_domain[owners] * self.vocab + targets
        self.count.index_add_(0, flat, torch.ones_like(flat))
        self.nll.index_add_(0, flat, nll.to(torch.float64))


def _save_token_stats(output: Path, stats: _TokenStats, procs: Processes) -> None:
    """Sum every process's statistics by (source, domain) and save them as token_stats.npz."""
    from paloma.token_stats import save_token_stats

    gathered = _gather_domains(stats.domains, procs)
    index = {k: j for j, k in enumerate(gathered)}
    count = torch.zeros(len(gathered), stats.vocab, dtype=torch.int64, device=procs.device)
    nll = torch.zeros(len(gathered), stats.vocab, dtype=torch.float64, device=procs.device)
    for j, key in enumerate(stats.domains):
        count[index[key]] += stats.count.view(-1, stats.vocab)[j]
        nll[index[key]] += stats.nll.view(-1, stats.vocab)[j]
    procs.all_sum_(count)
    procs.all_sum_(nll)
    if procs.main:
        save_token_stats(
            output / "token_stats.npz",
            {key: (count[j].cpu().numpy(), nll[j].cpu().numpy()) for j, key in enumerate(gathered)},
            vocab_size=stats.vocab,
        )


def _gather_domains(domains: list[tuple[str, str]], procs: Processes) -> list[tuple[str, str]]:
    if procs.world == 1:
        return domains
    import torch.distributed as dist

    everyone: list[list[tuple[str, str]] | None] = [None] * procs.world
    dist.all_gather_object(everyone, domains)
    return sorted({tuple(k) for part in everyone for k in (part or [])})


# ------------------------------------------------------------------------------------------------ set-up


def _load_tokenizer_and_config(config: EvalConfig):
    """The tokenizer and model config alone: enough to plan (and dry-run) without loading weights."""
    from transformers import AutoConfig, AutoTokenizer

    from paloma.merge import is_merge_recipe, read_recipe
    from paloma.model import refuse_unconvertible_olmo

    common = {"revision": config.revision, "trust_remote_code": config.trust_remote_code, "token": config.token}
    if is_merge_recipe(config.model):  # a parameter average: plan with its first model's tokenizer and config
        first = read_recipe(config.model).paths[0]
        return AutoTokenizer.from_pretrained(first), AutoConfig.from_pretrained(first)
    refuse_unconvertible_olmo(config.model, config.trust_remote_code)
    if not Path(config.model).exists() and config.model.count("/") != 1:
        raise PalomaError(f"model {config.model!r}: no such folder, and not a hub id (org/name)")
    try:
        return AutoTokenizer.from_pretrained(config.model, **common), AutoConfig.from_pretrained(config.model, **common)
    except (OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PalomaError(f"model {config.model!r}: cannot load ({first})") from None


def _make_protocol(config: EvalConfig, tokenizer, model_config, data_info: dict) -> Protocol:
    from paloma.model import check_max_length_config, resolve_prefix

    try:
        protocol = protocol_from_preset(
            config.preset, prefix=config.prefix, max_length=config.max_length, dtype=config.dtype
        )
    except ValueError as err:
        raise PalomaError(str(err)) from None
    check_max_length_config(model_config, config.model, protocol.max_length)
    return protocol.with_(
        prefix_token_id=resolve_prefix(tokenizer, protocol.prefix),
        split=config.data.split,
        tokenizer_hash=tokenizer_hash(tokenizer),
        model_revision=config.revision or getattr(model_config, "_commit_hash", None) or _local_model_revision(config),
        data_revision=data_info["revision"],
    )


def _local_model_revision(config: EvalConfig) -> str | None:
    """For a local folder: a hash of its config and of each weight file's name, size and first megabyte."""
    from paloma.merge import is_merge_recipe, read_recipe

    folder = Path(config.model)
    if is_merge_recipe(folder):  # the recipe (paths, weights) and each model's own revision
        recipe = read_recipe(folder)
        parts = [
            f"{w}:{_local_model_revision(EvalConfig(model=p, data=config.data))}"
            for p, w in zip(recipe.paths, recipe.weights, strict=True)
        ]
        return "merge:" + hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name == "config.json" or path.suffix in (".safetensors", ".bin", ".pt"):
            digest.update(path.name.encode() + str(path.stat().st_size).encode())
            with open(path, "rb") as handle:
                digest.update(handle.read(2**20))
    return "local:" + digest.hexdigest()[:16]


def _load_model(config: EvalConfig, device: torch.device):
    from paloma.merge import is_merge_recipe, load_merged
    from paloma.model import DTYPES, LoadedModel, load_model

    if is_merge_recipe(config.model):
        model, tokenizer = load_merged(
            config.model, dtype=DTYPES[config.dtype], trust_remote_code=config.trust_remote_code
        )
        return LoadedModel(model.to(device).eval(), tokenizer, config.model, None)
    return load_model(
        config.model,
        revision=config.revision,
        dtype=config.dtype,
        device=str(device),
        trust_remote_code=config.trust_remote_code,
        token=config.token,
    )


def _prepare_output(output: Path, config: EvalConfig, protocol: Protocol, procs: Processes) -> set[str]:
    """Check the output folder against --resume/--overwrite; return the keys of documents already done."""
    has_records = bool(record_files(output))
    if has_records and not (config.resume or config.overwrite):
        raise PalomaError(f"--output {output} already holds a run: pass --resume to continue it or --overwrite")
    if config.overwrite and has_records:
        procs.barrier()
        if procs.main:
            for name in ("records", "results.json", "domains.csv", "run.json", "token_stats.npz"):
                path = output / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        procs.barrier()
        return set()
    if not has_records:
        return set()
    run_file = output / "run.json"
    if run_file.is_file():
        previous = json.loads(run_file.read_text())["protocol"]
        changed = differences(previous, protocol.to_dict(), RUN_FINGERPRINT_FIELDS)
        if changed:
            detail = ", ".join(f"{k}: {a!r} → {b!r}" for k, (a, b) in changed.items())
            raise PalomaError(f"--resume: {output} was run under another protocol or model ({detail})")
    if config.token_stats:
        raise PalomaError("--token-stats cannot be resumed exactly (partial documents); rerun with --overwrite")
    return {r["key"] for r in load_records(output)}


def dry_run_report(planned: list[PlannedDocument], budget: int, protocol: Protocol, data: dict, world: int) -> dict:
    """What a run would do: documents, tokens, windows, forward tokens and padding, without any weights."""
    schedule = make_schedule(planned, budget)
    forward = schedule_forward_tokens(schedule)
    scored = sum(d.scored_tokens for d in planned)
    per_source: dict[str, dict] = {}
    for d in planned:
        entry = per_source.setdefault(d.doc.source, {"domains": set(), "documents": 0, "tokens": 0, "windows": 0})
        entry["domains"].add(d.doc.domain)
        entry["documents"] += 1
        entry["tokens"] += d.scored_tokens
        entry["windows"] += len(d.windows)
    return {
        "dry_run": True,
        "documents": len(planned),
        "empty_documents": sum(1 for d in planned if not d.windows),
        "scored_tokens": scored,
        "windows": sum(len(d.windows) for d in planned),
        "batches": len(schedule),
        "forward_tokens": forward,
        "padding_efficiency": scored / forward if forward else None,
        "batch_tokens": budget,
        "processes": world,
        "sources": {s: {**e, "domains": len(e["domains"])} for s, e in per_source.items()},
        "protocol": protocol.to_dict(),
        "data": data,
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
        "command": config.command,
        "started": started,
        "finished": _now(),
    }


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def reaggregate(output: Path, registry: str = "paloma", bootstrap: int = 0, bootstrap_seed: int = 0) -> dict:
    """Rebuild results.json and domains.csv of a finished run from its records, without the model."""
    output = Path(output)
    run_file = output / "run.json"
    if not run_file.is_file():
        raise PalomaError(f"{output}: not a paloma eval output (no run.json)")
    records = load_records(output)
    if not records:
        raise PalomaError(f"{output}: no per-document records to aggregate")
    previous = output / "results.json"
    meta = json.loads(run_file.read_text())
    if previous.is_file():
        old = json.loads(previous.read_text())
        meta.update({k: old[k] for k in ("provenance", "speed") if k in old})
    results = build_results(records, resolve_registry(registry), meta, bootstrap, bootstrap_seed)
    write_results(output, results)
    return results


__all__ = ["EvalConfig", "evaluate", "format_results", "reaggregate"]
