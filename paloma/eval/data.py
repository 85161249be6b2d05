"""Documents in: the Paloma release layout (local or from the hub) and, when asked for, generic JSONL/Parquet.

Release layout: `<root>/<source>/<split>/*.jsonl.gz`, one JSON document per line with `text`, `id`, and
`subdomain` where the source has domains. A document without `subdomain` belongs to the domain named after
its source. Only `text` is scored: `metadata.truncated_portion` (the part cut to the token budget) is never
read into a Document.

A Paloma-layout folder is read only from `<source>/<split>/`: a folder without that layout (a source folder
passed by mistake, a release that lacks the split asked for) is an error, unless the generic reader is asked
for explicitly (`layout="generic"`), which reads every JSONL/Parquet file below the folder and has no split.

Documents stream: nothing holds all texts. `index_documents` reads them once into a `DocumentIndex` of
compact arrays (domain number, id bytes, UTF-8 bytes, characters, words, a content digest: about 70 bytes a
document), selection is a mask over it, and texts are read again, streaming, only to tokenize them.
"""

from __future__ import annotations

import fnmatch
import hashlib
import random
import re
from array import array
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from paloma.errors import PalomaError
from paloma.io import check_not_lfs_pointer, file_hash, iter_jsonl

if TYPE_CHECKING:
    from paloma.registry import Registry

JSONL_PATTERNS = ("*.jsonl.gz", "*.jsonl", "*.jsonl.zst", "*.json.gz")
DATA_PATTERNS = (*JSONL_PATTERNS, "*.parquet")
SPLITS = ("val", "test")
LAYOUTS = ("auto", "paloma", "generic")
DEFAULT_SPLIT = "test"


@dataclass(frozen=True)
class Document:
    source: str
    domain: str
    id: str
    text: str
    where: str = field(default="", compare=False)  # file:line, for messages


@dataclass(frozen=True)
class DataFile:
    """One input file and the source its documents belong to (None: taken from a field)."""

    path: Path
    source: str | None


@dataclass
class DataSpec:
    """Where documents come from and which ones to evaluate.

    `split` is None for "the default": test in the Paloma layout; generic data has no split.
    """

    path: str
    split: str | None = None
    revision: str | None = None
    sources: Sequence[str] = ()
    domains: Sequence[str] = ()
    limit: int | None = None  # at most this many documents per domain (--max-documents-per-domain)
    seed: int = 1234
    max_tokens_per_domain: int | None = None  # applied to the tokens, after `limit` (`cap_tokens`)
    text_field: str = "text"
    domain_field: str = "subdomain"
    source_field: str | None = None
    default_source: str | None = None
    token: str | None = None
    layout: str = "auto"


@dataclass
class DataSource:
    """Resolved data: the local root, its layout, the split read (None for generic data) and the files.

    `hub_commit` is provenance only (the snapshot's commit for hub data, None for local data): the data's
    identity is `data_revision(source)`, a digest of the files' contents.
    """

    root: Path
    layout: str
    split: str | None
    files: list[DataFile]
    hub_commit: str | None
    hub_id: str | None = None


# ------------------------------------------------------------------------------------------------ finding


def _is_hub_id(path: str) -> bool:
    return path.count("/") == 1 and not Path(path).exists() and not path.startswith((".", "/"))


