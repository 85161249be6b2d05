"""Writing the filter's outputs in the input's format, each file atomically.

A `Sink` opens its file on the first write (so a file with no removed documents produces no removed file),
writes into a temporary file beside the target and renames it into place only when the whole input has
been read; any error deletes the temporary file. JSON lines are copied byte for byte, so kept documents are
exactly the input documents; Parquet keeps the input's schema and compression codec.
"""

from __future__ import annotations

import contextlib
import gzip
from pathlib import Path
from typing import Any

from paloma.decon.readers import open_input
from paloma.io import atomic_dir
from paloma.outputs import Outputs

# Fast compression by default (docs/performance.md): zlib's level 6 compresses prose at about 22 MB per
# CPU-second, below the filter's own speed; ISA-L (`isal`) level 1 runs at about 320 MB/s for files about
# 16% larger than zlib level 6. Levels above ISA-L's 3 fall back to zlib.
DEFAULT_GZIP_LEVEL = 1
ISAL_MAX_LEVEL = 3
DEFAULT_ZSTD_LEVEL = 3

try:
    from isal import igzip
except ImportError:  # optional speed-up
    igzip = None


class Sink:
    """One output file `rel` of `outputs`, opened lazily inside an ExitStack that commits it or discards it."""

    def __init__(
        self, stack: contextlib.ExitStack, outputs: Outputs, rel: str, compression_level: int | None = None
    ) -> None:
        self.stack, self.outputs, self.rel, self.level = stack, outputs, rel, compression_level
        self.handle: Any = None
        self.documents = 0

    def _open_jsonl(self) -> Any:
        raw = self.stack.enter_context(self.outputs.open(self.rel, "wb"))
        name = self.rel
        if name.endswith(".gz"):
            level = DEFAULT_GZIP_LEVEL if self.level is None else self.level
            opener = igzip.IGzipFile if igzip is not None and level <= ISAL_MAX_LEVEL else gzip.GzipFile
            return self.stack.enter_context(opener(filename="", mode="wb", fileobj=raw, compresslevel=level, mtime=0))
        if name.endswith((".zst", ".zstd")):
            import zstandard

            level = DEFAULT_ZSTD_LEVEL if self.level is None else self.level
            return self.stack.enter_context(zstandard.ZstdCompressor(level=level).stream_writer(raw, closefd=False))
        return raw

    def write_lines(self, lines: list[bytes]) -> None:
        if not lines:
            return
        if self.handle is None:
            self.handle = self._open_jsonl()
        self.handle.write(b"".join(lines))
        self.documents += len(lines)

    def write_table(self, table: Any, compression: str) -> None:
        """Append Arrow rows (a RecordBatch or Table) to a Parquet file with the input's schema."""
        if table.num_rows == 0 and self.handle is not None:
            return
        if self.handle is None:
            import pyarrow.parquet as pq

            raw = self.stack.enter_context(self.outputs.open(self.rel, "wb"))
            self.handle = self.stack.enter_context(pq.ParquetWriter(raw, table.schema, compression=compression))
        if table.num_rows:
            self.handle.write(table)
            self.documents += table.num_rows

    def ensure_exists(self, schema: Any = None, compression: str = "snappy") -> None:
        """Create the file even when nothing was written (kept outputs mirror every input file)."""
        if self.handle is not None:
            return
        if schema is None:
            self.handle = self._open_jsonl()
        else:
            import pyarrow as pa

            self.write_table(pa.Table.from_batches([], schema=schema), compression)


def parquet_compression(path: Path | str) -> str:
    """The codec of the input's first column chunk, so outputs compress like their inputs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from paloma.errors import PalomaError

    try:
        with open_input(path) as handle:
            meta = pq.ParquetFile(handle).metadata
    except (pa.ArrowException, OSError) as err:
        raise PalomaError(f"{path}: unreadable Parquet ({err})") from None
    if meta.num_row_groups == 0 or meta.num_columns == 0:
        return "snappy"
    codec = meta.row_group(0).column(0).compression
    return "none" if codec == "UNCOMPRESSED" else codec.lower()


def save_dataset_atomically(dataset: Any, target: Path) -> None:
    """`save_to_disk` into a temporary folder beside `target`, then swap it into place."""
    with atomic_dir(target, replace=True) as staging:
        dataset.save_to_disk(str(staging))
