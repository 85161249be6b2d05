"""Tokenization as a stream, into an on-disk cache that is read back memory-mapped.

Documents are tokenized without tokenizer-added special tokens (the protocol adds exactly one prefix token
itself), in batches, and their ids appended to one flat int32 file; per-document offsets are one int64 array.
No Python list of token ids outlives its batch, so memory does not grow with the corpus: a full Paloma split
(62M tokens) is a 250 MB file that the scoring loop reads through the page cache. Nor does it grow with one
document: a long document is tokenized in pieces cut where the tokenizer itself gives the same ids cut and
uncut (`pieces`), and written piece by piece.

A cache entry is a folder `<cache>/<key>/` (`ids.bin`, `offsets.npy`, `meta.json`) written through
`paloma.io.atomic_dir`, so it appears complete or not at all. The key is the tokenizer's hash plus the
selection digest of exactly the documents selected (their digests cover the texts), so a changed tokenizer,
another selection or changed data never reuses stale tokens, and a rerun (or `--resume`, or another process)
skips tokenization. Without a cache the ids go to an unnamed temporary file, gone when the process ends,
however it ends.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import tempfile
import warnings
from array import array
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from paloma.errors import PalomaError
from paloma.io import atomic_dir, remove_stale_temporaries

DEFAULT_CACHE = Path(os.environ.get("PALOMA_CACHE", Path.home() / ".cache" / "paloma")) / "tokens"
BATCH_DOCUMENTS = 256
BATCH_CHARS = 1 << 22  # a batch of short documents holds at most this many characters (4 Mi)
PIECE_CHARS = 1 << 18  # a longer document is tokenized in pieces of 256 Ki characters or more
CACHE_FORMAT = "paloma-tokens/2"
IDS_DTYPE = np.int32


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


def cache_key(tokenizer_digest: str, selection: str) -> str:
    """The cache entry of one tokenizer and one selection of documents (`DocumentIndex.selection()`: a digest of
    the documents' sources, domains, ids and texts), never of a name or revision that could stand for others."""
    return hashlib.sha256(f"{CACHE_FORMAT}/{tokenizer_digest}/{selection}".encode()).hexdigest()[:32]


class TokenStore:
    """Token ids of many documents: one flat (memory-mapped) int32 array with int64 offsets."""

    def __init__(self, ids: np.ndarray, offsets: np.ndarray):
        self.ids = ids
        self.offsets = offsets

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i] : self.offsets[i + 1]]


def check_vocabulary(
    store: TokenStore, key: Callable[[int], str], prefix_id: int | None, rows: int | None, model: str, what: str
) -> None:
    """Refuse token ids the model has no embedding row for, before any forward pass.

    An index past the embedding is an IndexError on a CPU and a device-side assert on a GPU, after the weights
    were loaded; a tokenizer that does not belong to the model is found here instead, from the config alone
    (so --dry-run finds it too) and again from the loaded embedding. `key(i)` names document i.
    """
    if rows is None:
        return
    if prefix_id is not None and prefix_id >= rows:
        raise PalomaError(f"the prefix token id {prefix_id} is outside model {model!r}'s vocabulary ({rows} {what}); "
                          "the tokenizer does not belong to this model")  # fmt: skip
    largest = int(store.ids.max()) if len(store.ids) else -1  # one pass over the ids, no temporary
    if largest >= rows:
        first = int(np.argmax(store.ids >= rows))
        doc = int(np.searchsorted(store.offsets, first, side="right")) - 1
        raise PalomaError(
            f"document {key(doc)} has token id {int(store.ids[first])} (ids go up to {largest}), outside model "
            f"{model!r}'s vocabulary ({rows} {what}): the tokenizer does not belong to this model; evaluate it "
            "with its own tokenizer"
        )


def _map(ids_path_or_file, count: int) -> np.ndarray:
    if count == 0:  # an empty file cannot be memory-mapped
        return np.zeros(0, dtype=IDS_DTYPE)
    return np.memmap(ids_path_or_file, dtype=IDS_DTYPE, mode="r", shape=(count,))


