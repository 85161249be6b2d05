"""Planning a run: every window of every document, sorted and packed into batches, documents split by process.

Speed comes from planning the whole run first: all windows are built up front, sorted globally by length and
packed into batches under a token budget, so padding is rare and each batch is one forward pass. Windows of
one long document all have length L, so they stay together and the document finishes as early as possible.

Planning runs in chunks of documents (`CHUNK_DOCUMENTS`), one after the other as scoring proceeds: within a
chunk, windows are sorted and packed and the chunk's documents split across processes. Everything is arrays
(a window is 32 bytes), never a Python object per window or document, and only one chunk is planned at a
time, so planning memory does not grow with the corpus; a chunk of 65,536 documents holds every length many
times over, so padding is as small as a global sort would make it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from paloma.errors import PalomaError

CHUNK_DOCUMENTS = 1 << 16  # documents planned together
MAX_PADDING = 0.05  # the share of a row a batch may pad before it is closed early (once half full)
CPU_BATCH_TOKENS = 8192  # on a CPU, larger batches do not raise throughput
LOGIT_BYTES = 4  # logits are computed in float32 (or float64)


@dataclass
class Windows:
    """Windows as arrays: window j reads S[start:start+length] of document `doc[j]`'s sequence S and scores
    its last `scored` targets (see `paloma.eval.windows` for the scheme, which these arrays equal)."""

    doc: np.ndarray  # int64
    start: np.ndarray  # int64
    length: np.ndarray  # int64
    scored: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.doc)


def plan_windows(sequence_lengths: np.ndarray, max_length: int) -> Windows:
    """The windows of every document at once: `paloma.eval.windows.document_windows`, vectorised.

    `sequence_lengths[i]` counts document i's prefix token (if any) and its tokens.
    """
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    targets = np.maximum(np.asarray(sequence_lengths, dtype=np.int64) - 1, 0)
    count = (targets + max_length - 1) // max_length
    doc = np.repeat(np.arange(len(targets), dtype=np.int64), count)
    first_of_doc = np.repeat(np.cumsum(count) - count, count)
    k = np.arange(len(doc), dtype=np.int64) - first_of_doc  # the window's number within its document
    remaining = targets[doc] - k * max_length
    scored = np.minimum(max_length, remaining)
    later = k > 0
    start = np.where(later, k * max_length + scored - max_length, 0)
    length = np.where(later, max_length, scored)
    return Windows(doc, start, length, scored)


@dataclass
class Schedule:
    """Batches of windows: batch b holds windows `order[bounds[b]:bounds[b+1]]`, its width their longest."""

    order: np.ndarray  # window indices, longest first
    bounds: np.ndarray  # batch boundaries into `order`
    widths: np.ndarray  # each batch's width (its first window's length)

    def __len__(self) -> int:
        return len(self.widths)

    def batches(self) -> Iterator[np.ndarray]:
        for b in range(len(self.widths)):
            yield self.order[self.bounds[b] : self.bounds[b + 1]]

    def forward_tokens(self) -> int:
        """What the model computes: rows × width summed over batches, padding included."""
        return int((np.diff(self.bounds) * self.widths).sum())


def make_schedule(windows: Windows, batch_tokens: int) -> Schedule:
    """All windows sorted by length (longest first), packed into batches of at most `batch_tokens`.

    A batch's width is its first (longest) window's length. Once half the budget is used, a window more
    than MAX_PADDING shorter than the width starts a new batch instead: a half-full batch is closed rather
    than take a row that would be mostly padding.
    """
    if len(windows) and windows.length.max() > batch_tokens:
        raise PalomaError(f"--batch-tokens {batch_tokens} is below one window of {int(windows.length.max())} tokens")
    order = np.lexsort((windows.start, windows.doc, -windows.length))
    lengths = windows.length[order]
    descending = -lengths  # ascending, for searchsorted
    bounds, widths = [0], []
    i, n = 0, len(order)
    while i < n:
        width = int(lengths[i])
        full = batch_tokens // width  # rows that fit the budget
        half = max(0, -(-batch_tokens // (2 * width)) - 1)  # rows after which the padding rule applies
        first_short = int(np.searchsorted(descending, -(width - MAX_PADDING * width), side="right"))
        end = min(n, i + min(full, max(half, first_short - i)))
        bounds.append(end)
        widths.append(width)
        i = end
    return Schedule(order, np.array(bounds, dtype=np.int64), np.array(widths, dtype=np.int64))


def assign_to_processes(costs: np.ndarray, world: int) -> list[np.ndarray]:
    """Split documents across processes by cost (largest first, to the least loaded process).

    Deterministic, so every process computes the same split without communicating.
    """
    costs = np.asarray(costs, dtype=np.int64)
    if world == 1:
        return [np.arange(len(costs), dtype=np.int64)]
    owner = np.empty(len(costs), dtype=np.int64)
    loads = [(0, rank) for rank in range(world)]
    for i in np.lexsort((np.arange(len(costs)), -costs)).tolist():
        load, rank = heapq.heappop(loads)
        owner[i] = rank
        heapq.heappush(loads, (load + int(costs[i]), rank))
    return [np.flatnonzero(owner == rank) for rank in range(world)]


@dataclass
class Chunk:
    """One process's part of one chunk: its documents (numbers in the run), their windows and batches.

    `windows.doc` indexes `docs`.
    """

    docs: np.ndarray
    windows: Windows
    schedule: Schedule


def window_tokens(sequence_lengths: np.ndarray, max_length: int) -> np.ndarray:
    """Input tokens of each document's windows (padding aside): M for M ≤ L targets, else ⌈M/L⌉·L."""
    targets = np.maximum(np.asarray(sequence_lengths, dtype=np.int64) - 1, 0)
    return np.where(targets <= max_length, targets, (targets + max_length - 1) // max_length * max_length)


def _chunk_shares(sequence_lengths: np.ndarray, todo: np.ndarray, max_length: int, world: int, rank: int,
                  chunk_documents: int) -> Iterator[np.ndarray]:  # fmt: skip
    for first in range(0, len(todo), chunk_documents):
        part = todo[first : first + chunk_documents]
        if world == 1:
            yield part
            continue
        costs = window_tokens(sequence_lengths[part], max_length) + 1
        yield part[assign_to_processes(costs, world)[rank]]


def plan_chunks(
    sequence_lengths: np.ndarray,
    todo: np.ndarray,
    max_length: int,
    batch_tokens: int,
    world: int = 1,
    rank: int = 0,
    chunk_documents: int = CHUNK_DOCUMENTS,
) -> Iterator[Chunk]:
    """This process's chunks of the documents `todo`, planned one at a time, as the caller asks for them.

    Every process computes the same split of each chunk without communicating (deterministic).
    """
    for docs in _chunk_shares(sequence_lengths, todo, max_length, world, rank, chunk_documents):
        windows = plan_windows(sequence_lengths[docs], max_length)
        yield Chunk(docs, windows, make_schedule(windows, batch_tokens))


def share_window_tokens(sequence_lengths: np.ndarray, todo: np.ndarray, max_length: int, world: int = 1,
                        rank: int = 0, chunk_documents: int = CHUNK_DOCUMENTS) -> int:  # fmt: skip
    """Input tokens (padding aside) of this process's windows: the progress bar's total."""
    shares = _chunk_shares(sequence_lengths, todo, max_length, world, rank, chunk_documents)
    return int(sum(window_tokens(sequence_lengths[docs], max_length).sum() for docs in shares))


def activation_bytes_per_token(config, max_length: int, dtype_bytes: int, full_logits: bool) -> int:
    """A generous estimate of the device memory one input token needs during an inference forward.

    The residual stream and a layer's temporaries (q, k, v, attention output, the MLP's inner activations),
    the attention scores of one layer when they are materialised (heads × L per token), and the logits: a
    row of the vocabulary per token when the model's own head computes them for every kept position
    (`full_logits`), else nothing (scored rows go through the output layer in bounded chunks).
    """
    hidden = int(getattr(config, "hidden_size", None) or getattr(config, "d_model", 4096))
    inner = int(getattr(config, "intermediate_size", None) or 4 * hidden)
    heads = int(getattr(config, "num_attention_heads", None) or max(1, hidden // 128))
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    per_token = dtype_bytes * (8 * hidden + 3 * inner) + 4 * heads * max_length
    if full_logits:
        per_token += (dtype_bytes + 2 * LOGIT_BYTES) * vocab  # the logits, their float32 copy and log-sum-exp
    return per_token


def auto_batch_tokens(config, max_length: int, free_bytes: int | None, dtype_bytes: int, full_logits: bool) -> int:
    """A safe default token budget per forward pass: a third of the free device memory over the estimate.

    `free_bytes` None means a CPU, where larger batches do not raise throughput: a few windows. Never less
    than one full window; at most 64 windows.
    """
    if free_bytes is None:
        return max(max_length, CPU_BATCH_TOKENS)
    budget = int(free_bytes / 3 / activation_bytes_per_token(config, max_length, dtype_bytes, full_logits))
    return max(max_length, min(budget, 64 * max_length) // max_length * max_length)
