"""File helpers shared by every stage: atomic writes and reading compressed JSON lines.

Outputs are written to a temporary file beside the target and renamed into place, so a killed run never
leaves a half-written file; inputs are only ever opened for reading.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from paloma.errors import PalomaError


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it over `path`, on error delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_json(path: str | Path, data: object) -> None:
    """Write JSON atomically; NaN and infinities become null so any JSON reader accepts the file."""
    with atomic_write(path) as handle:
        json.dump(_finite(data), handle, indent=1, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


def _finite(value: object) -> object:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a possibly compressed file (.gz, .zst, .zstd, plain) for reading bytes."""
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    if path.suffix in (".zst", ".zstd"):
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
    return open(path, "rb")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; errors name the file and line."""
    line_no = 0
    try:
        with open_binary(path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as text:
            for line_no, line in enumerate(text, start=1):
                if not line.strip():
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise PalomaError(f"{path}:{line_no}: invalid JSON ({err.msg})") from None
                if not isinstance(obj, dict):
                    raise PalomaError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
                yield line_no, obj
    except (OSError, EOFError, UnicodeDecodeError) as err:
        if isinstance(err, FileNotFoundError):
            raise PalomaError(f"{path}: no such file") from None
        where = f"{path}:{line_no + 1}" if line_no else str(path)
        raise PalomaError(f"{where}: cannot read ({type(err).__name__}: {err})") from None
    except Exception as err:  # zstandard raises its own error type
        if type(err).__module__.startswith("zstandard"):
            raise PalomaError(f"{path}: corrupt zstd data ({err})") from None
        raise
