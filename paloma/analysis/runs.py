"""Read a `paloma eval` output folder: results.json and the per-document records (docs/formats.md).

The analyses need two views of a run: per-domain sums (enough for point estimates, and all a submission
carries) and per-document arrays (needed for bootstrap intervals). Documents are kept as numpy arrays
sorted by id, so two runs over the same data line up index by index for paired resampling.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from paloma.errors import PalomaError
from paloma.eval.records import read_records_with_origin, record_files, record_key
from paloma.metrics import DomainSums
from paloma.registry import Registry

DomainKey = tuple[str, str]
RECORD_FIELDS = ("id", "source", "domain", "tokens", "bytes", "nll_sum")


@dataclass(frozen=True)
class Documents:
    """The scored documents of one domain, sorted by id: one array per additive field."""

    ids: np.ndarray  # str
    nll: np.ndarray  # float64, −Σ ln p per document
    tokens: np.ndarray  # int64
    bytes: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Run:
    """One evaluation run: its results.json, and its records folder if the run kept one."""

    path: Path
    results: dict
    records_dir: Path | None = None
    _documents: dict[DomainKey, Documents] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        """A short label: the model's hub id, the last part of its local path, else the output folder's name."""
        model = self.model.get("name_or_path")
        if not model:
            return self.path.name
        return Path(model).name if Path(model).is_dir() else str(model)

    @property
    def protocol(self) -> dict:
        return self.results.get("protocol") or {}

    @property
    def model(self) -> dict:
        return self.results.get("model") or {}

    @cached_property
    def domain_sums(self) -> dict[DomainKey, DomainSums]:
        """Per-(source, domain) sums as written in results.json."""
        sums = {}
        for source, entry in (self.results.get("sources") or {}).items():
            for domain, raw in (entry.get("domains") or {}).items():
                sums[(source, domain)] = DomainSums.from_dict(raw)
        return sums

    @property
    def has_records(self) -> bool:
        return self.records_dir is not None

    def documents(self) -> dict[DomainKey, Documents]:
        """Per-document arrays of every domain (read once, then cached)."""
        if self._documents is None:
            if self.records_dir is None:
                raise PalomaError(f"{self.path}: no records/ folder, so no per-document analysis is possible")
            self._documents = read_records(self.records_dir)
        return self._documents


def load_run(path: str | Path) -> Run:
    """Load an eval output folder (or its results.json directly); errors name the file at fault."""
    path = Path(path)
    results_path = path if path.is_file() else path / "results.json"
    if not results_path.is_file():
        raise PalomaError(f"{path}: not an eval output (no results.json)")
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise PalomaError(f"{results_path}:{err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(results, dict) or not isinstance(results.get("sources"), dict):
        raise PalomaError(f"{results_path}: field 'sources' is missing or not an object")
    folder = results_path.parent
    records_dir = folder / "records"
    has_records = bool(record_files(folder))
    return Run(path=folder, results=results, records_dir=records_dir if has_records else None)


def read_records(folder: str | Path) -> dict[DomainKey, Documents]:
    """Per-document records of a run's `records/` folder → per-domain arrays sorted by document key.

    Reads through `paloma.eval.records`, so the incomplete last line of a killed run is skipped as everywhere else.
    A document key seen twice with the same numbers (a resumed run that rewrote a record) is kept once; with
    different numbers it is an error, because no analysis can know which one is right.
    """
    columns: dict[DomainKey, dict[str, tuple[float, int, int, str]]] = {}
    for origin, record in read_records_with_origin(Path(folder).parent):
        missing = [f for f in RECORD_FIELDS if f not in record]
        if missing:
            raise PalomaError(f"{origin}: record lacks field {missing[0]!r}")
        key = (str(record["source"]), str(record["domain"]))
        doc_id = record_key(record)
        values = (float(record["nll_sum"]), int(record["tokens"]), int(record["bytes"]), origin)
        seen = columns.setdefault(key, {}).get(doc_id)
        if seen is not None and seen[:3] != values[:3]:
            raise PalomaError(f"{origin}: document {doc_id!r} of {key[0]}/{key[1]} also at {seen[3]}")
        columns[key][doc_id] = values
    return {key: _to_documents(docs) for key, docs in columns.items()}


def _to_documents(docs: dict[str, tuple[float, int, int, str]]) -> Documents:
    ids = sorted(docs)
    return Documents(
        ids=np.array(ids, dtype=str),
        nll=np.array([docs[i][0] for i in ids], dtype=np.float64),
        tokens=np.array([docs[i][1] for i in ids], dtype=np.int64),
        bytes=np.array([docs[i][2] for i in ids], dtype=np.int64),
    )


def check_release(runs: Sequence[Run], registry: Registry | None) -> None:
    """Refuse runs evaluated against another release's registry than the one given.

    Which domains are code or fringe (left out of the suite's ordinary loss) is the registry's to say; the
    wrong registry silently counts them (the demo's suite loss included its code domains that way).
    """
    if registry is None:
        return
    for run in runs:
        release = (run.results.get("data") or {}).get("release")
        if release and release != registry.release:
            raise PalomaError(
                f"{run.path}: evaluated against release {release!r}, but --registry gives {registry.release!r}; "
                "pass --registry with that release's registry (a shipped name or its JSON file), or --registry none"
            )