def resolve_data(spec: DataSpec) -> DataSource:
    """The local files of the selected split, downloading the selected sources from the hub if asked."""
    if spec.layout not in LAYOUTS:
        raise PalomaError(f"--layout {spec.layout!r}: choose {', '.join(LAYOUTS)}")
    if spec.split is not None and spec.split not in SPLITS:
        raise PalomaError(f"--split {spec.split!r}: choose {' or '.join(SPLITS)}")
    if _is_hub_id(spec.path):
        from paloma.hub import download_dataset

        split = spec.split or DEFAULT_SPLIT
        patterns = [f"{s}/{split}/*" for s in spec.sources] if spec.sources else [f"*/{split}/*"]
        root, commit = download_dataset(spec.path, revision=spec.revision, allow_patterns=patterns, token=spec.token)
        hub_id = spec.path
    else:
        root, commit, hub_id = Path(spec.path), None, None
        if not root.exists():
            raise PalomaError(f"data: {root}: no such file or folder")
    layout = _layout(root, spec)
    if layout == "generic":
        if spec.split is not None:
            raise PalomaError(
                f"--split {spec.split}: {root} is read as generic data, which has no splits "
                "(a split is a <source>/<split>/ folder of the Paloma layout)"
            )
        return DataSource(root, layout, None, _generic_files(root), commit, hub_id)
    split = spec.split or DEFAULT_SPLIT
    return DataSource(root, layout, split, _release_files(root, split, spec.sources), commit, hub_id)


def check_whole_suite(source: DataSource, spec: DataSpec, registry: Registry | None) -> None:
    """Refuse the registry's own hub dataset when it lacks public sources and --sources chose no part.

    A hub cache filled by per-file downloaders holds a few sources; scoring them as "the suite" would report
    a suite aggregate over a part. `--sources` chooses a part on purpose (and the results then say so).
    """
    if spec.sources or registry is None or source.layout != "paloma" or source.hub_id != registry.hub_dataset:
        return
    present = {s for s, splits in split_folders(source.root).items() if source.split in splits}
    missing = [s.name for s in registry.public() if s.name not in present]
    if missing:
        shown = ", ".join(missing[:8]) + (f", … ({len(missing)} in all)" if len(missing) > 8 else "")
        raise PalomaError(
            f"data: {source.hub_id} at {source.root} lacks {len(missing)} of the {len(registry.public())} public "
            f"sources of {registry.release!r} for split {source.split} ({shown}); download them (without "
            "HF_HUB_OFFLINE), or pass --sources to evaluate a part on purpose"
        )


def split_folders(root: Path) -> dict[str, set[str]]:
    """{source: the splits it has} for the `<source>/<split>/` folders below `root`."""
    found: dict[str, set[str]] = {}
    for split in SPLITS:
        for folder in root.glob(f"*/{split}"):
            if folder.is_dir():
                found.setdefault(folder.parent.name, set()).add(split)
    return found


def _layout(root: Path, spec: DataSpec) -> str:
    if spec.layout == "generic" or (root.is_file() and spec.layout == "auto"):
        return "generic"
    if root.is_file():
        raise PalomaError(f"data: {root} is a file; --layout paloma needs a release folder (<source>/<split>/)")
    if not split_folders(root):
        own = [s for s in SPLITS if (root / s).is_dir()]
        if own:
            raise PalomaError(
                f"data: {root} has {'/ and '.join(own)}/ directly inside: it looks like one source's folder; pass "
                "the folder above it (the release root, <source>/<split>/), or --layout generic to read it as is"
            )
        raise PalomaError(
            f"data: {root} has no <source>/<split>/ folders of the Paloma layout; pass --layout generic to read "
            "every JSONL/Parquet file below it"
        )
    return "paloma"


def _release_files(root: Path, split: str, source_globs: Sequence[str]) -> list[DataFile]:
    folders = split_folders(root)
    with_split = sorted(s for s, splits in folders.items() if split in splits)
    if not with_split:
        others = sorted({s for splits in folders.values() for s in splits})
        raise PalomaError(f"data: {root} has no <source>/{split}/ folder (it has {', '.join(others)} only)")
    _check_globs("--sources", source_globs, with_split, f"sources of {root} with a {split}/ folder")
    files = []
    for source in with_split:
        if not _matches(source_globs, source):
            continue
        for path in _list_data_files(root / source / split):
            files.append(DataFile(path, source))
    if not files:
        raise PalomaError(f"data: {root}: the selected {split}/ folders hold no JSONL or Parquet files")
    return files


def _generic_files(root: Path) -> list[DataFile]:
    if root.is_file():
        return [DataFile(root, None)]
    files = [DataFile(p, None) for p in _list_data_files(root, recursive=True)]
    if not files:
        raise PalomaError(f"data: {root}: no JSONL or Parquet files below it")
    return files


