"""A document's scored sequence S, and windows of many documents gathered from it with array operations.

S = the prefix token (if any), then the tokens the tokenizer adds before a text (only under a protocol with
`add_special_tokens`: lm-evaluation-harness keeps a Llama-style tokenizer's own BOS), the document's tokens from
the cache, then the tokens the tokenizer adds after a text. Every position of S after the first is a target
(`paloma.eval.windows`). The cache holds only the document's own tokens (encoded without special tokens), so the
added ones are put in here, never stored.

lm-evaluation-harness encodes a text without special tokens when the text already begins with its prefix token's
text (`has_bos_prefix`); such a text's own tokens begin with that token, which is what is checked here (exact
unless the tokenizer splits special-token text into ordinary tokens, which transformers does not by default).

Windows are gathered for a whole batch at once: one index array over the memory-mapped ids, no Python per window.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from paloma.eval.data import DocumentIndex
from paloma.eval.tokens import TokenStore


def special_tokens_added(tokenizer) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The ids a tokenizer adds before and after a text's own when encoding with its special tokens.

    Found by encoding a probe text both ways (the tokenizer's post-processor, whatever it is, decides).
    """
    probe = "paloma"
    own = list(tokenizer(probe, add_special_tokens=False)["input_ids"])
    full = list(tokenizer(probe, add_special_tokens=True)["input_ids"])
    for start in range(len(full) - len(own) + 1):
        if full[start : start + len(own)] == own:
            return tuple(full[:start]), tuple(full[start + len(own) :])
    raise ValueError("the tokenizer changes a text's own tokens when it adds special tokens; cannot score it as "
                     "lm-evaluation-harness does")  # fmt: skip


@dataclass
class Documents:
    """The run's documents: their index entries, their tokens, and what the protocol puts around them."""

    index: DocumentIndex
    tokens: TokenStore
    prefix_id: int | None
    added_before: tuple[int, ...] = ()
    added_after: tuple[int, ...] = ()
    added: np.ndarray = field(init=False)  # bool per document: the tokenizer's tokens are put around it
    head_length: np.ndarray = field(init=False)  # tokens of S before the document's own
    sequence_lengths: np.ndarray = field(init=False)  # len(S) per document

    def __post_init__(self):
        own = self.tokens.lengths()
        prefix = [] if self.prefix_id is None else [self.prefix_id]
        self.added = self._added(own)
        heads = [prefix, prefix + list(self.added_before)]
        self._heads = np.zeros((2, max(1, len(heads[1]))), dtype=np.int64)
        for row, head in enumerate(heads):
            self._heads[row, : len(head)] = head
        self._tail = np.array(self.added_after or (0,), dtype=np.int64)
        self.head_length = np.where(self.added, len(heads[1]), len(heads[0])).astype(np.int64)
        self.sequence_lengths = own + self.head_length + np.where(self.added, len(self.added_after), 0)

    def _added(self, own: np.ndarray) -> np.ndarray:
        if not (self.added_before or self.added_after):
            return np.zeros(len(own), dtype=bool)
        if self.prefix_id is None:
            return np.ones(len(own), dtype=bool)
        nonempty = own > 0
        begins_with_prefix = np.zeros(len(own), dtype=bool)
        begins_with_prefix[nonempty] = self.tokens.ids[self.tokens.offsets[:-1][nonempty]] == self.prefix_id
        return ~begins_with_prefix

    def scored_tokens(self, docs: np.ndarray) -> np.ndarray:
        """Targets of each document: every position of S after the first."""
        return np.maximum(self.sequence_lengths[docs] - 1, 0)

    def gather(self, docs: np.ndarray, starts: np.ndarray, lengths: np.ndarray, pad_id: int) -> np.ndarray:
        """Rows S_d[start : start + length + 1] of documents `docs` (a window's input and its last target),
        right-padded with `pad_id` to the longest: [rows, max(length) + 1] int64."""
        column = np.arange(int(lengths.max()) + 1, dtype=np.int64)[None, :]
        position = starts[:, None] + column  # positions in S
        valid = column <= lengths[:, None]
        head = self.head_length[docs][:, None]
        own_length = (self.tokens.offsets[docs + 1] - self.tokens.offsets[docs])[:, None]
        own = valid & (position >= head) & (position < head + own_length)
        out = np.full(position.shape, pad_id, dtype=np.int64)
        if len(self.tokens.ids):
            flat = np.clip(self.tokens.offsets[docs][:, None] + position - head, 0, len(self.tokens.ids) - 1)
            np.copyto(out, self.tokens.ids[flat], where=own)
        before = valid & (position < head)
        if before.any():
            variant = self.added[docs].astype(np.int64)[:, None]
            np.copyto(out, self._heads[variant, np.minimum(position, self._heads.shape[1] - 1)], where=before)
        after = valid & (position >= head + own_length)
        if after.any():
            np.copyto(out, self._tail[np.clip(position - head - own_length, 0, len(self._tail) - 1)], where=after)
        return out
