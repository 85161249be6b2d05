"""Per-document records on disk: appended as documents finish, read back in one pass for resume and aggregation.

Each process appends to its own file `records/rank<R>-of<W>-attempt<K>.jsonl`, created when it writes its first
record; a new attempt (a resumed run) never rewrites an earlier file. A run killed mid-write may leave one
incomplete last line: readers ignore it (its document is simply scored again on resume). Readers stream: a
full split's two million records are never held as Python objects; repeats are found by 8-byte key digests.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring
from pathlib import Path

import numpy as np

from paloma.errors import PalomaError

RECORDS_DIR = "records"


@dataclass
class DocumentRecord:
    key: str  # unique within a run: source/domain/id, with "#k" for the k-th repeat of an id
    id: str
    source: str
    domain: str
    tokens: int
    bytes: int
    chars: int
    words: int
    nll_sum: float

    def json_line(self) -> str:
        """The record as one JSON line: what `json.dumps(asdict(record), ensure_ascii=False)` writes, built
        directly (the loop writes tens of thousands of records a second when documents are short)."""
        text = encode_basestring
        return (
            f'{{"key": {text(self.key)}, "id": {text(self.id)}, "source": {text(self.source)}, '
            f'"domain": {text(self.domain)}, "tokens": {int(self.tokens)}, "bytes": {int(self.bytes)}, '
            f'"chars": {int(self.chars)}, "words": {int(self.words)}, "nll_sum": {float(self.nll_sum)!r}}}\n'
        )


def record_files(output: Path) -> list[Path]:
    return sorted((Path(output) / RECORDS_DIR).glob("*.jsonl"))


def read_records_with_origin(output: Path) -> Iterator[tuple[str, dict]]:
    """("file:line", record) for every complete record of a run folder, across processes and attempts."""
    for path in record_files(output):
        with open(path, encoding="utf-8") as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.endswith("\n"):
                    break  # the incomplete last line of a killed run
                try:
                    yield f"{path}:{line_no}", json.loads(line)
                except json.JSONDecodeError:
                    raise PalomaError(f"{path}:{line_no}: corrupt record") from None


def read_records(output: Path) -> Iterator[dict]:
    """Every complete record of a run folder, across processes and attempts."""
    for _, record in read_records_with_origin(output):
        yield record


def record_key(record: dict) -> str:
    """The record's unique key (records written before keys existed: source/domain/id)."""
    return record.get("key") or f"{record['source']}/{record['domain']}/{record['id']}"


def key_digest(key: str) -> int:
    """An 8-byte digest of a record key: what resume and de-duplication compare."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def iter_unique_records(output: Path) -> Iterator[dict]:
    """Records of a run, each document once, validated, in one streaming pass.

    A resumed run never writes a key twice, but a record repeated on disk is counted once all the same.
    A non-finite or missing `nll_sum` is an error naming file and line: it never reaches an aggregate.
    """
    seen: set[int] = set()
    for origin, record in read_records_with_origin(output):
        digest = key_digest(record_key(record))
        if digest in seen:
            continue
        seen.add(digest)
        nll = record.get("nll_sum")
        if not isinstance(nll, (int, float)) or not math.isfinite(nll):
            raise PalomaError(f"{origin}: nll_sum is {nll!r}, not a finite number; the run's numbers are unusable")
        yield record


def load_records(output: Path) -> list[dict]:
    """Records of a run as a list, each document once (for small runs and tests; the evaluator streams)."""
    return list(iter_unique_records(output))


def done_digests(output: Path) -> np.ndarray:
    """Sorted key digests of the documents a run folder already holds (what `--resume` skips)."""
    digests = array("Q", (key_digest(record_key(r)) for r in read_records(output)))
    return np.unique(np.frombuffer(digests, dtype=np.uint64)) if digests else np.zeros(0, dtype=np.uint64)


def next_attempt(output: Path) -> int:
    attempts = [int(p.stem.rsplit("attempt", 1)[1]) for p in record_files(output) if "attempt" in p.stem]
    return max(attempts, default=0) + 1


class RecordWriter:
    """Appends records to this process's file (created with the first record); `flush` makes them durable.

    A failed write (disk full, quota) is an OSError that names the file, so the CLI reports it on one line.
    """

    def __init__(self, output: Path, rank: int, world: int, attempt: int):
        self.path = Path(output) / RECORDS_DIR / f"rank{rank}-of{world}-attempt{attempt}.jsonl"
        self.handle = None

    def write(self, record: DocumentRecord) -> None:
        self.write_many([record])

    def write_many(self, records: Iterable[DocumentRecord]) -> None:
        """Append records in one write."""
        text = "".join(record.json_line() for record in records)
        if not text:
            return
        with self._naming_the_file():
            if self.handle is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run)
            self.handle.write(text)

    def flush(self) -> None:
        if self.handle is not None:
            with self._naming_the_file():
                self.handle.flush()
                os.fsync(self.handle.fileno())

    def close(self) -> None:
        if self.handle is not None:
            self.flush()
            self.handle.close()
            self.handle = None

    def _naming_the_file(self):
        return _name_os_errors(self.path)

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _name_os_errors:
    """Re-raise an OSError that names no file (a failed write) as one naming `path`."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, kind, err, traceback):
        if isinstance(err, OSError) and err.filename is None:
            raise OSError(err.errno, err.strerror or str(err), str(self.path)) from None
        return False
