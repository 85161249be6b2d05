"""The filter as a step of Hugging Face `datatrove` pipelines (install the `datatrove` extra).

The decision is a pure function of (index, document), so the same step gives the same result under
datatrove's local executor, Slurm or Ray. Each task memory-maps the index file on first use; the step itself
pickles as a path, never as arrays.

    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from paloma.decon.datatrove import PalomaDeconFilter

    LocalPipelineExecutor(pipeline=[
        JsonlReader("corpus/"),
        PalomaDeconFilter("paloma.decon", exclusion_writer=JsonlWriter("removed/")),
        JsonlWriter("kept/"),
    ], tasks=8).run()
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from datatrove.data import Document
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.writers.disk_base import DiskWriter

from paloma.decon.filter import decide
from paloma.decon.index import ContaminationIndex

DROP_REASON = "paloma_contaminated"


class PalomaDeconFilter(BaseFilter):
    """Drop documents that contain a paragraph of a Paloma contamination index (reference rules)."""

    name = "🦜 Paloma decontamination"

    def __init__(
        self,
        index_path: str | Path,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 1024,
        verify: bool = True,
    ) -> None:
        super().__init__(exclusion_writer=exclusion_writer, batch_size=batch_size)
        self.index_path = str(index_path)
        self.verify = verify
        self._index: ContaminationIndex | None = None

    @property
    def index(self) -> ContaminationIndex:
        if self._index is None:
            self._index = ContaminationIndex.load(self.index_path, verify=self.verify)
        return self._index

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_index"] = None  # workers map the file themselves
        return state

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        return self.filter_batch([doc])[0]

    def filter_batch(self, batch: list[Document]) -> list[bool | tuple[bool, str]]:
        removed, hits, _ = decide(self.index, [doc.text for doc in batch])
        self.stat_update("paloma_matched_paragraphs", value=len(hits))
        return [(False, DROP_REASON) if r else True for r in removed]
