"""Stable paragraph hashes: XXH3-128 (seed 0) of the paragraph's UTF-8 bytes.

XXH3's output is fixed by its specification (xxHash 0.8, "stable"), independent of machine, byte order,
Python version and process, unlike Python's `hash()` (salted per process) or the Bloom filter of the Dolma
toolkit (whose hash changed between versions). A hash is kept as two unsigned 64-bit halves, `hi` and `lo`,
of the big-endian digest. Lone surrogates (which JSON can encode) are written with "surrogatepass", so every
Python string has exactly one byte form.

With 128 bits, the chance that any of n indexed paragraphs collides with any of m training paragraphs is at
most n·m / 2^128: for 10^7 evaluation paragraphs and 10^13 training paragraphs, below 3·10^-19.
"""

from __future__ import annotations

import numpy as np
import xxhash

HASH_NAME = "xxh3_128, seed 0, of UTF-8 bytes (lone surrogates via surrogatepass), big-endian digest"
_BIG_ENDIAN_U64 = np.dtype(">u8")


def encode(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


# The 16-byte digest of a paragraph's UTF-8 bytes: the C function itself, since the filter calls it per paragraph.
paragraph_digest = xxhash.xxh3_128_digest


def digests_to_halves(digests: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Turn a list of 16-byte digests into native uint64 arrays (hi, lo) in one vectorised step."""
    if not digests:
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty.copy()
    pairs = np.frombuffer(b"".join(digests), dtype=_BIG_ENDIAN_U64).reshape(-1, 2).astype(np.uint64)
    return np.ascontiguousarray(pairs[:, 0]), np.ascontiguousarray(pairs[:, 1])
