"""The scoring loop of one process: scheduled batches → per-document sums on the device → records on disk.

Per-document sums accumulate on the device; the host syncs only when it writes finished documents to disk
(every `flush_seconds`), which is also what makes `--resume` possible. A document whose NLL is not finite
stops the run before its record is written: nothing non-finite ever reaches the records or results.
Several processes (`accelerate launch -m paloma eval …`) each run this loop on their own share.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from paloma.errors import PalomaError
from paloma.eval.data import DocumentIndex
from paloma.eval.plan import Chunk
from paloma.eval.records import DocumentRecord, RecordWriter
from paloma.eval.scoring import Batch, Scorer, make_batch
from paloma.eval.tokens import TokenStore


class Processes:
    """Rank, world size, device and barriers, through accelerate when launched by it.

    The device is checked here, before any data is read: asking for CUDA on a machine without it is an error.
    """

    def __init__(self, device: str | None):
        if device is not None:
            _check_device(device)
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

    def gather_objects(self, value: object) -> list[object]:
        if self._state is None:
            return [value]
        import torch.distributed as dist

        everyone: list[object] = [None] * self.world
        dist.all_gather_object(everyone, value)
        return everyone


def _check_device(device: str) -> None:
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise PalomaError(f"--device {device!r}: not a device (cpu, cuda, cuda:1, mps, …)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise PalomaError(f"--device {device}: CUDA is not available on this machine (use --device cpu)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise PalomaError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    if parsed.type == "mps" and not torch.backends.mps.is_available():
        raise PalomaError(f"--device {device}: MPS is not available on this machine (use --device cpu)")


@dataclass
class Documents:
    """The run's documents: their index entries, their tokens and the prefix token."""

    index: DocumentIndex
    tokens: TokenStore
    prefix_id: int | None

    def scored_tokens(self, doc: int) -> int:
        """Targets of a document: its tokens, less the first one when there is no prefix to predict it from."""
        return max(int(self.tokens.offsets[doc + 1] - self.tokens.offsets[doc]) - (self.prefix_id is None), 0)

    def window_sequence(self, doc: int, start: int, length: int) -> np.ndarray:
        """A window's input followed by its last target: S[start : start + length + 1] of the document."""
        end = start + length + 1
        ids = self.tokens[doc]
        if self.prefix_id is None:
            return np.asarray(ids[start:end], dtype=np.int64)
        if start == 0:
            return np.concatenate(([self.prefix_id], np.asarray(ids[: end - 1], dtype=np.int64)))
        return np.asarray(ids[start - 1 : end - 1], dtype=np.int64)

    def batch(self, chunk: Chunk, windows: np.ndarray, pad_id: int) -> Batch:
        """The batch of some windows of a chunk; its owners are positions in `chunk.docs`."""
        w = chunk.windows
        return make_batch(
            [
                (int(w.doc[j]), self.window_sequence(int(chunk.docs[w.doc[j]]), int(w.start[j]), int(w.length[j])),
                 int(w.scored[j]))
                for j in windows.tolist()
            ],
            pad_id,
        )  # fmt: skip


@dataclass
class LoopOptions:
    flush_seconds: float
    dtype: str
    progress: bool
    pad_id: int


def score_chunks(
    scorer: Scorer,
    documents: Documents,
    chunks: Iterable[Chunk],
    writer: RecordWriter,
    options: LoopOptions,
    total_tokens: int,
    token_stats: TokenTypeStats | None = None,
) -> dict:
    """Score this process's chunks, writing each document's record as soon as its last window is scored."""
    from tqdm.auto import tqdm

    bar = tqdm(total=total_tokens, unit="tok", unit_scale=True, desc="eval", disable=not options.progress)
    totals = {"scored": 0, "forward": 0, "window_tokens": 0, "oom_splits": 0}
    start = time.perf_counter()
    clock = {"last_flush": start, "start": start}
    for chunk in chunks:
        _score_chunk(scorer, documents, chunk, writer, options, token_stats, bar, totals, clock)
    bar.close()
    return {**totals, "seconds": time.perf_counter() - start}


def _score_chunk(scorer, documents: Documents, chunk: Chunk, writer, options, token_stats, bar, totals, clock):
    device = scorer.device
    remaining = np.bincount(chunk.windows.doc, minlength=len(chunk.docs))
    doc_nll = torch.zeros(len(chunk.docs), dtype=torch.float64, device=device)
    owners_global = torch.from_numpy(chunk.docs).to(device)
    finished = np.flatnonzero(remaining == 0).tolist()  # empty documents score nothing
    for b, batch_windows in enumerate(chunk.schedule.batches()):
        scored_parts = _score_splitting_on_oom(scorer, documents, chunk, batch_windows, options.pad_id)
        totals["oom_splits"] += len(scored_parts) - 1
        for batch, nll in scored_parts:
            owners = batch.owners.to(device, non_blocking=True)
            doc_nll.index_add_(0, owners, nll.to(torch.float64))
            if token_stats is not None:
                token_stats.add(owners_global[owners], batch.targets.to(device, non_blocking=True), nll)
            totals["scored"] += len(batch.targets)
        docs = chunk.windows.doc[batch_windows]
        np.subtract.at(remaining, docs, 1)
        finished.extend(np.unique(docs[remaining[docs] == 0]).tolist())
        totals["forward"] += len(batch_windows) * int(chunk.schedule.widths[b])
        window_tokens = int(chunk.windows.length[batch_windows].sum())
        totals["window_tokens"] += window_tokens
        bar.update(window_tokens)
        if time.perf_counter() - clock["last_flush"] >= options.flush_seconds:
            flush(writer, documents, chunk, finished, doc_nll, options.dtype)
            finished, clock["last_flush"] = [], time.perf_counter()
            bar.set_postfix_str(f"{totals['scored'] / (clock['last_flush'] - clock['start']):,.0f} scored tok/s")
    flush(writer, documents, chunk, finished, doc_nll, options.dtype)