def load_cached(cache_dir: Path, key: str, documents: int) -> TokenStore | None:
    """The cache entry `key`, memory-mapped, or None when there is none (or it is not for these documents)."""
    folder = Path(cache_dir) / key
    try:
        meta = json.loads((folder / "meta.json").read_text())
        offsets = np.load(folder / "offsets.npy")
    except (FileNotFoundError, NotADirectoryError, ValueError, json.JSONDecodeError):
        return None
    if meta.get("format") != CACHE_FORMAT or len(offsets) != documents + 1:
        return None
    return TokenStore(_map(folder / "ids.bin", int(offsets[-1])), offsets)


def tokenize(
    tokenizer,
    texts: Iterable[tuple[str, str]],
    documents: int,
    cache_dir: Path | None,
    key: str,
    show_progress: bool = True,
) -> TokenStore:
    """Tokenize (where, text) pairs into the cache entry `key` (or a temporary file when `cache_dir` is None)."""
    if cache_dir is None:
        handle = tempfile.TemporaryFile()  # noqa: SIM115 (unnamed: it lives as long as the memory map)
        offsets = _write_ids(tokenizer, texts, documents, handle, show_progress)
        handle.flush()
        return TokenStore(_map(handle, int(offsets[-1])), offsets)
    cache_dir = Path(cache_dir)
    remove_stale_temporaries(cache_dir)
    with atomic_dir(cache_dir / key, replace=True) as staging:
        with open(staging / "ids.bin", "wb") as handle:
            offsets = _write_ids(tokenizer, texts, documents, handle, show_progress)
        np.save(staging / "offsets.npy", offsets)
        meta = {"format": CACHE_FORMAT, "documents": documents, "tokens": int(offsets[-1]), "dtype": "int32"}
        (staging / "meta.json").write_text(json.dumps(meta) + "\n")
    cached = load_cached(cache_dir, key, documents)
    assert cached is not None, "a cache entry just written must load"
    return cached


def _write_ids(tokenizer, texts: Iterable[tuple[str, str]], documents: int, handle, show_progress: bool) -> np.ndarray:
    """Append each document's ids to `handle` (int32), batch by batch; return the offsets.

    A batch holds at most BATCH_DOCUMENTS documents and BATCH_CHARS characters; a document longer than
    PIECE_CHARS is tokenized alone, piece by piece (`pieces`), and written as its pieces come, so memory is
    bounded by the piece size, not the document's (a 20 MB document needed 4 GB tokenized whole).
    """
    from tqdm.auto import tqdm

    offsets = array("q", [0])
    bar = tqdm(total=documents, desc="tokenize", unit="doc", disable=not show_progress, leave=False)
    batch: list[tuple[str, str]] = []
    chars = 0
    for where, text in texts:
        if len(text) > PIECE_CHARS:
            _flush(tokenizer, batch, handle, offsets, bar)
            batch, chars = [], 0
            _write_long(tokenizer, where, text, handle, offsets)
            bar.update(1)
            continue
        batch.append((where, text))
        chars += len(text)
        if len(batch) == BATCH_DOCUMENTS or chars >= BATCH_CHARS:
            _flush(tokenizer, batch, handle, offsets, bar)
            batch, chars = [], 0
    _flush(tokenizer, batch, handle, offsets, bar)
    bar.close()
    if len(offsets) != documents + 1:
        raise PalomaError(f"the data changed while it was read: {len(offsets) - 1} documents, {documents} before")
    return np.frombuffer(offsets, dtype=np.int64).copy()


def _flush(tokenizer, batch: list[tuple[str, str]], handle, offsets: array, bar) -> None:
    if batch:
        pieces = _encode(tokenizer, batch)
        for piece in pieces:
            offsets.append(offsets[-1] + len(piece))
        _write_flat(batch[0][0], pieces, handle)
        bar.update(len(batch))


