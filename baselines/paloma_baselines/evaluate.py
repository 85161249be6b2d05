"""The trainer's own measure of fit on held-out documents, under Paloma's evaluation protocol (§2).

Each document is scored alone: its tokens with one EOS token in front, cut into disjoint windows of at
most `max_length` inputs (the last one right-aligned), every token scored exactly once. This lets a run
report the same numbers that `paloma eval` computes on its export, with no export in between.
"""

from __future__ import annotations

import torch

from paloma_baselines.model import Transformer


@torch.no_grad()
def document_nll(model: Transformer, ids: list[int], prefix: int, max_length: int) -> float:
    """−Σ ln p(token) over a document's tokens, natural log (0.0 for an empty document)."""
    device = next(model.parameters()).device
    seq = torch.tensor([prefix, *ids], device=device)
    targets, done, total = len(ids), 0, 0.0
    while done < targets:
        scored = min(max_length, targets - done)
        end = done + scored  # seq[end] is the last target of this window
        start = max(0, end - max_length)
        logits = model(seq[start:end][None])[0].float()
        logp = torch.log_softmax(logits, dim=-1).gather(1, seq[start + 1 : end + 1, None])[:, 0]
        total -= logp[-scored:].double().sum().item()
        done = end
    return total


def evaluate_texts(model: Transformer, tokenizer, texts: list[str], max_length: int) -> list[dict]:
    """Per-document records: tokens scored and the summed negative log-likelihood."""
    model.eval()
    prefix = model.config.eos_token_id
    records = []
    for text in texts:
        ids = tokenizer.encode(text, add_special_tokens=False)
        records.append({"tokens": len(ids), "nll_sum": document_nll(model, ids, prefix, max_length)})
    return records
