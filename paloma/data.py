"""Documents in: the Paloma release layout (local or from the hub) and generic JSONL/Parquet files.

Release layout: `<root>/<source>/<split>/*.jsonl.gz`, one JSON document per line with `text`, `id`, and
`subdomain` where the source has domains. A document without `subdomain` belongs to the domain named after
its source. Only `text` is scored: `metadata.truncated_portion` (the part cut to the token budget) is never
read into a Document.
"""

from __future__ import annotations

import fnmatch
import hashlib
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from paloma.errors import PalomaError
from paloma.io import iter_jsonl

JSONL_PATTERNS = ("*.jsonl.gz", "*.jsonl", "*.jsonl.zst", "*.json.gz")


@dataclass(frozen=True)
class Document:
    source: str
    domain: str
    id: str
    text: str


@dataclass(frozen=True)
class DataFile:
    """One input file and the source its documents belong to (None: taken from a field)."""

    path: Path
    source: str | None


@dataclass
class DataSpec:
    """Where documents come from and which ones to evaluate."""

    path: str
    split: str = "test"
    revision: str | None = None
    sources: Sequence[str] = ()
    domains: Sequence[str] = ()
    limit: int | None = None
    seed: int = 1234
    text_field: str = "text"
    domain_field: str = "subdomain"
    source_field: str | None = None
    default_source: str | None = None
    token: str | None = None
    resolved_root: Path | None = field(default=None, repr=False)


def _is_hub_id(path: str) -> bool:
    return path.count("/") == 1 and not Path(path).exists() and not path.startswith((".", "/"))


def resolve_data(spec: DataSpec) -> tuple[Path, str | None]:
    """Return (local root, data revision), downloading the needed sources from the hub if asked.

    The revision is the hub commit for hub data and None for local folders (the caller may hash them).
    """
    if not _is_hub_id(spec.path):
        root = Path(spec.path)
        if not root.exists():
            raise PalomaError(f"data: {root}: no such file or folder")
        return root, spec.revision
    from paloma.hub import download_dataset

    patterns = [f"{s}/{spec.split}/*" for s in spec.sources] if spec.sources else [f"*/{spec.split}/*"]
    return download_dataset(spec.path, revision=spec.revision, allow_patterns=patterns, token=spec.token)


def is_release_layout(root: Path, split: str) -> bool:
    return root.is_dir() and any(p.is_dir() for p in root.glob(f"*/{split}"))


def discover_files(root: Path, split: str) -> list[DataFile]:
    """Every JSONL file of a split: release layout when `<source>/<split>/` folders exist, else generic."""
    if root.is_file():
        return [DataFile(root, None)]
    if is_release_layout(root, split):
        files = []
        for split_dir in sorted(p for p in root.glob(f"*/{split}") if p.is_dir()):
            for path in _list_data_files(split_dir):
                files.append(DataFile(path, split_dir.parent.name))
        return files
    files = [DataFile(p, None) for p in _list_data_files(root, recursive=True)]
    if not files:
        raise PalomaError(f"data: {root}: no {split}/ folders of the Paloma layout and no JSONL or Parquet files")
    return files


def _list_data_files(folder: Path, recursive: bool = False) -> list[Path]:
    patterns = [*JSONL_PATTERNS, "*.parquet"]
    found = {p for pattern in patterns for p in (folder.rglob(pattern) if recursive else folder.glob(pattern))}
    return sorted(p for p in found if p.is_file())


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
        yield Document(source, domain, str(doc_id) if doc_id is not None else f"{data.path.name}:{line_no}", text)


def _source_of(row: dict, spec: DataSpec, where: str) -> str:
    if spec.source_field:
        value = row.get(spec.source_field)
        if not isinstance(value, str) or not value:
            raise PalomaError(f"{where}: missing or non-string source field {spec.source_field!r}")
        return value
    return spec.default_source or "custom"


def _iter_parquet(path: Path) -> Iterator[tuple[int, dict]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several error types for unreadable files
        raise PalomaError(f"{path}: unreadable Parquet ({err})") from None
    yield from enumerate(table.to_pylist(), start=1)


def _matches(patterns: Sequence[str], *names: str) -> bool:
    return not patterns or any(fnmatch.fnmatchcase(n, p) for p in patterns for n in names)


def select(documents: list[Document], spec: DataSpec) -> list[Document]:
    """Apply --sources/--domains globs, then --limit per domain after a seeded shuffle.

    The limit never takes the first N documents: each domain's documents are shuffled with a seed derived
    from (seed, source, domain), so the sample is stable whatever else is selected.
    """
    kept = [
        d
        for d in documents
        if _matches(spec.sources, d.source) and _matches(spec.domains, d.domain, f"{d.source}/{d.domain}")
    ]
    if spec.limit is None:
        return kept
    by_domain: dict[tuple[str, str], list[Document]] = {}
    for doc in kept:
        by_domain.setdefault((doc.source, doc.domain), []).append(doc)
    selected: list[Document] = []
    for (source, domain), docs in by_domain.items():
        digest = hashlib.sha256(f"{spec.seed}/{source}/{domain}".encode()).digest()
        rng = random.Random(int.from_bytes(digest[:8], "big"))
        order = list(range(len(docs)))
        rng.shuffle(order)
        selected.extend(docs[i] for i in sorted(order[: spec.limit]))
    return selected


def load_documents(spec: DataSpec) -> tuple[list[Document], dict]:
    """Resolve, read and select documents; returns them with a description of the data for results."""
    root, revision = resolve_data(spec)
    spec.resolved_root = root
    files = [f for f in discover_files(root, spec.split) if f.source is None or _matches(spec.sources, f.source)]
    documents = [doc for f in files for doc in read_file(f, spec)]
    selected = select(documents, spec)
    description = {
        "path": spec.path,
        "root": str(root),
        "revision": revision or content_revision(selected),
        "split": spec.split,
        "layout": "paloma" if is_release_layout(root, spec.split) else "generic",
        "files": len(files),
        "limit": spec.limit,
        "seed": spec.seed,
        "sources": list(spec.sources),
        "domains": list(spec.domains),
    }
    return selected, description


def content_revision(documents: Sequence[Document]) -> str:
    """A revision for local data: a hash of exactly the documents evaluated (ids, domains, texts)."""
    digest = hashlib.sha256()
    for doc in documents:
        for part in (doc.source, doc.domain, doc.id, doc.text):
            digest.update(part.encode("utf-8", "surrogatepass"))
            digest.update(b"\0")
    return "sha256:" + digest.hexdigest()[:16]
