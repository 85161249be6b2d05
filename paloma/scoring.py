"""Scoring: a model and a batch of windows in, the log-likelihood of every scored target out.

Only scored positions go through the output layer: the base model's hidden states are gathered at the
scored positions, and logits, log-sum-exp and the target logit are computed for those rows alone, in
chunks. So the [batch, length, vocab] log-softmax is never materialised, and the right-aligned last
window of a long document (which scores few of its positions) costs no output-layer work for the rest.
Architectures whose logits are not simply `output_embeddings(last_hidden_state)` (soft-capping, logit
scales, remote code) use the model's own forward and the same gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

# model_type values whose causal-LM logits are exactly output_embeddings(base(...).last_hidden_state).
PLAIN_HEAD_MODEL_TYPES = frozenset(
    {"llama", "gpt_neox", "olmo", "olmo2", "mistral", "qwen2", "qwen3", "gpt2", "phi", "phi3", "falcon", "gptj", "opt"}
)
# Config fields that post-process logits; their presence with a value forces the model's own forward.
LOGIT_POSTPROCESSING_FIELDS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_logit_scale")
LOGIT_CHUNK_BYTES = 256 * 2**20


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
    width = max(len(seq) - 1 for _, seq, _ in windows)
    input_ids = np.full((len(windows), width), pad_id, dtype=np.int64)
    rows, positions, targets, owners = [], [], [], []
    for row, (owner, seq, scored) in enumerate(windows):
        length = len(seq) - 1
        input_ids[row, :length] = seq[:-1]
        first = length - scored
        rows.append(np.full(scored, row))
        positions.append(np.arange(first, length))
        targets.append(seq[first + 1 : length + 1])
        owners.append(np.full(scored, owner))
    lengths = np.array([len(seq) - 1 for _, seq, _ in windows])
    mask = None
    if (lengths < width).any():
        mask = torch.from_numpy((np.arange(width)[None, :] < lengths[:, None]).astype(np.int64))
    return Batch(
        input_ids=torch.from_numpy(input_ids),
        attention_mask=mask,
        rows=torch.from_numpy(np.concatenate(rows)),
        positions=torch.from_numpy(np.concatenate(positions)),
        targets=torch.from_numpy(np.concatenate(targets).astype(np.int64)),
        owners=torch.from_numpy(np.concatenate(owners)),
        forward_tokens=len(windows) * width,
    )


def uses_plain_head(model: torch.nn.Module) -> bool:
    """Whether logits can be computed from the base model's hidden states and the output embeddings."""
    config = model.config
    if getattr(config, "model_type", None) not in PLAIN_HEAD_MODEL_TYPES:
        return False
    if any(getattr(config, name, None) not in (None, 1, 1.0) for name in LOGIT_POSTPROCESSING_FIELDS):
        return False
    return getattr(model, model.base_model_prefix, None) is not None and model.get_output_embeddings() is not None


class Scorer:
    """Computes −log p(target) for every scored position of a batch, on the model's device."""

    def __init__(self, model: torch.nn.Module, device: torch.device | str):
        self.model = model
        self.device = torch.device(device)
        self.plain_head = uses_plain_head(model)
        self.head = model.get_output_embeddings()
        self.vocab = int(model.config.vocab_size)

    @torch.inference_mode()
    def nll(self, batch: Batch) -> torch.Tensor:
        """Negative log-likelihoods of the scored targets ([n_scored], float32 or float64)."""
        device = self.device
        input_ids = batch.input_ids.to(device, non_blocking=True)
        mask = batch.attention_mask.to(device, non_blocking=True) if batch.attention_mask is not None else None
        rows = batch.rows.to(device, non_blocking=True)
        positions = batch.positions.to(device, non_blocking=True)
        targets = batch.targets.to(device, non_blocking=True)
        if self.plain_head:
            base = getattr(self.model, self.model.base_model_prefix)
            hidden = base(input_ids=input_ids, attention_mask=mask).last_hidden_state
            return self._nll_from_rows(hidden[rows, positions], targets, self.head)
        logits = self.model(input_ids=input_ids, attention_mask=mask).logits
        return self._nll_from_rows(logits[rows, positions], targets, None)

    def _nll_from_rows(self, rows: torch.Tensor, targets: torch.Tensor, head) -> torch.Tensor:
        """log-sum-exp minus target logit, chunked so the logits of few rows exist at a time."""
        width = self.vocab if head is not None else rows.shape[-1]
        chunk = max(1, LOGIT_CHUNK_BYTES // (4 * width))
        out = []
        for start in range(0, rows.shape[0], chunk):
            part = rows[start : start + chunk]
            logits = head(part) if head is not None else part
            logits = logits if logits.dtype == torch.float64 else logits.float()
            target_logit = logits.gather(1, targets[start : start + chunk, None]).squeeze(1)
            out.append(torch.logsumexp(logits, dim=-1) - target_logit)
        if not out:
            return torch.zeros(0, device=self.device)
        return torch.cat(out)
