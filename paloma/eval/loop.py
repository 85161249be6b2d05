"""The scoring loop of one process: scheduled batches → per-document sums on the device → records on disk.

The host side is built to keep up with a GPU: a batch is gathered from the memory-mapped token cache with array
operations (`Documents.gather`, `batch_of_rows`) on a prefetching thread while the device scores the previous
one, copies come from page-locked memory without blocking, per-document sums are one `index_add_` per batch,
and finished documents' records are written together (benchmarks/host_loop.py measures it).

Per-document sums accumulate on the device; the host syncs only when it writes finished documents to disk
(every `flush_seconds`), which is also what makes `--resume` possible. A document whose NLL is not finite
stops the run before its record is written: nothing non-finite ever reaches the records or results.
Several processes (`accelerate launch -m paloma eval …`) each run this loop on their own share.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from paloma.errors import PalomaError
from paloma.eval.data import DocumentIndex
from paloma.eval.plan import Chunk
from paloma.eval.records import DocumentRecord, RecordWriter
from paloma.eval.scoring import Batch, Scorer, batch_of_rows
from paloma.eval.sequences import Documents


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
    """Score this process's chunks, writing each document's record as soon as its last window is scored.

    Batches are planned and built on a second thread (`prefetched`) while this one runs the model, so the host
    work of the next batch overlaps the device work of this one.
    """
    from tqdm.auto import tqdm

    bar = tqdm(total=total_tokens, unit="tok", unit_scale=True, desc="eval", disable=not options.progress)
    totals = {"scored": 0, "forward": 0, "window_tokens": 0, "oom_splits": 0}
    start = time.perf_counter()
    clock = {"last_flush": start, "start": start}
    pin = scorer.inputs_on.type == "cuda"
    state: _ChunkState | None = None
    for chunk, windows, batch in prefetched(_built_batches(documents, chunks, options.pad_id, pin)):
        if state is None or state.chunk is not chunk:
            if state is not None:
                state.flush(writer, documents, options.dtype)
            state = _ChunkState(chunk, scorer.device)
        _score_batch(scorer, documents, state, windows, batch, options, token_stats, totals)
        bar.update(int(chunk.windows.length[windows].sum()))
        if time.perf_counter() - clock["last_flush"] >= options.flush_seconds:
            state.flush(writer, documents, options.dtype)
            clock["last_flush"] = time.perf_counter()
            bar.set_postfix_str(f"{totals['scored'] / (clock['last_flush'] - clock['start']):,.0f} scored tok/s")
    if state is not None:
        state.flush(writer, documents, options.dtype)
    bar.close()
    return {**totals, "seconds": time.perf_counter() - start}


def _built_batches(documents: Documents, chunks: Iterable[Chunk], pad_id: int, pin: bool):
    """(chunk, window numbers, batch) for every batch of every chunk, in the schedule's order."""
    for chunk in chunks:
        for windows in chunk.schedule.batches():
            yield chunk, windows, window_batch(documents, chunk, windows, pad_id, pin)


def window_batch(documents: Documents, chunk: Chunk, windows: np.ndarray, pad_id: int, pin: bool = False) -> Batch:
    """The batch of some windows of a chunk, gathered from the token cache at once; owners index `chunk.docs`."""
    w = chunk.windows
    local = w.doc[windows]
    rows = documents.gather(chunk.docs[local], w.start[windows], w.length[windows], pad_id)
    return batch_of_rows(rows, w.length[windows], w.scored[windows], local, pad_id, pin)


class _ChunkState:
    """Per-document NLL sums of one chunk on the device, and which documents are finished but not yet written."""

    def __init__(self, chunk: Chunk, device: torch.device):
        self.chunk = chunk
        self.remaining = np.bincount(chunk.windows.doc, minlength=len(chunk.docs))
        self.doc_nll = torch.zeros(len(chunk.docs), dtype=torch.float64, device=device)
        self.owners_global = torch.from_numpy(chunk.docs).to(device)
        self.finished = [np.flatnonzero(self.remaining == 0)]  # empty documents score nothing

    def done(self, windows: np.ndarray) -> None:
        """Count these windows as scored; documents whose last window it was are finished."""
        docs = self.chunk.windows.doc[windows]
        touched, counts = np.unique(docs, return_counts=True)
        self.remaining[touched] -= counts
        self.finished.append(touched[self.remaining[touched] == 0])

    def flush(self, writer: RecordWriter, documents: Documents, dtype: str) -> None:
        finished = np.concatenate(self.finished) if self.finished else np.zeros(0, dtype=np.int64)
        self.finished = []
        flush(writer, documents, self.chunk, finished, self.doc_nll, dtype)


