"""Indexes on shared or remote storage (`s3://…`, `gs://…`, `hf://…`, `file://…`), fetched through fsspec.

Lookups memory-map the index, which needs a local file. A remote index is therefore fetched once into a local
cache, verified against the checksum in its own header (and against the checksum the caller expects, when
given), and then memory-mapped like any local index. The cache file is named by that checksum, so every task
of a pipeline on the same machine reuses one copy, and a changed remote file can never be mistaken for the
cached one. Local paths are made absolute, so a pipeline step pickled in one working directory and unpickled
in another (a Slurm or Ray worker) still finds its index.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from paloma.decon.index import MAGIC, ContaminationIndex, verify_file
from paloma.errors import PalomaError
from paloma.io import atomic_write
from paloma.outputs import is_url

_CHUNK = 1 << 22


def default_cache_dir() -> Path:
    """`$PALOMA_DECON_CACHE`, else `$XDG_CACHE_HOME/paloma/decon`, else `~/.cache/paloma/decon`."""
    if os.environ.get("PALOMA_DECON_CACHE"):
        return Path(os.environ["PALOMA_DECON_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "paloma" / "decon"


def resolve_location(location: str | Path) -> str:
    """A URL unchanged, or a local path made absolute (so that it means the same file in every worker)."""
    return str(location) if is_url(location) else str(Path(location).expanduser().resolve())


def local_index_file(location: str | Path, cache_dir: str | Path | None = None, checksum: str | None = None) -> Path:
    """A verified local file holding the index at `location` (fetched into `cache_dir` when it is a URL)."""
    if not is_url(location):
        path = Path(location).expanduser()
        if checksum is not None and verify_file(path)["checksum"] != checksum:
            raise PalomaError(f"{path}: index checksum is not the expected {checksum}")
        return path
    import fsspec

    url = str(location)
    try:
        fs, remote = fsspec.core.url_to_fs(url)
        remote_checksum = _remote_checksum(fs, remote, url)
    except (OSError, ValueError, ImportError) as err:
        raise PalomaError(f"{url}: cannot read the index ({type(err).__name__}: {err})") from None
    if checksum is not None and remote_checksum != checksum:
        raise PalomaError(f"{url}: index checksum {remote_checksum} is not the expected {checksum}")
    cached = Path(cache_dir or default_cache_dir()) / f"{remote_checksum.split(':', 1)[1]}.decon"
    if cached.is_file() and _verified(cached, remote_checksum):
        return cached
    with fs.open(remote, "rb") as source, atomic_write(cached, "wb") as target:
        while chunk := source.read(_CHUNK):
            target.write(chunk)
    if not _verified(cached, remote_checksum):
        cached.unlink(missing_ok=True)
        raise PalomaError(f"{url}: the fetched index does not match its checksum {remote_checksum}")
    return cached


def open_index(index: ContaminationIndex | str | Path, cache_dir: str | Path | None = None) -> ContaminationIndex:
    """An index object, a local index file (verified), or a URL (fetched into the cache, verified there)."""
    if isinstance(index, ContaminationIndex):
        return index
    if is_url(index):
        return ContaminationIndex.load(local_index_file(index, cache_dir), verify=False)
    return ContaminationIndex.load(index)


def _remote_checksum(fs, remote: str, url: str) -> str:
    """The checksum recorded in a remote index's header, read without fetching the payload."""
    with fs.open(remote, "rb") as handle:
        start = handle.read(16)
        if len(start) < 16 or start[:8] != MAGIC:
            raise PalomaError(f"{url}: not a paloma decontamination index")
        length = int.from_bytes(start[8:], "little")
        try:
            header = json.loads(handle.read(length).decode("ascii"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise PalomaError(f"{url}: index header is corrupt (not valid JSON)") from None
    checksum = header.get("checksum") if isinstance(header, dict) else None
    if not isinstance(checksum, str) or not checksum.startswith("blake2b-256:"):
        raise PalomaError(f"{url}: index header has no checksum")
    return checksum


def _verified(path: Path, checksum: str) -> bool:
    try:
        return verify_file(path)["checksum"] == checksum
    except PalomaError:
        return False
