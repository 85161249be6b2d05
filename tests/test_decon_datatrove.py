"""The datatrove step makes the same decisions as `paloma decon filter` (run with datatrove's local executor)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

pytest.importorskip("datatrove")

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

from paloma.decon import build_index
from paloma.decon.datatrove import PalomaDeconFilter
from tests.conftest import run_paloma
from tests.decon_data import EXPECTED_REMOVED, make_paloma, training_docs


def _ids(folder: Path) -> list[str]:
    ids = []
    for path in sorted(folder.rglob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            ids += [json.loads(line)["id"] for line in handle]
    return ids


def test_datatrove_pipeline_matches_the_cli(tmp_path: Path) -> None:
    index_path = build_index(make_paloma(tmp_path / "paloma"), progress=False).save(tmp_path / "paloma.decon")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    # datatrove's readers drop documents with empty text, so the corpus has none
    per_shard = [d for d in training_docs() if d["text"]]
    docs = [{**d, "id": f"{shard}-{d['id']}"} for shard in range(3) for d in per_shard]
    for shard in range(3):
        with gzip.open(corpus / f"shard-{shard}.jsonl.gz", "wt", encoding="utf-8") as handle:
            for doc in docs[shard * len(per_shard) : (shard + 1) * len(per_shard)]:
                handle.write(json.dumps(doc) + "\n")

    LocalPipelineExecutor(
        pipeline=[
            JsonlReader(str(corpus), glob_pattern="*.jsonl.gz"),
            PalomaDeconFilter(index_path, exclusion_writer=JsonlWriter(str(tmp_path / "dt" / "removed"))),
            JsonlWriter(str(tmp_path / "dt" / "kept")),
        ],
        tasks=2,
        workers=1,
        logging_dir=str(tmp_path / "dt" / "logs"),
    ).run()
    run_paloma(
        "decon", "filter", str(corpus), "-i", str(index_path), "-o", str(tmp_path / "cli"), "--quiet", check=True
    )

    assert sorted(_ids(tmp_path / "dt" / "kept")) == sorted(_ids(tmp_path / "cli" / "kept"))
    assert sorted(_ids(tmp_path / "dt" / "removed")) == sorted(_ids(tmp_path / "cli" / "removed"))
    assert {i.split("-", 1)[1] for i in _ids(tmp_path / "dt" / "removed")} == EXPECTED_REMOVED
    assert len(_ids(tmp_path / "dt" / "kept")) + len(_ids(tmp_path / "dt" / "removed")) == len(docs)