def _score_batch(scorer, documents, state: _ChunkState, windows, batch, options, token_stats, totals) -> None:
    scored_parts = _score_splitting_on_oom(scorer, documents, state.chunk, windows, batch, options.pad_id)
    totals["oom_splits"] += len(scored_parts) - 1
    device = scorer.device
    for part, nll in scored_parts:
        owners = part.owners.to(device, non_blocking=True)
        state.doc_nll.index_add_(0, owners, nll.to(torch.float64))
        if token_stats is not None:
            token_stats.add(state.owners_global[owners], part.targets.to(device, non_blocking=True), nll)
        totals["scored"] += len(part.targets)
    state.done(windows)
    totals["forward"] += batch.forward_tokens
    totals["window_tokens"] += int(state.chunk.windows.length[windows].sum())


def prefetched(items: Iterable, depth: int = 2) -> Iterator:
    """The items of `items`, produced on a background thread up to `depth` ahead of the consumer.

    An exception in the producer is raised in the consumer at the item where it happened; a consumer that stops
    early (an error while scoring) stops the producer too.
    """
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def offer(entry: tuple) -> bool:
        """Put an entry unless the consumer has stopped (then no one would take it)."""
        while not stop.is_set():
            try:
                slots.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((end, None))
        except BaseException as err:  # handed to the consumer, which raises it
            offer((end, err))

    thread = threading.Thread(target=produce, name="paloma-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, err = slots.get()
            if item is end:
                if err is not None:
                    raise err
                return
            yield item
    finally:
        stop.set()
        thread.join()


def _score_splitting_on_oom(scorer: Scorer, documents: Documents, chunk: Chunk, windows: np.ndarray,
                            batch: Batch | None, pad_id: int):  # fmt: skip
    """Score a batch; if the device runs out of memory, score its halves instead (recursively)."""
    batch = batch if batch is not None else window_batch(documents, chunk, windows, pad_id)
    try:
        return [(batch, scorer.nll(batch))]
    except torch.OutOfMemoryError:
        if len(windows) == 1:
            raise PalomaError(
                "one window does not fit in device memory: lower --max-length, use --dtype bfloat16, or spread the "
                "model over devices (--model-args device_map=auto)"
            ) from None
        del batch
        torch.cuda.empty_cache()
        half = len(windows) // 2
        return _score_splitting_on_oom(scorer, documents, chunk, windows[:half], None, pad_id) + (
            _score_splitting_on_oom(scorer, documents, chunk, windows[half:], None, pad_id)
        )


def flush(
    writer: RecordWriter, documents: Documents, chunk: Chunk, finished: np.ndarray, doc_nll: torch.Tensor, dtype: str
) -> None:
    """Write finished documents' records (one device→host copy for all of them, one write) and make them durable.

    A non-finite NLL stops the run here, naming the document; its record is never written.
    """
    if not len(finished):
        return
    index = documents.index
    values = doc_nll[torch.from_numpy(finished).to(doc_nll.device)].cpu().numpy()
    docs = chunk.docs[finished]
    bad = np.flatnonzero(~np.isfinite(values))
    if len(bad):
        good = docs[: bad[0]]
        writer.write_many(document_records(index, documents, good, values[: bad[0]]))
        writer.flush()
        raise PalomaError(non_finite_message(index.key(int(docs[bad[0]])), float(values[bad[0]]), dtype))
    writer.write_many(document_records(index, documents, docs, values))
    writer.flush()


def document_records(index, documents: Documents, docs: np.ndarray, nll: np.ndarray) -> Iterator[DocumentRecord]:
    """The records of documents `docs` (numbers in the run) with their summed NLLs."""
    columns = zip(docs.tolist(), documents.scored_tokens(docs).tolist(), index.bytes[docs].tolist(),
                  index.chars[docs].tolist(), index.words[docs].tolist(), nll.tolist(), strict=True)  # fmt: skip
    for i, tokens, n_bytes, chars, words, value in columns:
        source, domain = index.source_domain(i)
        yield DocumentRecord(key=index.key(i), id=index.doc_id(i), source=source, domain=domain, tokens=tokens,
                             bytes=n_bytes, chars=chars, words=words, nll_sum=value)  # fmt: skip


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
