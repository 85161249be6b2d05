"""`verify`: re-check a cleaned corpus, or a reproducible sample of its documents, against an index.

A submission cites "decontaminated with index X, report Y"; anyone holding the corpus and index X can rerun
this check and expects zero contaminated documents. The sample is chosen by a hash of (seed, file,
location), so the same fraction and seed always select the same documents on every machine.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import xxhash

from paloma.decon.decision import decide
from paloma.decon.filter import SAMPLE_CHARS, discover_units
from paloma.decon.index import ContaminationIndex
from paloma.decon.readers import Batch, dataset_batches, datasets_splits, read_batches
from paloma.decon.remote import open_index
from paloma.errors import PalomaError


def _batches(unit_path: Path, kind: str, text_field: str, skip_bad_lines: bool) -> Iterator[tuple[str, Batch]]:
    if kind != "datasets":
        for batch in read_batches(unit_path, kind, text_field, skip_bad_lines):
            yield "", batch
        return
    for split, dataset in datasets_splits(unit_path).items():
        where = unit_path if split is None else unit_path / split
        for batch in dataset_batches(where, dataset, text_field, skip_bad_lines):
            yield "" if split is None else f"{split}:", batch


def _sampled(seed: int, name: str, location: int, fraction: float) -> bool:
    return xxhash.xxh3_64_intdigest(f"{seed}\0{name}\0{location}".encode()) < fraction * 2.0**64


def verify_files(
    index: ContaminationIndex | str | Path,
    inputs: Iterable[str | Path],
    *,
    text_field: str = "text",
    fraction: float = 1.0,
    seed: int = 0,
    skip_bad_lines: bool = False,
    examples: int = 10,
) -> dict:
    """Count documents of `inputs` that the index would remove; a clean corpus has none."""
    if not 0 < fraction <= 1:
        raise PalomaError(f"--fraction must be in (0, 1], got {fraction}")
    units = discover_units(inputs)
    index = open_index(index)
    checked = contaminated = bad = 0
    found: list[dict] = []
    for unit in units:
        for prefix, batch in _batches(unit.path, unit.kind, text_field, skip_bad_lines):
            bad += len(batch.bad)
            chosen = [i for i, loc in enumerate(batch.locations) if _sampled(seed, unit.rel, loc, fraction)]
            removed, _, _ = decide(index, [batch.texts[i] for i in chosen])
            checked += len(chosen)
            contaminated += int(removed.sum())
            for i in [chosen[j] for j in removed.nonzero()[0]][: max(0, examples - len(found))]:
                match = index.find(batch.texts[i])[0]
                found.append(
                    {
                        "file": unit.rel,
                        "location": f"{prefix}{batch.locations[i]}",
                        "id": batch.ids[i],
                        "paragraph": match.paragraph[:SAMPLE_CHARS],
                        "origins": [o.to_dict() for o in match.origins[:3]],
                    }
                )
    return {
        "index": index.summary(),
        "files": len(units),
        "fraction": fraction,
        "seed": seed,
        "documents_checked": checked,
        "contaminated_documents": contaminated,
        "bad_lines": bad,
        "clean": contaminated == 0,
        "examples": found,
    }
