"""Tokenization in batches with the fast tokenizer, cached on disk.

Documents are tokenized without tokenizer-added special tokens (the protocol adds exactly one prefix
token itself). The cache key is the tokenizer's hash plus a hash of the exact texts, so a changed
tokenizer or changed data never reuses stale tokens, and a rerun (or `--resume`) skips tokenization.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from paloma.io import atomic_write

DEFAULT_CACHE = Path(os.environ.get("PALOMA_CACHE", Path.home() / ".cache" / "paloma")) / "tokens"
BATCH_DOCUMENTS = 256


def tokenizer_hash(tokenizer) -> str:
    """A stable hash of what the tokenizer does: its full serialisation plus its special tokens."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None) or getattr(tokenizer, "_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    specials = {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())}
    digest.update(json.dumps(specials, sort_keys=True).encode())
    return "sha256:" + digest.hexdigest()[:16]


def texts_hash(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(len(text).to_bytes(8, "little"))
        digest.update(text.encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:24]


class TokenizedDocuments:
    """Token ids of many documents in one flat int array with offsets (cheap to cache and slice)."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray):
        self.ids = ids
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]


def tokenize(
    tokenizer, texts: Sequence[str], cache_dir: Path | None = DEFAULT_CACHE, show_progress: bool = True
) -> TokenizedDocuments:
    """Tokenize texts (no special tokens), reading and writing the on-disk cache when `cache_dir` is set."""
    path = None
    if cache_dir is not None:
        key = hashlib.sha256(f"{tokenizer_hash(tokenizer)}/{texts_hash(texts)}".encode()).hexdigest()[:32]
        path = Path(cache_dir) / f"{key}.npz"
        if path.is_file():
            with np.load(path) as cached:
                return TokenizedDocuments(cached["ids"], cached["offsets"])
    tokens = _tokenize(tokenizer, texts, show_progress)
    if path is not None:
        with atomic_write(path, "wb") as handle:
            np.savez(handle, ids=tokens.ids, offsets=tokens.offsets)
    return tokens


def _tokenize(tokenizer, texts: Sequence[str], show_progress: bool) -> TokenizedDocuments:
    from tqdm.auto import tqdm

    pieces: list[list[int]] = []
    with warnings.catch_warnings(), _quiet_length_warning(tokenizer):
        warnings.simplefilter("ignore")
        bar = tqdm(total=len(texts), desc="tokenize", unit="doc", disable=not show_progress, leave=False)
        for start in range(0, len(texts), BATCH_DOCUMENTS):
            batch = list(texts[start : start + BATCH_DOCUMENTS])
            pieces.extend(tokenizer(batch, add_special_tokens=False, verbose=False)["input_ids"])
            bar.update(len(batch))
        bar.close()
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64, count=int(offsets[-1]))
    dtype = np.int32 if (ids.size == 0 or ids.max() < 2**31) else np.int64
    return TokenizedDocuments(ids.astype(dtype), offsets)


class _quiet_length_warning:
    """Silence "Token indices sequence length is longer than the specified maximum" for whole documents.

    Documents are tokenized whole on purpose; windows keep every model input within the protocol's L.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.saved = getattr(tokenizer, "model_max_length", None)

    def __enter__(self):
        if self.saved is not None:
            self.tokenizer.model_max_length = int(1e30)

    def __exit__(self, *exc):
        if self.saved is not None:
            self.tokenizer.model_max_length = self.saved
