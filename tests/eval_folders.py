"""Test helper: write an eval-like output folder (docs/formats.md) from per-document records.

The analyses read `paloma eval` outputs; tests build such folders themselves with the same pure functions
the evaluator uses (`aggregate_records`, `write_json`), so they do not depend on running a model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from paloma.io import write_json
from paloma.metrics import aggregate_records

PROTOCOL = {
    "prefix": "eos",
    "prefix_token_id": 0,
    "max_length": 2048,
    "add_special_tokens": False,
    "window": "right-aligned-last",
    "dtype": "float32",
    "split": "val",
    "tokenizer_hash": "abc123",
    "fingerprint": "fp-default",
}


def write_eval_output(
    folder: Path,
    records: list[dict],
    *,
    model: dict | None = None,
    protocol: dict | None = None,
    with_records: bool = True,
) -> Path:
    """Write results.json (and records/part-0.jsonl) for `records`; returns the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    results = {
        "schema": "paloma-results/1",
        **aggregate_records(records),
        "protocol": {**PROTOCOL, **(protocol or {})},
        "model": {"name_or_path": folder.name, **(model or {})},
    }
    write_json(folder / "results.json", results)
    if with_records:
        (folder / "records").mkdir(exist_ok=True)
        with open(folder / "records" / "part-0.jsonl", "w", encoding="utf-8") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
    return folder


def synthetic_records(
    rng: np.random.Generator, domains: dict[tuple[str, str], int], loss: dict[tuple[str, str], float]
) -> list[dict]:
    """Documents with random lengths whose per-token loss is `loss[domain]` plus per-document noise."""
    records = []
    for (source, domain), n_docs in domains.items():
        tokens = rng.integers(20, 400, n_docs)
        per_token = loss[(source, domain)] + rng.normal(0.0, 0.3, n_docs)
        for i in range(n_docs):
            records.append(
                {
                    "id": f"{domain}-{i}",
                    "source": source,
                    "domain": domain,
                    "tokens": int(tokens[i]),
                    "bytes": int(tokens[i] * 4),
                    "chars": int(tokens[i] * 4),
                    "words": int(tokens[i]),
                    "nll_sum": float(per_token[i] * tokens[i]),
                }
            )
    return records