def _score_splitting_on_oom(scorer: Scorer, documents: Documents, chunk: Chunk, windows: np.ndarray, pad_id: int):
    """Score a batch; if the device runs out of memory, score its halves instead (recursively)."""
    batch = documents.batch(chunk, windows, pad_id)
    try:
        return [(batch, scorer.nll(batch))]
    except torch.OutOfMemoryError:
        if len(windows) == 1:
            raise PalomaError(
                "one window does not fit in device memory: lower --max-length, use --dtype bfloat16, or spread the "
                "model over devices (--model-args device_map=auto)"
            ) from None
        torch.cuda.empty_cache()
        half = len(windows) // 2
        return _score_splitting_on_oom(scorer, documents, chunk, windows[:half], pad_id) + _score_splitting_on_oom(
            scorer, documents, chunk, windows[half:], pad_id
        )


def flush(
    writer: RecordWriter, documents: Documents, chunk: Chunk, finished: list[int], doc_nll: torch.Tensor, dtype: str
) -> None:
    """Write finished documents' records (one device→host copy for all of them) and make them durable.

    A non-finite NLL stops the run here, naming the document; its record is never written.
    """
    if not finished:
        return
    index = documents.index
    values = doc_nll[torch.tensor(finished, device=doc_nll.device)].cpu().tolist()
    for local, nll in zip(finished, values, strict=True):
        i = int(chunk.docs[local])
        if not math.isfinite(nll):
            writer.flush()
            raise PalomaError(non_finite_message(index.key(i), nll, dtype))
        source, domain = index.source_domain(i)
        writer.write(
            DocumentRecord(
                key=index.key(i),
                id=index.doc_id(i),
                source=source,
                domain=domain,
                tokens=documents.scored_tokens(i),
                bytes=int(index.bytes[i]),
                chars=int(index.chars[i]),
                words=int(index.words[i]),
                nll_sum=nll,
            )
        )
    writer.flush()


def non_finite_message(key: str, value: float, dtype: str) -> str:
    advice = {
        "float16": "float16 overflows easily: try --dtype bfloat16 or float32",
        "bfloat16": "try --dtype float32",
        "float32": "try --dtype float64 (or bfloat16 if the model was trained in it)",
        "float64": "some models fail in float64 (e.g. padding beyond a sliding window): try --dtype float32",
    }.get(dtype, "try another --dtype")
    return (
        f"document {key}: its NLL is {value} under --dtype {dtype}, so the run stopped before writing it (no "
        f"non-finite number goes into results); {advice}, then rerun with --resume"
    )


class TokenTypeStats:
    """Per-domain count and summed NLL of every token type, accumulated in tensors on the device."""

    def __init__(self, index: DocumentIndex, vocab: int, device: torch.device):
        """`add` takes run document numbers (into `index`)."""
        used = np.unique(index.domain)
        self.domains = [index.names[d] for d in used]
        local = np.full(len(index.names), -1, dtype=np.int64)
        local[used] = np.arange(len(used))
        self.doc_domain = torch.from_numpy(local[index.domain]).to(device)
        self.vocab = vocab
        self.count = torch.zeros(len(self.domains) * vocab, dtype=torch.int64, device=device)
        self.nll = torch.zeros(len(self.domains) * vocab, dtype=torch.float64, device=device)

    def add(self, owners: torch.Tensor, targets: torch.Tensor, nll: torch.Tensor) -> None:
        flat = self.doc_domain[owners] * self.vocab + targets
        self.count.index_add_(0, flat, torch.ones_like(flat))
        self.nll.index_add_(0, flat, nll.to(torch.float64))


def save_token_type_stats(output: Path, stats: TokenTypeStats, procs: Processes) -> None:
    """Sum every process's statistics by (source, domain) and save them as token_stats.npz."""
    from paloma.eval.token_stats import save_token_stats

    gathered = sorted({tuple(k) for part in procs.gather_objects(stats.domains) for k in (part or [])})
    where = {k: j for j, k in enumerate(gathered)}
    count = torch.zeros(len(gathered), stats.vocab, dtype=torch.int64, device=procs.device)
    nll = torch.zeros(len(gathered), stats.vocab, dtype=torch.float64, device=procs.device)
    for j, key in enumerate(stats.domains):
        count[where[key]] += stats.count.view(-1, stats.vocab)[j]
        nll[where[key]] += stats.nll.view(-1, stats.vocab)[j]
    procs.all_sum_(count)
    procs.all_sum_(nll)
    if procs.main:
        save_token_stats(
            output / "token_stats.npz",
            {key: (count[j].cpu().numpy(), nll[j].cpu().numpy()) for j, key in enumerate(gathered)},
            vocab_size=stats.vocab,
        )
