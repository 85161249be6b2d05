"""Scoring: a model and a batch of windows in, the negative log-likelihood of every scored target out.

Only scored positions reach the output layer, on every architecture, and no forward builds a KV cache
(`use_cache=False`: a 7B multi-head model would otherwise keep about 512 KB per token):

- plain heads (logits = output_embeddings(base(...).last_hidden_state)): the base model's hidden states are
  gathered at the scored positions, and logits, log-sum-exp and the target logit are computed for those rows
  alone, in chunks of bounded size. The right-aligned last window of a long document, which scores few of its
  positions, costs no output-layer work for the rest.
- every other head (soft-capping, logit scales, remote code): the model's own forward with `logits_to_keep`
  set to the scored positions, over as few rows at a time as keep the [rows, kept, vocab] logits within a
  bounded size. A forward without `logits_to_keep` computes all positions, under the same bound.

So the [batch, length, vocab] log-softmax is never materialised, whatever the vocabulary.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np
import torch

# model_type values whose causal-LM logits are exactly output_embeddings(base(...).last_hidden_state).
PLAIN_HEAD_MODEL_TYPES = frozenset(
    {"llama", "gpt_neox", "olmo", "olmo2", "mistral", "qwen2", "qwen3", "gpt2", "phi", "phi3", "falcon", "gptj", "opt",
     "ernie4_5_moe"}
)  # fmt: skip
# Config fields that post-process logits; their presence with a value forces the model's own forward.
LOGIT_POSTPROCESSING_FIELDS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_logit_scale")
# Logits of one output-layer chunk. Measured on 2 CPU cores with a 50k vocabulary: 128 MiB (about 660 rows)
# in a reused buffer, with the log-sum-exp computed in place, runs at 0.96 of the bare output layer; the
# library logsumexp on fresh 32 MiB chunks ran at 0.5 of it (allocation and three passes over the logits).
LOGIT_CHUNK_BYTES = 128 * 2**20
MODEL_LOGITS_BYTES = 512 * 2**20  # logits the model's own head may produce in one forward


@dataclass
class Batch:
    """A padded batch of windows, ready for the device, with where its scored targets are."""

    input_ids: torch.Tensor  # [rows, width], right-padded
    attention_mask: torch.Tensor | None  # None when every row is full width
    rows: torch.Tensor  # [n_scored] row of each scored position
    positions: torch.Tensor  # [n_scored] input position whose output predicts the target
    targets: torch.Tensor  # [n_scored] target token ids
    owners: torch.Tensor  # [n_scored] index (into the run's documents) of the document each target belongs to
    forward_tokens: int  # rows × width: what the model computes, padding included


def make_batch(windows: list[tuple[int, np.ndarray, int]], pad_id: int = 0) -> Batch:
    """Build a batch from (document index, window sequence, scored count) triples.

    `window sequence` holds the window's input followed by its last target (length + 1 tokens): the
    input is sequence[:-1] and targets are sequence[1:], of which the last `scored` count.
    """
    lengths = np.array([len(seq) - 1 for _, seq, _ in windows], dtype=np.int64)
    rows = np.full((len(windows), int(lengths.max()) + 1), pad_id, dtype=np.int64)
    for row, (_, seq, _) in enumerate(windows):
        rows[row, : len(seq)] = seq
    owners = np.array([owner for owner, _, _ in windows], dtype=np.int64)
    scored = np.array([count for _, _, count in windows], dtype=np.int64)
    return batch_of_rows(rows, lengths, scored, owners, pad_id)


def batch_of_rows(
    rows: np.ndarray, lengths: np.ndarray, scored: np.ndarray, owners: np.ndarray, pad_id: int, pin: bool = False
) -> Batch:
    """A batch from padded window rows, with array operations only (no Python per window or target).

    Row r of `rows` ([n, width + 1]) holds window r's `lengths[r]` input tokens followed by its last target, then
    `pad_id`; its last `scored[r]` targets are scored for document `owners[r]`. With `pin`, the tensors are in
    page-locked host memory, so copies to a GPU can be asynchronous (PyTorch's caching host allocator reuses
    the blocks once the copies that read them are done).
    """
    n, width = rows.shape[0], rows.shape[1] - 1
    input_ids = rows[:, :width].copy()
    short = np.flatnonzero(lengths < width)
    input_ids[short, lengths[short]] = pad_id  # a short row's last target is not part of its input
    row = np.repeat(np.arange(n, dtype=np.int64), scored)
    first = np.repeat(lengths - scored, scored)
    position = first + np.arange(len(row), dtype=np.int64) - np.repeat(np.cumsum(scored) - scored, scored)
    mask = None
    if len(short):
        mask = (np.arange(width)[None, :] < lengths[:, None]).astype(np.int64)
    tensors = [input_ids, mask, row, position, rows[row, position + 1], np.repeat(owners, scored)]
    as_torch = [None if t is None else torch.from_numpy(t) for t in tensors]
    if pin:
        as_torch = [None if t is None else t.pin_memory() for t in as_torch]
    input_ids_t, mask_t, row_t, position_t, targets_t, owners_t = as_torch
    return Batch(input_ids=input_ids_t, attention_mask=mask_t, rows=row_t, positions=position_t, targets=targets_t,
                 owners=owners_t, forward_tokens=n * width)  # fmt: skip


def uses_plain_head(model: torch.nn.Module) -> bool:
    """Whether logits can be computed from the base model's hidden states and the output embeddings."""
    config = model.config
    if getattr(config, "model_type", None) not in PLAIN_HEAD_MODEL_TYPES:
        return False
    if any(getattr(config, name, None) not in (None, 1, 1.0) for name in LOGIT_POSTPROCESSING_FIELDS):
        return False
    if type(model).__name__.startswith("Peft"):
        return False  # adapters may wrap the head: use the wrapped model's own forward
    return getattr(model, model.base_model_prefix, None) is not None and model.get_output_embeddings() is not None


