"""The decontamination decision, and nothing else: a document's keys, looked up in an index, decide removal.

A pure function of (index, documents): the CLI filter (`paloma.decon.filter`), `paloma decon verify` and the
datatrove step (`paloma.decon.datatrove`) all call `decide`, so they cannot disagree. What a document's keys
are depends on the index's match mode (recorded in its header, docs/decon.md):

- `exact` (the reference, Dolma's rule): every paragraph (the text split on "\\n") as its raw UTF-8 bytes;
- `normalised`: each paragraph with whitespace runs collapsed, ends trimmed and case folded;
- `ngram`: every run of n consecutive normalised words (GPT-3's and The Pile's n-gram overlap rule,
  `paloma.decon.rules.ngram_keys`).

Keys shorter in UTF-8 bytes than the shortest indexed key cannot be in the index and are not hashed, which
changes no decision. One key found removes the whole document.
"""

from __future__ import annotations

import numpy as np

from paloma.decon import rules
from paloma.decon.hashing import digests_to_halves, paragraph_digest
from paloma.decon.index import ContaminationIndex


def document_keys(text: str, match: str, shortest: int = 0, ngram: int | None = None) -> list[bytes]:
    """The UTF-8 keys of one training document under a match mode that could be in an index."""
    if match == "exact":
        data = text.encode("utf-8", "surrogatepass")
        return [p for p in data.split(b"\n") if len(p) >= shortest] if len(data) >= shortest else []
    if match == "ngram":
        return [k for k in rules.ngram_keys(text, ngram or rules.DEFAULT_NGRAM) if len(k) >= shortest]
    keys = (rules.normalise(p).encode("utf-8", "surrogatepass") for p in text.split("\n"))
    return [k for k in keys if len(k) >= shortest]


def key_digests(index: ContaminationIndex, texts: list[str]) -> tuple[list[bytes], list[int], list[int]]:
    """Digests of every key that could be indexed, the document each belongs to, and text sizes in bytes."""
    shortest, digest, match, ngram = index.min_key_bytes, paragraph_digest, index.match, index.ngram
    digests: list[bytes] = []
    owners: list[int] = []
    sizes: list[int] = []
    exact = match == "exact"
    for doc, text in enumerate(texts):
        if exact:  # the common case, inlined: the filter spends most of its time here
            data = text.encode("utf-8", "surrogatepass")
            sizes.append(len(data))
            if len(data) < shortest:
                continue
            found = [digest(p) for p in data.split(b"\n") if len(p) >= shortest]
        else:
            sizes.append(len(text.encode("utf-8", "surrogatepass")))
            found = [digest(k) for k in document_keys(text, match, shortest, ngram)]
        digests += found
        owners += [doc] * len(found)
    return digests, owners, sizes


def decide(index: ContaminationIndex, texts: list[str]) -> tuple[np.ndarray, list[tuple[int, int]], list[int]]:
    """For a batch of documents: the removal mask, (document, index position) of every hit, and byte sizes."""
    digests, owners, sizes = key_digests(index, texts)
    hi, lo = digests_to_halves(digests)
    positions = index.lookup(hi, lo)
    hit = np.nonzero(positions >= 0)[0]
    removed = np.zeros(len(texts), dtype=bool)
    hits = [(owners[i], int(positions[i])) for i in hit]
    removed[[doc for doc, _ in hits]] = True
    return removed, hits, sizes