def _list_data_files(folder: Path, recursive: bool = False) -> list[Path]:
    found = {p for pattern in DATA_PATTERNS for p in (folder.rglob(pattern) if recursive else folder.glob(pattern))}
    return sorted(p for p in found if p.is_file())


def _matches(patterns: Sequence[str], *names: str) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)


def _check_globs(option: str, patterns: Sequence[str], names: Iterable[str], what: str) -> None:
    """Every glob must match something: a typo in one of several is an error, not a silent omission."""
    names = sorted(set(names))
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in names):
            shown = ", ".join(names[:8]) + (", …" if len(names) > 8 else "")
            raise PalomaError(f"{option} {pattern!r} matches none of the {len(names)} {what} ({shown})")


# ------------------------------------------------------------------------------------------------ reading


def read_file(data: DataFile, spec: DataSpec) -> Iterator[Document]:
    """Documents of one file, validated: `text` must be a string, errors name file and line."""
    rows = _iter_parquet(data.path) if data.path.suffix == ".parquet" else iter_jsonl(data.path)
    for line_no, row in rows:
        where = f"{data.path}:{line_no}"
        text = row.get(spec.text_field)
        if spec.text_field not in row:
            raise PalomaError(f"{where}: missing field {spec.text_field!r}")
        if not isinstance(text, str):
            raise PalomaError(f"{where}: field {spec.text_field!r} is {type(text).__name__}, not a string")
        source = data.source or _source_of(row, spec, where)
        domain = row.get(spec.domain_field) or source
        if not isinstance(domain, str):
            raise PalomaError(f"{where}: field {spec.domain_field!r} is not a string")
        doc_id = row.get("id")
        doc_id = str(doc_id) if doc_id is not None else f"{data.path.name}:{line_no}"
        yield Document(source, domain, doc_id, text, where)


def _source_of(row: dict, spec: DataSpec, where: str) -> str:
    if spec.source_field:
        value = row.get(spec.source_field)
        if not isinstance(value, str) or not value:
            raise PalomaError(f"{where}: missing or non-string source field {spec.source_field!r}")
        return value
    return spec.default_source or "custom"


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    """Rows of a Parquet file, one record batch at a time (never the whole table as Python objects)."""
    import pyarrow.parquet as pq

    check_not_lfs_pointer(path)
    try:
        handle = pq.ParquetFile(path)
    except Exception as err:  # pyarrow raises several error types for unreadable files
        raise PalomaError(f"{path}: unreadable Parquet ({err})") from None
    row = 0
    for batch in handle.iter_batches(batch_size=1024):
        for values in batch.to_pylist():
            row += 1
            yield row, values


def iter_documents(source: DataSource, spec: DataSpec) -> Iterator[Document]:
    """Every document of the resolved data, file after file, in a fixed order (a stream: nothing is kept)."""
    for data_file in source.files:
        yield from read_file(data_file, spec)


def iter_split_documents(spec: DataSpec) -> Iterator[Document]:
    """The documents of one split of a Paloma-layout release (or generic data), as a stream.

    Public for readers other than the evaluator (e.g. a release manifest): the same layout rules, the same
    validation, the same order, `--sources`/`--domains` globs applied (no `--limit`).
    """
    source = resolve_data(spec)
    for doc in iter_documents(source, spec):
        if _matches(spec.domains, doc.domain, f"{doc.source}/{doc.domain}"):
            yield doc


# ------------------------------------------------------------------------------------------------ indexing


def utf8_bytes(doc: Document) -> bytes:
    """The document's text as UTF-8; a lone surrogate (which JSON can carry) is an error naming file and line."""
    try:
        return doc.text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise PalomaError(
            f"{doc.where or doc.id}: the text holds a lone surrogate (U+{ord(doc.text[err.start]):04X}) at character "
            f"{err.start}, which is not valid Unicode; fix the data (it cannot be tokenized or counted in bytes)"
        ) from None


