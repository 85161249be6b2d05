"""Per-document records on disk: appended as documents finish, read back for resume and aggregation.

Each process appends to its own file `records/rank<R>-of<W>-attempt<K>.jsonl`; a new attempt (a resumed
run) never rewrites an earlier file. A run killed mid-write may leave one incomplete last line: readers
ignore it (its document is simply scored again on resume).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

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


def record_files(output: Path) -> list[Path]:
    return sorted((output / RECORDS_DIR).glob("*.jsonl"))


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


def load_records(output: Path) -> list[dict]:
    """Records of a run, each document once (a resumed run never writes a key twice, but be safe)."""
    seen: dict[str, dict] = {}
    for record in read_records(output):
        seen.setdefault(record_key(record), record)
    return list(seen.values())


def next_attempt(output: Path) -> int:
    attempts = [int(p.stem.rsplit("attempt", 1)[1]) for p in record_files(output) if "attempt" in p.stem]
    return max(attempts, default=0) + 1


class RecordWriter:
    """Appends records to this process's file; `flush` makes them durable (called at checkpoints)."""

    def __init__(self, output: Path, rank: int, world: int, attempt: int):
        folder = output / RECORDS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"rank{rank}-of{world}-attempt{attempt}.jsonl"
        self.handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run)

    def write(self, record: DocumentRecord) -> None:
        self.handle.write(json.dumps(asdict(record), ensure_ascii=False) + "\n")

    def flush(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.flush()
        self.handle.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
