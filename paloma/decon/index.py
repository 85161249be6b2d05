"""The contamination index: an exact, sorted set of paragraph hashes with a map back to evaluation documents.

File layout (format version 1), little-endian:

    b"PALOMADX"  | uint64 header length H | H bytes of JSON header | zero padding to a multiple of 64
    payload: sections, each starting at a multiple of 64 from the payload start
      hi       uint64[n]    high halves of the hashes, sorted by (hi, lo)
      lo       uint64[n]    low halves
      offsets  uint64[n+1]  hash i was seen in documents origins[offsets[i]:offsets[i+1]]
      origins  uint32[m]    indices into the documents table
      doc_domain uint32[d]  each document's entry in the header's "domains" list of [source, domain]
      docs     zlib-compressed JSON: [[source, domain, split, id], ...]

The header records the rules, the hash, the data revision, counts, the section layout and a checksum
(blake2b-256 over the canonical header without the checksum, then the payload). The checksum is the index's
identity: a filter report cites it, and `load` refuses a file whose bytes no longer match it.

Lookups memory-map the arrays, so every worker process shares one copy in the page cache instead of
unpickling its own; attributing a hit to its evaluation domains needs only the arrays too, and the
documents table is decompressed only where a report quotes document ids. Queries are sorted before
`searchsorted`, which makes the binary searches walk the table in order (about 60 ns per query instead of
500 ns on 2.5 million hashes).
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from paloma import __version__
from paloma.decon import rules
from paloma.decon.evaldata import (
    SPLITS,
    EvalDocument,
    discover_sources,
    eval_files,
    fingerprint,
    is_code,
    iter_documents,
    iter_extra_documents,
    resolve_eval_data,
)
from paloma.decon.hashing import HASH_NAME, digests_to_halves, encode, paragraph_digest
from paloma.errors import PalomaError
from paloma.io import atomic_write
from paloma.registry import load_registry

MAGIC = b"PALOMADX"
FORMAT_VERSION = 1
_ALIGN = 64
_SECTIONS = (("hi", "<u8"), ("lo", "<u8"), ("offsets", "<u8"), ("origins", "<u4"), ("doc_domain", "<u4"))


@dataclass(frozen=True)
class Origin:
    """An evaluation document that contains an indexed paragraph."""

    source: str
    domain: str
    split: str
    doc_id: str

    def to_dict(self) -> dict:
        return {"source": self.source, "domain": self.domain, "split": self.split, "id": self.doc_id}


@dataclass(frozen=True)
class Match:
    """A paragraph of a queried text that is in the index, and where the index saw it."""

    paragraph: str
    position: int
    origins: tuple[Origin, ...]

    def to_dict(self) -> dict:
        return {"paragraph": self.paragraph, "origins": [o.to_dict() for o in self.origins]}


class ContaminationIndex:
    """An exact set of evaluation-paragraph hashes; see the module docstring for the file format."""

    def __init__(
        self,
        header: dict,
        arrays: dict[str, np.ndarray],
        docs_blob: bytes | memoryview,
        path: Path | None = None,
    ) -> None:
        self.header = header
        self.hi, self.lo = arrays["hi"], arrays["lo"]
        self.offsets, self.origin_docs = arrays["offsets"], arrays["origins"]
        self.doc_domain = arrays["doc_domain"]
        self._docs_blob = docs_blob
        self.path = path

    # ---- identity and rules -------------------------------------------------------------------------
    @property
    def checksum(self) -> str:
        return self.header["checksum"]

    @property
    def match(self) -> str:
        return self.header["rules"]["match"]

    @property
    def ngram(self) -> int | None:
        """n of an n-gram index (match mode `ngram`), else None."""
        return self.header["rules"].get("ngram")

    @property
    def min_key_bytes(self) -> int:
        """UTF-8 length of the shortest indexed key: shorter training paragraphs cannot match and are skipped."""
        return self.header["min_key_bytes"]

    def __len__(self) -> int:
        return len(self.hi)

    def summary(self) -> dict:
        """What a filter report records about the index it used."""
        keys = ("checksum", "format_version", "hash", "rules", "data", "counts", "created_by")
        return {"path": str(self.path) if self.path else None, **{k: self.header.get(k) for k in keys}}

    # ---- lookup --------------------------------------------------------------------------------------
    @cached_property
    def _prefix_bits(self) -> tuple[np.ndarray, np.uint64]:
        """A bit per value of the top `b` bits of `hi` (2^b ≥ 16 n, so at most 1 in 16 bits is set).

        Almost every training paragraph is absent; its bit is almost always clear, and one gather settles it
        without the binary search. Built from the sorted `hi` in one pass when first needed (5 MB, 20 ms for
        2.5 million hashes); a set bit only sends the query on to the exact search, so nothing is missed.
        """
        bits = max(16, int(np.ceil(np.log2(max(16 * len(self.hi), 2)))))
        shift = np.uint64(64 - bits)
        keys = np.asarray(self.hi) >> shift  # sorted, because hi is
        byte, bit = keys >> np.uint64(3), (np.uint8(1) << (keys & np.uint64(7)).astype(np.uint8))
        table = np.zeros(1 << (bits - 3), dtype=np.uint8)
        if len(keys):
            starts = np.flatnonzero(np.r_[True, byte[1:] != byte[:-1]])
            table[byte[starts]] = np.bitwise_or.reduceat(bit, starts)
        return table, shift

    def lookup(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """Index position of each (hi, lo) query, or -1 where the hash is not in the index."""
        result = np.full(len(hi), -1, dtype=np.int64)
        if len(self.hi) == 0 or len(hi) == 0:
            return result
        table, shift = self._prefix_bits
        keys = hi >> shift
        maybe = np.flatnonzero((table[keys >> np.uint64(3)] >> (keys & np.uint64(7)).astype(np.uint8)) & 1)
        if len(maybe):
            result[maybe] = self._search(hi[maybe], lo[maybe])
        return result

    def _search(self, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """The exact search: sorted queries, `searchsorted` on the high halves, then the low halves."""
        result = np.full(len(hi), -1, dtype=np.int64)
        n = len(self.hi)
        order = np.argsort(hi, kind="stable")
        q_hi, q_lo = hi[order], lo[order]
        pos = np.searchsorted(self.hi, q_hi, side="left")
        clipped = np.minimum(pos, n - 1)
        same_hi = (pos < n) & (self.hi[clipped] == q_hi)
        exact = same_hi & (self.lo[clipped] == q_lo)
        found = np.where(exact, pos, -1)
        # Two indexed hashes sharing a high half (odds ~n²/2^65) sit next to each other: scan them.
        for i in np.nonzero(same_hi & ~exact)[0]:
            j = int(pos[i]) + 1
            while j < n and self.hi[j] == q_hi[i]:
                if self.lo[j] == q_lo[i]:
                    found[i] = j
                    break
                j += 1
        result[order] = found
        return result

    def candidate_paragraphs(self, text: str) -> list[str]:
        """The keys of a training text (non-blank paragraphs, or n-grams) long enough to be in the index."""
        shortest = self.min_key_bytes
        if self.match == "ngram":
            return [
                k.decode("utf-8", "surrogatepass") for k in rules.ngram_keys(text, self.ngram) if len(k) >= shortest
            ]
        keys = (rules.match_key(p, self.match) for p in text.split("\n"))
        return [k for k in keys if len(encode(k)) >= shortest and not rules.is_whitespace_segment(k)]

    def positions(self, paragraphs: list[str]) -> np.ndarray:
        """Index positions (or -1) of already-keyed paragraphs."""
        hi, lo = digests_to_halves([paragraph_digest(encode(p)) for p in paragraphs])
        return self.lookup(hi, lo)

    def contaminated_paragraphs(self, text: str) -> list[str]:
        """Paragraphs of `text` (as keyed under the index's match mode) that are in the index."""
        paragraphs = self.candidate_paragraphs(text)
        return [p for p, pos in zip(paragraphs, self.positions(paragraphs), strict=True) if pos >= 0]

    def is_contaminated(self, text: str) -> bool:
        """The reference decision for one training document: True when any paragraph is in the index."""
        paragraphs = self.candidate_paragraphs(text)
        return bool(paragraphs) and bool((self.positions(paragraphs) >= 0).any())

    def __contains__(self, paragraph: str) -> bool:
        """Whether one paragraph (a single line, compared under the index's match mode) is in the index."""
        return bool(self.positions([rules.match_key(paragraph, self.match)])[0] >= 0)

    def matches(self, text: str) -> list[tuple[str, int]]:
        """(paragraph, index position) of every paragraph of `text` in the index, without the origins."""
        paragraphs = self.candidate_paragraphs(text)
        return [(p, int(pos)) for p, pos in zip(paragraphs, self.positions(paragraphs), strict=True) if pos >= 0]

    def find(self, text: str) -> list[Match]:
        """Every paragraph of `text` in the index, with the evaluation documents it came from."""
        return [Match(paragraph=p, position=pos, origins=self.origins(pos)) for p, pos in self.matches(text)]

    # ---- origins -------------------------------------------------------------------------------------
    @cached_property
    def documents(self) -> list[list]:
        """The documents table, decompressed on first use (lookups never need it)."""
        return json.loads(zlib.decompress(bytes(self._docs_blob)))

    def origins(self, position: int) -> tuple[Origin, ...]:
        start, end = int(self.offsets[position]), int(self.offsets[position + 1])
        return tuple(Origin(*self.documents[int(d)]) for d in self.origin_docs[start:end])

    def domains_of(self, position: int) -> set[tuple[str, str]]:
        """The (source, domain) pairs whose documents contain the hash at `position` (arrays only)."""
        start, end = int(self.offsets[position]), int(self.offsets[position + 1])
        names = self.header["domains"]
        return {tuple(names[int(i)]) for i in self.doc_domain[self.origin_docs[start:end]]}

    # ---- files ---------------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the index atomically; the header written is the one whose checksum this index carries."""
        path = Path(path)
        header_bytes = json.dumps(self.header, sort_keys=True, ensure_ascii=True).encode("ascii")
        prefix = MAGIC + len(header_bytes).to_bytes(8, "little") + header_bytes
        with atomic_write(path, "wb") as handle:
            handle.write(prefix + b"\0" * (_pad(len(prefix)) - len(prefix)))
            for chunk in _payload_chunks(self.header["sections"], self._section_bytes()):
                handle.write(chunk)
        self.path = path
        return path

    def _section_bytes(self) -> dict[str, bytes | memoryview]:
        arrays = {
            "hi": self.hi,
            "lo": self.lo,
            "offsets": self.offsets,
            "origins": self.origin_docs,
            "doc_domain": self.doc_domain,
        }
        out: dict[str, bytes | memoryview] = {
            name: memoryview(np.ascontiguousarray(arrays[name], dtype=dtype)).cast("B") for name, dtype in _SECTIONS
        }
        out["docs"] = self._docs_blob
        return out

    @classmethod
    def load(cls, path: str | Path, verify: bool = True) -> ContaminationIndex:
        """Memory-map an index file; with `verify`, recompute its checksum (about 1 s per GB)."""
        path = Path(path)
        header, payload_start = read_header(path)
        if verify:
            verify_file(path)
        sections = header["sections"]
        raw = np.memmap(path, dtype=np.uint8, mode="r")
        arrays = {}
        for name, dtype in _SECTIONS:
            offset, length = sections[name]["offset"], sections[name]["length"]
            start = payload_start + offset
            arrays[name] = raw[start : start + length].view(np.dtype(dtype))
        docs = sections["docs"]
        blob = memoryview(raw[payload_start + docs["offset"] : payload_start + docs["offset"] + docs["length"]])
        return cls(header, arrays, blob, path=path)


def read_header(path: Path) -> tuple[dict, int]:
    """Parse and check an index header; returns it and where the payload starts. Errors name the problem."""
    if path.is_dir():
        raise PalomaError(f"{path}: is a folder, not an index file")
    if not path.is_file():
        raise PalomaError(f"{path}: no such index file")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        start = handle.read(16)
        if len(start) < 16 or start[:8] != MAGIC:
            raise PalomaError(f"{path}: not a paloma decontamination index (build one with `paloma decon index`)")
        length = int.from_bytes(start[8:], "little")
        if 16 + length > size:
            raise PalomaError(f"{path}: index is truncated (header runs past the end of the file)")
        try:
            header = json.loads(handle.read(length).decode("ascii"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise PalomaError(f"{path}: index header is corrupt (not valid JSON)") from None
    version = header.get("format_version") if isinstance(header, dict) else None
    if version != FORMAT_VERSION:
        raise PalomaError(
            f"{path}: index format version {version!r}, but this paloma reads version {FORMAT_VERSION}; "
            "rebuild it with `paloma decon index`"
        )
    problem = _header_problem(header)
    if problem:
        raise PalomaError(f"{path}: index header is incomplete ({problem}); rebuild it with `paloma decon index`")
    payload_start = _pad(16 + length)
    expected = payload_start + header["payload_bytes"]
    if size != expected:
        what = "truncated" if size < expected else "longer than its header says"
        raise PalomaError(f"{path}: index is {what} ({size} bytes, expected {expected})")
    return header, payload_start


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _header_problem(header: dict) -> str | None:
    """What is missing or of the wrong type in a header, as `field: what`, or None for a sound header."""
    sections = header.get("sections")
    if not isinstance(sections, dict):
        return "no sections"
    for name in [*(name for name, _ in _SECTIONS), "docs"]:
        place = sections.get(name)
        if not isinstance(place, dict) or not (_is_count(place.get("offset")) and _is_count(place.get("length"))):
            return f"no {name}" if place is None else f"sections.{name}: offset and length must be counts"
    for key, check, what in (
        ("payload_bytes", _is_count, "a count"),
        ("checksum", lambda v: isinstance(v, str) and v.startswith("blake2b-256:"), "'blake2b-256:<hex>'"),
        ("min_key_bytes", _is_count, "a count"),
        ("rules", _sound_rules, "an object with a match mode (and a positive `ngram` for match ngram)"),
        ("domains", lambda v: isinstance(v, list) and all(_is_pair(d) for d in v), "a list of [source, domain]"),
        ("counts", lambda v: isinstance(v, dict), "an object"),
        ("data", lambda v: isinstance(v, dict), "an object"),
    ):
        if key not in header:
            return f"no {key}"
        if not check(header[key]):
            return f"{key} must be {what}"
    return None


def _sound_rules(value: object) -> bool:
    if not isinstance(value, dict) or value.get("match") not in rules.MATCH_MODES:
        return False
    return value["match"] != "ngram" or (_is_count(value.get("ngram")) and value["ngram"] > 0)


def _is_pair(value: object) -> bool:
    return isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value)


def verify_file(path: str | Path) -> dict:
    """Check an index file completely (header, size, checksum); returns its header. Errors are one line."""
    path = Path(path)
    header, payload_start = read_header(path)
    actual = _checksum(header, _file_chunks(path, payload_start))
    if actual != header["checksum"]:
        raise PalomaError(f"{path}: index is corrupt (checksum {actual} does not match its header)")
    return header


def _pad(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def _layout(sizes: dict[str, int]) -> tuple[dict, int]:
    sections, offset = {}, 0
    for name in [n for n, _ in _SECTIONS] + ["docs"]:
        sections[name] = {"offset": offset, "length": sizes[name]}
        offset = _pad(offset + sizes[name])
    return sections, offset


def _payload_chunks(sections: dict, data: dict[str, bytes | memoryview]) -> Iterable[bytes | memoryview]:
    position = 0
    for name, place in sorted(sections.items(), key=lambda item: item[1]["offset"]):
        yield b"\0" * (place["offset"] - position)
        yield data[name]
        position = place["offset"] + place["length"]
    total = _pad(position)
    yield b"\0" * (total - position)


def _file_chunks(path: Path, start: int) -> Iterable[bytes]:
    with open(path, "rb") as handle:
        handle.seek(start)
        while chunk := handle.read(1 << 22):
            yield chunk


def _checksum(header: dict, payload: Iterable[bytes | memoryview]) -> str:
    digest = hashlib.blake2b(digest_size=32)
    # The paloma version that wrote the file is informative only: identical content keeps its identity.
    canonical = {k: v for k, v in header.items() if k not in ("checksum", "created_by")}
    digest.update(json.dumps(canonical, sort_keys=True, ensure_ascii=True, separators=(",", ":")).encode("ascii"))
    for chunk in payload:
        digest.update(chunk)
    return "blake2b-256:" + digest.hexdigest()


# ---- building -------------------------------------------------------------------------------------------
@dataclass
class _Collector:
    """Accumulates (digest, document) pairs of eligible paragraphs and the counts for the header."""

    rules: rules.RuleSet
    match: str
    ngram: int | None = None

    def __post_init__(self) -> None:
        self.digests: list[bytes] = []
        self.doc_of: list[int] = []
        self.chunks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # n-grams: (hi, lo, doc) per document
        self.docs: list[list[str]] = []
        self.min_key_bytes: int | None = None
        self.counts: Counter = Counter()
        self.per_source: dict[str, Counter] = {}

    def add(self, doc: EvalDocument) -> None:
        doc_index = len(self.docs)
        self.docs.append([doc.source, doc.domain, doc.split, doc.doc_id])
        stats = self.per_source.setdefault(doc.source, Counter())
        stats["documents"] += 1
        self.counts["documents"] += 1
        if self.match == "ngram":
            self._add_ngrams(doc.text, doc_index, stats)
            return
        for paragraph in doc.text.split("\n"):
            if not paragraph or rules.is_whitespace_segment(paragraph):
                continue
            self.counts["paragraphs"] += 1
            if not self.rules.count_reaches(paragraph):
                self.counts["too_few_words"] += 1
                continue
            if self.rules.only_punctuation_whitespace_emoji(paragraph):
                self.counts["only_punctuation_whitespace_emoji"] += 1
                continue
            key = encode(rules.match_key(paragraph, self.match))
            self.digests.append(paragraph_digest(key))
            self.doc_of.append(doc_index)
            self.min_key_bytes = len(key) if self.min_key_bytes is None else min(self.min_key_bytes, len(key))
            self.counts["indexed_occurrences"] += 1
            stats["indexed_occurrences"] += 1

    def _add_ngrams(self, text: str, doc_index: int, stats: Counter) -> None:
        """Every n-gram of the whole document (n-grams span paragraphs), kept as arrays to save memory."""
        keys = rules.ngram_keys(text, self.ngram)
        if not keys:
            self.counts["too_few_words"] += 1
            return
        hi, lo = digests_to_halves([paragraph_digest(k) for k in keys])
        self.chunks.append((hi, lo, np.full(len(keys), doc_index, dtype=np.uint32)))
        shortest = min(map(len, keys))
        self.min_key_bytes = shortest if self.min_key_bytes is None else min(self.min_key_bytes, shortest)
        self.counts["indexed_occurrences"] += len(keys)
        stats["indexed_occurrences"] += len(keys)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(hi, lo, document) of every indexed occurrence."""
        hi, lo = digests_to_halves(self.digests)
        parts = [(hi, lo, np.asarray(self.doc_of, dtype=np.uint32)), *self.chunks]
        return tuple(np.concatenate([part[i] for part in parts]) for i in range(3))  # type: ignore[return-value]


def build_index(
    data: str | Path,
    *,
    revision: str | None = None,
    min_words: int = rules.DEFAULT_MIN_WORDS,
    include_code: bool = False,
    match: str = "exact",
    sources: list[str] | None = None,
    token: str | None = None,
    progress: bool = True,
    rule_set: str = rules.DEFAULT_RULES,
    ngram: int | None = None,
    extra: Iterable[str | Path] = (),
) -> ContaminationIndex:
    """Build an index from Paloma-layout evaluation data (a local folder or a hub dataset id), both splits.

    `rule_set` names the eligibility rules (`dolma`, the default, reproduces AI2's pipeline; `strict`, see
    paloma.decon.rules). Code sources are left out unless `include_code`, and under `strict` code domains of
    prose sources too. With `ngram=n` (match mode `ngram`) the index holds every n-gram of normalised words
    instead of paragraphs (GPT-3's and The Pile's rule; paragraph eligibility does not apply). `extra` adds
    evaluation sets beyond Paloma: JSON lines files with a `text` field (and optional `id` and `task`), indexed
    as source `extra`. The result lives in memory until `.save(path)`.
    """
    chosen_rules = rules.rule_set(rule_set, min_words)
    if ngram is not None or match == "ngram":
        if match not in ("exact", "ngram"):
            raise PalomaError(f"--ngram replaces the paragraph match mode; it does not combine with --match {match}")
        match, ngram = "ngram", rules.DEFAULT_NGRAM if ngram is None else ngram
        if ngram < 1:
            raise PalomaError(f"--ngram must be at least 1, got {ngram}")
    if match not in rules.MATCH_MODES:
        raise PalomaError(f"unknown match mode {match!r} (choose from {', '.join(rules.MATCH_MODES)})")
    extra = [Path(p) for p in extra]
    for path in extra:
        if not path.is_file():
            raise PalomaError(f"{path}: no such evaluation file (--extra takes JSON lines files)")
    extra_docs = [doc for path in extra for doc in iter_extra_documents(path)]  # read first: a bad line stops early
    evaldata = resolve_eval_data(data, revision=revision, token=token)
    root, registry = evaldata.root, load_registry()
    available = discover_sources(root)
    if sources:
        unknown = sorted(set(sources) - set(available))
        if unknown:
            raise PalomaError(f"{root}: no data for source(s) {', '.join(unknown)} (found: {', '.join(available)})")
    chosen = [s for s in available if not sources or s in sources]
    excluded_sources = [s for s in chosen if not include_code and is_code(registry, s)]
    skip_code_domains = not include_code and chosen_rules.excludes_code_domains
    files = [
        (s, split, f)
        for s in chosen
        if s not in excluded_sources
        for split in SPLITS
        for f in eval_files(root, s, split)
    ]
    collector = _Collector(rules=chosen_rules, match=match, ngram=ngram)
    excluded_domains: Counter = Counter()
    for source, split, path in _progress(files, progress, "indexing evaluation files"):
        for doc in iter_documents(path, source, split, registry.get(source)):
            if skip_code_domains and is_code(registry, source, doc.domain):
                excluded_domains[f"{source}/{doc.domain}"] += 1
                continue
            collector.add(doc)
    for doc in extra_docs:
        collector.add(doc)
    origin = {**evaldata.origin, "fingerprint": fingerprint([f for _, _, f in files], root), "files": len(files)}
    if extra:
        origin["extra"] = [{"file": p.name, "fingerprint": fingerprint([p], p.parent)} for p in extra]
    return _assemble(collector, origin, chosen, excluded_sources, excluded_domains, include_code)


def _progress(items: list, enabled: bool, desc: str) -> Iterable:
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, unit="file")


def _assemble(
    collector: _Collector,
    origin: dict,
    sources: list[str],
    excluded_sources: list[str],
    excluded_domains: Counter,
    include_code: bool,
) -> ContaminationIndex:
    hi, lo, doc = collector.arrays()
    order = np.lexsort((doc, lo, hi))
    hi, lo, doc = hi[order], lo[order], doc[order]
    # keep one (hash, document) pair per document, then group the documents of each distinct hash
    if len(hi):
        keep = np.ones(len(hi), dtype=bool)
        keep[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1]) | (doc[1:] != doc[:-1])
        hi, lo, doc = hi[keep], lo[keep], doc[keep]
    new_hash = np.ones(len(hi), dtype=bool)
    new_hash[1:] = (hi[1:] != hi[:-1]) | (lo[1:] != lo[:-1])
    starts = np.nonzero(new_hash)[0]
    domains = sorted({(source, domain) for source, domain, _, _ in collector.docs})
    domain_number = {pair: i for i, pair in enumerate(domains)}
    arrays = {
        "hi": hi[starts],
        "lo": lo[starts],
        "offsets": np.append(starts, len(doc)).astype(np.uint64),
        "origins": doc,
        "doc_domain": np.asarray([domain_number[(d[0], d[1])] for d in collector.docs], dtype=np.uint32),
    }
    docs_blob = zlib.compress(json.dumps(collector.docs, ensure_ascii=False).encode("utf-8"), 6)
    sizes = {name: arrays[name].astype(dtype).nbytes for name, dtype in _SECTIONS}
    sizes["docs"] = len(docs_blob)
    sections, payload_bytes = _layout(sizes)
    counts = dict(collector.counts)
    counts["unique_paragraphs"] = len(starts)
    header = {
        "format_version": FORMAT_VERSION,
        "created_by": f"paloma {__version__}",
        "hash": HASH_NAME,
        "rules": {
            **collector.rules.describe(),
            "match": collector.match,
            **({"ngram": collector.ngram, "ngram_normalisation": rules.NGRAM_NORMALISATION} if collector.ngram else {}),
            "code_excluded": not include_code,
            "code_domains_excluded": not include_code and collector.rules.excludes_code_domains,
        },
        "data": {
            **origin,
            "sources": sources,
            "splits": list(SPLITS),
            "excluded_code_sources": excluded_sources,
            "excluded_code_domain_documents": dict(sorted(excluded_domains.items())),
        },
        "counts": counts,
        "per_source": {s: dict(c) for s, c in sorted(collector.per_source.items())},
        "domains": [list(pair) for pair in domains],
        "min_key_bytes": collector.min_key_bytes or 0,
        "sections": sections,
        "payload_bytes": payload_bytes,
    }
    index = ContaminationIndex(header, arrays, docs_blob)
    header["checksum"] = _checksum(header, _payload_chunks(sections, index._section_bytes()))
    return index


def load_index(path: str | Path, verify: bool = True) -> ContaminationIndex:
    return ContaminationIndex.load(path, verify=verify)