def _digest(doc: Document, encoded: bytes) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for part in (doc.source, doc.domain, doc.id):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    digest.update(encoded)
    return digest.digest()


@dataclass
class DocumentIndex:
    """Per-document metadata of many documents as compact arrays (no Python object per document).

    `names[domain[i]]` is document i's (source, domain); its id is `id_blob[id_offsets[i]:id_offsets[i+1]]`.
    `repeat[i]` is k for the k-th document with the same (source, domain, id) among these documents, which
    makes record keys unique: `source/domain/id`, with `#k` appended from the second on.
    """

    names: list[tuple[str, str]]
    domain: np.ndarray  # int32
    id_blob: bytes
    id_offsets: np.ndarray  # int64, len + 1
    bytes: np.ndarray  # int64: UTF-8 bytes of the text
    chars: np.ndarray  # int64
    words: np.ndarray  # int64: words under the protocol's rule (`count_words`)
    digest: np.ndarray  # uint8 [n, 16]: blake2b of source, domain, id and text
    key_hash: np.ndarray  # uint64: blake2b of source, domain and id (finds repeated ids)
    repeat: np.ndarray  # int32

    def __len__(self) -> int:
        return len(self.domain)

    def doc_id(self, i: int) -> str:
        return self.id_blob[self.id_offsets[i] : self.id_offsets[i + 1]].decode("utf-8", "surrogatepass")

    def source_domain(self, i: int) -> tuple[str, str]:
        return self.names[self.domain[i]]

    def key(self, i: int) -> str:
        source, domain = self.names[self.domain[i]]
        base = f"{source}/{domain}/{self.doc_id(i)}"
        return base if self.repeat[i] <= 1 else f"{base}#{self.repeat[i]}"

    def subset(self, keep: np.ndarray, renumber: bool = True) -> DocumentIndex:
        """The documents where `keep` is true, in order; with `renumber`, repeats are counted among them
        (a selection), else they keep their numbers (one process's share of a selection)."""
        rows = np.flatnonzero(keep)
        lengths = np.diff(self.id_offsets)
        blob = np.frombuffer(self.id_blob, dtype=np.uint8)[np.repeat(np.asarray(keep, dtype=bool), lengths)].tobytes()
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths[rows], out=offsets[1:])
        repeat = _repeats(self.key_hash[rows]) if renumber else self.repeat[rows]
        return DocumentIndex(
            self.names, self.domain[rows], blob, offsets, self.bytes[rows], self.chars[rows], self.words[rows],
            self.digest[rows], self.key_hash[rows], repeat,
        )  # fmt: skip

    def selection(self) -> str:
        """The identity of exactly these documents, in this order: a hash of their sources, domains, ids and
        texts. It keys the token cache and enters the run fingerprint, so another --limit, --seed, --domains
        or --sources (or changed data) never reuses tokens or merges records of another selection."""
        return "sha256:" + hashlib.sha256(np.ascontiguousarray(self.digest).tobytes()).hexdigest()[:16]


def _repeats(key_hash: np.ndarray) -> np.ndarray:
    """k for the k-th occurrence of each (source, domain, id), found with arrays (repeats are rare)."""
    n = len(key_hash)
    repeat = np.ones(n, dtype=np.int32)
    order = np.argsort(key_hash, kind="stable")
    ordered = key_hash[order]
    same_as_previous = np.concatenate(([False], ordered[1:] == ordered[:-1])) if n else np.zeros(0, dtype=bool)
    if not same_as_previous.any():
        return repeat
    run_start = np.maximum.accumulate(np.where(same_as_previous, 0, np.arange(n)))
    repeat[order] = (np.arange(n) - run_start + 1).astype(np.int32)
    return repeat