def _write_long(tokenizer, where: str, text: str, handle, offsets: array) -> None:
    total = offsets[-1]
    for piece in pieces(tokenizer, text):
        (ids,) = _encode(tokenizer, [(where, piece)])
        _write_flat(where, [ids], handle)
        total += len(ids)
    offsets.append(total)


def _write_flat(where: str, pieces_: list[list[int]], handle) -> None:
    count = sum(len(p) for p in pieces_)
    flat = np.fromiter(itertools.chain.from_iterable(pieces_), dtype=np.int64, count=count)
    if flat.size and (flat.max() >= 2**31 or flat.min() < 0):
        raise PalomaError(f"{where}: token ids outside 0..2^31 cannot be stored")
    handle.write(flat.astype(IDS_DTYPE).tobytes())


def encode_texts(tokenizer, batch: Sequence[tuple[str, str]]) -> list[list[int]]:
    """Token ids of (where, text) pairs as the protocol tokenizes: whole documents, no special tokens added.

    Public so that other counters of tokens (a release manifest) count exactly what the evaluator scores; a
    long document is tokenized in pieces as the evaluator does (the same ids as whole, less memory).
    """
    if all(len(text) <= PIECE_CHARS for _, text in batch):
        return _encode(tokenizer, batch)
    return [_encode_long(tokenizer, where, text) for where, text in batch]


def _encode_long(tokenizer, where: str, text: str) -> list[int]:
    return [i for piece in pieces(tokenizer, text) for i in _encode(tokenizer, [(where, piece)])[0]]


def _encode(tokenizer, batch: Sequence[tuple[str, str]]) -> list[list[int]]:
    try:
        with warnings.catch_warnings(), _quiet_length_warning(tokenizer):
            warnings.simplefilter("ignore")
            return tokenizer([text for _, text in batch], add_special_tokens=False, verbose=False)["input_ids"]
    except Exception as err:  # the Rust tokenizer raises its own error types; name the documents
        raise PalomaError(f"{batch[0][0]} (or one of the {len(batch) - 1} documents after it): tokenizer failed "
                          f"({type(err).__name__}: {err})") from None  # fmt: skip


# ------------------------------------------------------------------------------------------------ long texts

# Cut candidates: after a line break before a letter, or at a space between two letters. Pre-tokenizers
# (GPT-2/NeoX/OLMo byte-level, Llama 3's regex, whitespace, BERT) end a pre-token there, and BPE, WordPiece and
# Unigram never merge across pre-tokens, so the ids of the pieces are the ids of the whole.
_CUT = re.compile(r"(?<=\n)(?=[^\W\d_])|(?<=[^\W\d_]) (?=[^\W\d_])")
CUT_WINDOW = 2048  # characters each side of a cut that must tokenize the same cut and uncut
CUT_TRIES = 64  # candidates checked before a piece gives up and grows


def pieces(tokenizer, text: str) -> Iterator[str]:
    """`text` in pieces of PIECE_CHARS or more, cut only where tokenizing the pieces gives the ids of the whole.

    Each cut is checked on the tokenizer itself: the CUT_WINDOW characters each side must tokenize to the same
    ids cut and uncut. A tokenizer that adds something at the start of every text (SentencePiece's "▁" prefix)
    fails the check, and its documents stay whole: exact first, bounded memory where the tokenizer allows.
    """
    start = 0
    while len(text) - start > 2 * PIECE_CHARS:
        cut = _safe_cut(tokenizer, text, start + PIECE_CHARS, start + 2 * PIECE_CHARS)
        if cut is None:
            break
        yield text[start:cut]
        start = cut
    yield text[start:]


def _safe_cut(tokenizer, text: str, lowest: int, highest: int) -> int | None:
    for tries, match in enumerate(_CUT.finditer(text, lowest, highest)):
        if tries == CUT_TRIES:
            return None
        cut = match.start()
        left, right = text[max(cut - CUT_WINDOW, 0) : cut], text[cut : cut + CUT_WINDOW]
        whole, *parts = _encode(tokenizer, [("", left + right), ("", left), ("", right)])
        if whole == parts[0] + parts[1]:
            return cut
    return None


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
