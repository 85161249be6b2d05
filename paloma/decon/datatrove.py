"""The filter as a step of Hugging Face `datatrove` pipelines (install the `datatrove` extra).

The decision is a pure function of (index, document), so the same step gives the same result under
datatrove's local executor, Slurm or Ray. The step pickles as a location, never as arrays: a local path is
made absolute when the step is built (a worker may start in another working directory), and a URL
(`s3://…`, `gs://…`, `file://…`, any fsspec filesystem) is fetched once per worker machine into a local cache,
verified against its checksum and memory-mapped (paloma.decon.remote). Pass `checksum=` to pin the index.

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

from paloma.decon.decision import decide
from paloma.decon.index import ContaminationIndex
from paloma.decon.remote import is_url, local_index_file, resolve_location

DROP_REASON = "paloma_contaminated"


class PalomaDeconFilter(BaseFilter):
    """Drop documents that contain a key of a Paloma contamination index: a paragraph (the reference rules) or,
    for an index built with `--ngram`, an n-gram of normalised words (`paloma.decon.decision`)."""

    name = "🦜 Paloma decontamination"

    def __init__(
        self,
        index_path: str | Path,
        exclusion_writer: DiskWriter | None = None,
        batch_size: int = 1024,
        verify: bool = True,
        checksum: str | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        super().__init__(exclusion_writer=exclusion_writer, batch_size=batch_size)
        self.index_path = resolve_location(index_path)
        self.verify = verify
        self.checksum = checksum
        self.cache_dir = str(Path(cache_dir).expanduser().resolve()) if cache_dir is not None else None
        self._index: ContaminationIndex | None = None

    @property
    def index(self) -> ContaminationIndex:
        """The index, memory-mapped on first use in each worker (fetched and verified first when remote)."""
        if self._index is None:
            if is_url(self.index_path):
                path = local_index_file(self.index_path, self.cache_dir, self.checksum)
                self._index = ContaminationIndex.load(path, verify=False)  # verified when fetched
            else:
                path = local_index_file(self.index_path, checksum=self.checksum)
                self._index = ContaminationIndex.load(path, verify=self.verify and self.checksum is None)
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