def _key_hash(doc: Document) -> int:
    key = f"{doc.source}\0{doc.domain}\0{doc.id}".encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def count_words(text: str, rule: str = "split") -> int:
    r"""Words of a text under a protocol's rule (`paloma.protocol.WORD_COUNTS`).

    "split" is `len(text.split())`: the reference's whitespace-split words. "re-split" is what
    lm-evaluation-harness's `paloma_*` tasks count, `len(re.split(r"\s+", text))`: the same words, plus one
    empty word for leading and one for trailing whitespace, and one for an empty text. It is computed from the
    split count (regex `\s` and `str.isspace` are the same 29 characters), without a list of pieces per run.
    """
    words = len(text.split())
    if rule == "split":
        return words
    if rule != "re-split":
        raise ValueError(f"unknown word count rule {rule!r}")
    if not text:
        return 1
    return words + text[0].isspace() + text[-1].isspace()


def index_documents(documents: Iterable[Document], word_count: str = "split") -> DocumentIndex:
    """Read a stream of documents into a DocumentIndex; texts are validated and counted, then dropped.

    Words are counted under the protocol's rule `word_count` (see `count_words`).
    """
    names: dict[tuple[str, str], int] = {}
    domain, offsets, n_bytes, chars, words = array("i"), array("q", [0]), array("q"), array("q"), array("q")
    ids, digests, key_hash = bytearray(), bytearray(), array("Q")
    for doc in documents:
        encoded = utf8_bytes(doc)
        domain.append(names.setdefault((doc.source, doc.domain), len(names)))
        ids += doc.id.encode("utf-8", "surrogatepass")
        offsets.append(len(ids))
        n_bytes.append(len(encoded))
        chars.append(len(doc.text))
        words.append(count_words(doc.text, word_count))
        digests += _digest(doc, encoded)
        key_hash.append(_key_hash(doc))
    count = len(domain)
    index = DocumentIndex(
        names=list(names),
        domain=np.frombuffer(domain, dtype=np.int32) if count else np.zeros(0, dtype=np.int32),
        id_blob=bytes(ids),
        id_offsets=np.frombuffer(offsets, dtype=np.int64),
        bytes=np.frombuffer(n_bytes, dtype=np.int64) if count else np.zeros(0, dtype=np.int64),
        chars=np.frombuffer(chars, dtype=np.int64) if count else np.zeros(0, dtype=np.int64),
        words=np.frombuffer(words, dtype=np.int64) if count else np.zeros(0, dtype=np.int64),
        digest=np.frombuffer(bytes(digests), dtype=np.uint8).reshape(count, 16),
        key_hash=np.frombuffer(key_hash, dtype=np.uint64) if count else np.zeros(0, dtype=np.uint64),
        repeat=np.ones(count, dtype=np.int32),
    )
    index.repeat = _repeats(index.key_hash)
    return index


# ------------------------------------------------------------------------------------------------ selecting


def select(index: DocumentIndex, spec: DataSpec) -> np.ndarray:
    """A mask of the documents --domains and --limit keep (--sources chose the files already).

    The limit never takes the first N documents: each domain's documents are shuffled with a seed derived
    from (seed, source, domain), so the sample is stable whatever else is selected. Every --domains glob must
    match a domain of the selected sources.
    """
    _check_globs(
        "--domains", spec.domains, [n for s, d in index.names for n in (d, f"{s}/{d}")], "domains of the selected data"
    )
    wanted = np.array([_matches(spec.domains, d, f"{s}/{d}") for s, d in index.names] or [False], dtype=bool)
    keep = wanted[index.domain] if len(index) else np.zeros(0, dtype=bool)
    if spec.limit is None:
        return keep
    for number, (source, domain) in enumerate(index.names):
        members = np.flatnonzero(keep & (index.domain == number))
        if len(members) <= spec.limit:
            continue
        order = seeded_order(spec.seed, source, domain, len(members))
        keep[members[sorted(order[spec.limit :])]] = False
    return keep


def seeded_order(seed: int, source: str, domain: str, count: int) -> list[int]:
    """A domain's documents in the order its subsets take them: shuffled with a seed derived from (seed, source,
    domain), so a domain's sample does not depend on what else is selected."""
    digest = hashlib.sha256(f"{seed}/{source}/{domain}".encode()).digest()
    order = list(range(count))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


