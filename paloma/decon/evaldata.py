"""Reading the evaluation side: Paloma's release layout, from a local folder or the Hugging Face hub.

Layout (reference §1): `<root>/<source>/<split>/*.jsonl.gz`, one JSON document per line with `text`, `id` and,
for sources with domains, `subdomain`. `metadata.truncated_portion` holds text cut off by the token budget; it
is never scored, so it is never read here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from paloma.decon.readers import open_lines
from paloma.errors import PalomaError
from paloma.registry import Registry, Source

SPLITS = ("val", "test")
EVAL_SUFFIXES = (".jsonl.gz", ".jsonl.zst", ".jsonl")


@dataclass(frozen=True)
class EvalDocument:
    source: str
    domain: str
    split: str
    doc_id: str
    text: str


@dataclass(frozen=True)
class EvalData:
    """A resolved evaluation data folder and where it came from (recorded in the index header)."""

    root: Path
    origin: dict


def resolve_eval_data(data: str | Path, revision: str | None = None, token: str | None = None) -> EvalData:
    """A local Paloma folder, or a hub dataset id (`allenai/paloma`) downloaded with `snapshot_download`."""
    path = Path(data)
    if path.exists():
        if not path.is_dir():
            raise PalomaError(f"{path}: expected a folder in Paloma's layout <source>/<split>/*.jsonl.gz")
        if revision is not None:
            raise PalomaError("--revision applies to a hub dataset, not to the local folder " + str(path))
        return EvalData(root=path, origin={"kind": "local", "folder": path.resolve().name})
    if str(data).count("/") != 1 or str(data).startswith((".", "/")):
        raise PalomaError(f"{data}: no such folder (and not a hub dataset id like allenai/paloma)")
    return _download(str(data), revision, token)


def _download(repo_id: str, revision: str | None, token: str | None) -> EvalData:
    from paloma.hub import download_dataset

    patterns = [f"*/{split}/*{suffix}" for split in SPLITS for suffix in EVAL_SUFFIXES]
    root, commit = download_dataset(repo_id, revision=revision, allow_patterns=patterns, token=token)
    origin = {"kind": "hub", "repo": repo_id, "requested_revision": revision, "revision": commit}
    return EvalData(root=root, origin=origin)


def eval_files(root: Path, source: str, split: str) -> list[Path]:
    folder = root / source / split
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith(EVAL_SUFFIXES))


def discover_sources(root: Path) -> list[str]:
    """Folders of `root` that hold a val/ or test/ split with data files, in name order."""
    found = [
        d.name
        for d in sorted(root.iterdir())
        if d.is_dir() and not d.name.startswith(".") and any(eval_files(root, d.name, s) for s in SPLITS)
    ]
    if not found:
        raise PalomaError(f"{root}: no Paloma data found (expected <source>/val/*.jsonl.gz or <source>/test/...)")
    return found


def fingerprint(files: list[Path], root: Path) -> str:
    """A checksum of the evaluation files' names and bytes: the data revision of a local folder."""
    digest = hashlib.blake2b(digest_size=32)
    for path in files:
        digest.update(os.fsencode(path.relative_to(root).as_posix()) + b"\0")
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
        digest.update(b"\0")
    return "blake2b-256:" + digest.hexdigest()


def iter_records(path: Path) -> Iterator[tuple[int, dict]]:
    """(line number, object) of each non-blank line; a truncated .gz or .zst file is an error, not a short file."""
    line_no = 0
    try:
        with open_lines(path) as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except (json.JSONDecodeError, UnicodeDecodeError) as err:
                    raise PalomaError(f"{path}:{line_no}: invalid JSON ({getattr(err, 'msg', err)})") from None
                if not isinstance(record, dict):
                    raise PalomaError(f"{path}:{line_no}: expected a JSON object, got {type(record).__name__}")
                yield line_no, record
    except PalomaError:
        raise
    except Exception as err:  # gzip, zlib, zstandard and OS errors of a damaged or unreadable file
        where = f"{path}:{line_no + 1}" if line_no else str(path)
        raise PalomaError(f"{where}: corrupt or truncated file ({type(err).__name__}: {err})") from None


def iter_documents(path: Path, source: str, split: str, source_info: Source | None) -> Iterator[EvalDocument]:
    """Documents of one evaluation file; the domain is `subdomain`, or the source name when absent."""
    for line_no, record in iter_records(path):
        text = record.get("text")
        if not isinstance(text, str):
            what = "missing" if text is None else f"a {type(text).__name__}, not a string"
            raise PalomaError(f"{path}:{line_no}: field 'text' is {what}")
        domain = record.get("subdomain") or source
        doc_id = record.get("id")
        yield EvalDocument(
            source=source,
            domain=str(domain),
            split=split,
            doc_id=str(doc_id) if doc_id is not None else f"{path.name}:{line_no}",
            text=text,
        )


def iter_extra_documents(path: Path) -> Iterator[EvalDocument]:
    """Documents of an evaluation set beyond Paloma (`--extra`): source `extra`, domain `task` or the file's stem."""
    stem = path.name.split(".", 1)[0]
    for line_no, record in iter_records(path):
        text = record.get("text")
        if not isinstance(text, str):
            what = "missing" if text is None else f"a {type(text).__name__}, not a string"
            raise PalomaError(f"{path}:{line_no}: field 'text' is {what}")
        doc_id, task = record.get("id"), record.get("task")
        yield EvalDocument(
            source="extra",
            domain=str(task) if task is not None else stem,
            split="extra",
            doc_id=str(doc_id) if doc_id is not None else f"{path.name}:{line_no}",
            text=text,
        )


def is_code(registry: Registry, source: str, domain: str | None = None) -> bool:
    """Whether a whole source, or one of its domains, is code according to the registry."""
    info = registry.get(source)
    if info is None:
        return False
    return info.is_code if domain is None else (info.is_code or info.is_code_domain(domain))