def _accepts(function, name: str) -> bool:
    parameters = inspect.signature(function).parameters
    return name in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def input_device(model: torch.nn.Module) -> torch.device:
    """Where inputs go: the input embedding's device (for a model spread by `device_map`, its first device)."""
    device = model.get_input_embeddings().weight.device
    if device.type != "meta":
        return device
    placed = [d for d in getattr(model, "hf_device_map", {}).values() if d not in ("disk", "meta")]
    first = placed[0] if placed else "cpu"
    return torch.device(f"cuda:{first}" if isinstance(first, int) else first)


class Scorer:
    """Computes −log p(target) for every scored position of a batch; results land on `device`."""

    def __init__(self, model: torch.nn.Module, device: torch.device | str):
        self.model = model
        self.device = torch.device(device)
        self.inputs_on = input_device(model)
        self.plain_head = uses_plain_head(model)
        self.head = model.get_output_embeddings()
        self.vocab = int(model.config.vocab_size)
        self.keep_logits = _accepts(model.forward, "logits_to_keep")
        self.cache_flag = _accepts(model.forward, "use_cache")
        self._buffer: torch.Tensor | None = None  # the output layer's reused chunk of logits

    @torch.inference_mode()
    def nll(self, batch: Batch) -> torch.Tensor:
        """Negative log-likelihoods of the scored targets ([n_scored], float32 or float64)."""
        on = self.inputs_on
        input_ids = batch.input_ids.to(on, non_blocking=True)
        mask = batch.attention_mask.to(on, non_blocking=True) if batch.attention_mask is not None else None
        rows, positions = batch.rows.to(on, non_blocking=True), batch.positions.to(on, non_blocking=True)
        targets = batch.targets.to(self.device, non_blocking=True)
        if self.plain_head:
            base = getattr(self.model, self.model.base_model_prefix)
            hidden = base(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
            return self._nll_from_hidden(hidden[rows, positions], targets)
        return self._nll_from_model_logits(input_ids, mask, rows, positions, targets)

    def _nll_from_hidden(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log-sum-exp minus target logit, through the output layer a chunk of rows at a time."""
        chunk = max(1, LOGIT_CHUNK_BYTES // (4 * self.vocab))
        out = [
            _nll_of_logits(self._logits(hidden[start : start + chunk]), targets[start : start + chunk])
            for start in range(0, hidden.shape[0], chunk)
        ]
        return torch.cat(out) if out else torch.zeros(0, device=self.device)

    def _logits(self, rows: torch.Tensor) -> torch.Tensor:
        """The output layer on some rows, into a buffer reused across chunks when the layer is a plain Linear
        held in memory (not quantized, not placed by accelerate's hooks), else through the module itself."""
        head = self.head
        # exactly nn.Linear: quantized layers (bitsandbytes' Linear4bit, …) subclass it with packed weights
        held = type(head) is torch.nn.Linear and not hasattr(head, "_hf_hook") and head.weight.device.type != "meta"
        if not held or rows.device != head.weight.device or rows.dtype != head.weight.dtype:
            return head(rows).to(self.device)
        size = (rows.shape[0], head.out_features)
        if self._buffer is None or self._buffer.shape[0] < size[0] or self._buffer.dtype != rows.dtype:
            self._buffer = torch.empty((max(size[0], LOGIT_CHUNK_BYTES // (4 * size[1])), size[1]), dtype=rows.dtype,
                                       device=rows.device)  # fmt: skip
        out = self._buffer[: size[0]]
        if head.bias is None:
            torch.mm(rows, head.weight.T, out=out)
        else:
            torch.addmm(head.bias, rows, head.weight.T, out=out)
        return out.to(self.device)

    def _row_group(self, kept_per_row: int) -> int:
        """Rows per forward of the model's own head: their kept logits stay within MODEL_LOGITS_BYTES."""
        return max(1, MODEL_LOGITS_BYTES // (4 * self.vocab * max(kept_per_row, 1)))

    def model_forwards(self, rows: int, width: int, most_scored: int) -> int:
        """How many forwards `nll` runs for a batch (known before it runs, as sharded models need): one on
        the plain-head path, else one per group of rows (`most_scored`: the most targets a row scores)."""
        if self.plain_head:
            return 1
        return -(-rows // self._row_group(most_scored if self.keep_logits else width))

    def _nll_from_model_logits(self, input_ids, mask, rows, positions, targets) -> torch.Tensor:
        """The model's own forward on groups of rows, keeping only the logits of the positions scored."""
        n_rows, width = input_ids.shape
        kept_per_row = int(torch.bincount(rows, minlength=n_rows).max()) if self.keep_logits else width
        group = self._row_group(kept_per_row)
        out = []
        for first in range(0, n_rows, group):
            last = min(n_rows, first + group)
            selected = (rows >= first) & (rows < last)
            kwargs = {"attention_mask": None if mask is None else mask[first:last]}
            if self.cache_flag:
                kwargs["use_cache"] = False
            keep = torch.unique(positions[selected]) if self.keep_logits else None
            if keep is not None:
                kwargs["logits_to_keep"] = keep
            logits = self.model(input_ids=input_ids[first:last], **kwargs).logits
            column = positions[selected] if keep is None else torch.searchsorted(keep, positions[selected])
            picked = logits[rows[selected] - first, column.to(logits.device)]
            out.append(_nll_of_logits(picked.to(self.device), targets[selected.to(targets.device)]))
        return torch.cat(out) if out else torch.zeros(0, device=self.device)


def _nll_of_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """−log softmax(logits)[target] per row, in float32 (float64 stays float64); `logits` is overwritten."""
    logits = logits if logits.dtype in (torch.float32, torch.float64) else logits.float()
    target = logits.gather(1, targets[:, None]).squeeze(1)
    peak = logits.amax(1, keepdim=True)
    total = logits.sub_(peak).exp_().sum(1)  # in place: one buffer, no [rows, vocab] temporaries
    return total.log_().add_(peak.squeeze(1)).sub_(target)