def cap_tokens(index: DocumentIndex, lengths: np.ndarray, max_tokens: int, seed: int) -> np.ndarray:
    """A mask of whole documents holding at most `max_tokens` tokens per domain (--max-tokens-per-domain).

    Documents are taken in each domain's seeded order while the domain's total stays within the cap; a domain
    whose first document alone exceeds the cap keeps that one document, so no selected domain goes empty.
    """
    keep = np.zeros(len(index), dtype=bool)
    for number, (source, domain) in enumerate(index.names):
        members = np.flatnonzero(index.domain == number)
        if not len(members):
            continue
        ordered = members[seeded_order(seed, source, domain, len(members))]
        within = np.cumsum(lengths[ordered]) <= max_tokens
        within[0] = True
        keep[ordered[: int(np.argmin(within)) if not within.all() else len(ordered)]] = True
    return keep


def iter_selected_texts(source: DataSource, spec: DataSpec, keep: np.ndarray) -> Iterator[tuple[str, str]]:
    """(file:line, text) of the kept documents, read again as a stream, in index order."""
    for i, doc in enumerate(iter_documents(source, spec)):
        if i >= len(keep):
            raise PalomaError(f"{doc.where}: the data changed while it was read (more documents than before)")
        if keep[i]:
            yield doc.where, doc.text


# ------------------------------------------------------------------------------------------------ identity

_SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")


def file_sha256(path: Path) -> str:
    """The sha256 of a data file's bytes, without reading it where the hub already published it.

    huggingface_hub's cache links `snapshots/<commit>/<file>` to `blobs/<etag>`, and an LFS file's etag is the
    sha256 of its content (data files of a dataset are LFS files); anything else is hashed once and cached by
    path, size and mtime.
    """
    if path.is_symlink():
        blob = path.resolve()
        if blob.parent.name == "blobs" and _SHA256_NAME.match(blob.name):
            return blob.name
    return file_hash(path, "sha256")


def data_revision(source: DataSource) -> str:
    """The data's identity: a digest of each data file's path below the root and the sha256 of its bytes.

    Equal for a local clone, a hub snapshot and a bucket copy of the same files; files other than the data
    files read (a README, another split) do not count, and a name or a commit never stands in for content.
    """
    digest = hashlib.sha256()
    for relative, path in sorted((_relative(f.path, source.root), f.path) for f in source.files):
        digest.update(f"{relative}\0{file_sha256(path)}\n".encode("utf-8", "surrogatepass"))
    return "sha256:" + digest.hexdigest()[:16]


def _relative(path: Path, root: Path) -> str:
    return path.name if path == root else path.relative_to(root).as_posix()


def spec_differences(previous: dict, spec: DataSpec) -> dict[str, tuple]:
    """The selection options (--sources, --domains, --limit, --seed) where `spec` differs from an earlier run's
    `data` entry: {option: (before, now)}, so that a refused --resume names what the user changed. (The
    selection digest in the run fingerprint catches every difference, these and changed data alike.)"""
    now = {"sources": list(spec.sources), "domains": list(spec.domains), "limit": spec.limit, "seed": spec.seed}
    return {k: (previous.get(k), v) for k, v in now.items() if k in previous and previous[k] != v}


def describe(source: DataSource, spec: DataSpec, index: DocumentIndex) -> dict:
    """The `data` entry of results.json: what was read, the content revision that identifies the data, and
    the selection digest that identifies the documents scored (the hub commit is kept as provenance)."""
    return {
        "path": spec.path,
        "root": str(source.root),
        "revision": data_revision(source),
        "hub_commit": source.hub_commit,
        "revision_asked": spec.revision,
        "selection": index.selection(),
        "split": source.split,
        "layout": source.layout,
        "files": len(source.files),
        "limit": spec.limit,
        "max_tokens_per_domain": spec.max_tokens_per_domain,
        "seed": spec.seed,
        "sources": list(spec.sources),
        "domains": list(spec.domains),
    }
