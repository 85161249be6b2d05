"""A folder of outputs that a killed run can resume: every file committed whole or not at all, locally or in a bucket.

One helper for every stage that writes many outputs and must survive a kill (`paloma decon filter` uses it;
the evaluator's per-task outputs can adopt it). The folder is a local path or any fsspec URL (`s3://`,
`gs://`, `hf://`, `memory://`, ...); names inside it are relative, `/`-separated.

    out = Outputs("cleaned/")                      # or Outputs("s3://bucket/cleaned")
    with out.open("kept/a.jsonl.gz") as handle:    # writes a temporary beside the target ...
        handle.write(data)                         # ... committed by rename when the block ends without error,
                                                   # deleted when it raises: readers never see a partial file
    out.write_json("state/a.json", {...})          # the same, for a JSON document (NaN -> null)
    out.read_json("state/a.json")                  # the committed document, or None (absent or unreadable)
    out.exists("kept/a.jsonl.gz")                  # committed (a temporary never counts)
    out.remove("kept")                             # a file or a whole folder; absent is fine
    out.clean_temporaries("kept/a.jsonl.gz")       # leftovers of killed writers of that output
    out.clean_folder_temporaries("records")        # ... of every output directly in a folder ("": the root)
    out.is_empty(); out.location("kept/a.jsonl.gz")  # nothing there yet; a Path or URL for messages

The resume protocol built on it: write each unit's outputs with `open`, then its state file with `write_json`
last; on resume, skip the units whose state file `exists` (and matches), and for every other unit `remove` its
outputs and `clean_temporaries` before redoing it. A temporary is named `.<name>.<host>-<pid>.<random>.tmp`:
one whose writer ran on this host and is gone, or that is older than a day (another host's), is stale; a live
writer's temporary is never touched.

Local folders use `paloma.io.atomic_write` (fsync, then `os.replace`; files 0644 under umask 022). On object
stores a "rename" is a server-side copy then a delete: the target object appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from paloma.errors import PalomaError
from paloma.io import (
    _TEMP_NAME,
    FOREIGN_TEMP_AGE_S,
    TEMP_SUFFIX,
    _finite,
    _host_tag,
    _process_alive,
    atomic_write,
    remove_stale_temporaries,
)

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")


def is_url(location: str | Path) -> bool:
    """Whether `location` names an fsspec filesystem (`scheme://...`) rather than a local path."""
    return isinstance(location, str) and bool(_URL.match(location))


def as_location(location: str | Path) -> str | Path:
    """A local Path for a path or a `file://` URL (local semantics: fsync, umask, overlap checks), else the URL."""
    if isinstance(location, str) and location.startswith("file://"):
        return Path(urllib.parse.unquote(urllib.parse.urlparse(location).path))
    return location if is_url(location) else Path(location)


def filesystem(location: str) -> tuple[Any, str]:
    """(fsspec filesystem, path inside it) of a URL."""
    import fsspec

    return fsspec.core.url_to_fs(location)


def join(root: str | Path, rel: str) -> str | Path:
    """`root/rel` for a local path (a Path) or a URL (a string)."""
    return f"{str(root).rstrip('/')}/{rel}" if is_url(root) else Path(root) / rel


def check_not_overlapping_urls(output: str, inputs: list[str | Path]) -> None:
    """A URL output must not be an input, contain one, or lie inside one (compared as `/`-separated prefixes)."""
    target = str(output).rstrip("/")
    for given in inputs:
        source = str(given).rstrip("/")
        if source == target:
            raise PalomaError(f"{target}: is also an input; choose another output")
        if source.startswith(target + "/"):
            raise PalomaError(f"{target}: contains the input {given}; choose an output outside it")
        if target.startswith(source + "/"):
            raise PalomaError(f"{target}: lies inside the input folder {given}; choose an output outside it")


class Outputs:
    """A folder (local path or fsspec URL) whose files are written atomically; see the module docstring."""

    def __init__(self, root: str | Path) -> None:
        root = as_location(root)
        self.root = root.rstrip("/") if isinstance(root, str) else root
        self._fs: Any = None
        self._base = ""

    @property
    def is_local(self) -> bool:
        return isinstance(self.root, Path)

    def __repr__(self) -> str:
        return f"Outputs({str(self.root)!r})"

    def __str__(self) -> str:
        return str(self.root)

    def __getstate__(self) -> dict:
        return {"root": self.root, "_fs": None, "_base": ""}  # workers open their own filesystem

    @property
    def fs(self) -> Any:
        if self._fs is None:
            self._fs, self._base = filesystem(str(self.root))
        return self._fs

    def _remote(self, rel: str) -> str:
        """The path of `rel` inside the filesystem (without the URL's scheme)."""
        base = self.fs and self._base.rstrip("/")
        return f"{base}/{rel}" if rel else base

    def location(self, rel: str) -> str | Path:
        """Where `rel` lives: a Path for a local folder, a URL otherwise (for messages and reports)."""
        return join(self.root, rel)

    # ---- writing -------------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def open(self, rel: str, mode: str = "wb") -> Iterator[IO]:
        """A temporary file beside `rel`, committed to `rel` on success and deleted on error."""
        if self.is_local:
            with atomic_write(self.root / rel, mode) as handle:
                yield handle
            return
        self.clean_temporaries(rel)  # as atomic_write does: a killed writer's leftovers of this output go
        target = self._remote(rel)
        parent, name = target.rsplit("/", 1)
        temporary = f"{parent}/.{name}.{_host_tag()}-{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
        with contextlib.suppress(OSError, NotImplementedError):
            self.fs.makedirs(parent, exist_ok=True)  # filesystems with real folders need them; buckets ignore it
        try:
            with self.fs.open(temporary, mode) as handle:
                yield handle
            self.fs.mv(temporary, target)
        except BaseException:
            with contextlib.suppress(OSError, FileNotFoundError):
                self.fs.rm(temporary)
            raise

    def write_json(self, rel: str, data: object) -> None:
        """Write a JSON document atomically; NaN and infinities become null."""
        with self.open(rel, "wb") as handle:
            text = json.dumps(_finite(data), indent=1, ensure_ascii=False, allow_nan=False) + "\n"
            handle.write(text.encode("utf-8"))

    # ---- reading and state ---------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        """Whether `rel` is committed (a file or folder; a symlink counts, so it is never silently followed)."""
        if self.is_local:
            path = self.root / rel
            return path.exists() or path.is_symlink()
        return bool(self.fs.exists(self._remote(rel)))

    def read_json(self, rel: str) -> Any:
        """The committed JSON document at `rel`, or None when it is absent or not valid JSON."""
        with contextlib.suppress(OSError, ValueError, FileNotFoundError):
            if self.is_local:
                return json.loads((self.root / rel).read_text(encoding="utf-8"))
            with self.fs.open(self._remote(rel), "rb") as handle:
                return json.loads(handle.read().decode("utf-8"))
        return None

    def is_empty(self) -> bool:
        """Whether the folder is absent or holds nothing."""
        if self.is_local:
            return not self.root.is_dir() or not any(self.root.iterdir())
        base = self._remote("")
        return not self.fs.exists(base) or not self.fs.find(base)

    def remove(self, rel: str) -> None:
        """Delete a committed file or folder (absent is fine); a symlink is removed, never followed."""
        if self.is_local:
            path = self.root / rel
            if path.is_dir() and not path.is_symlink():
                import shutil

                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            return
        target = self._remote(rel)
        if self.fs.exists(target):
            self.fs.rm(target, recursive=True)

    def clean_temporaries(self, rel: str) -> list[str]:
        """Delete temporaries of `rel` (and of a folder's `.old` swap) left by killed writers; returns them."""
        parent, _, name = rel.rpartition("/")
        return self._clean(parent, {name, f"{name}.old"})

    def clean_folder_temporaries(self, folder: str = "") -> list[str]:
        """Delete every temporary that killed writers left directly in `folder` (default: the root)."""
        return self._clean(folder, None)

    def _clean(self, folder: str, names: set[str] | None) -> list[str]:
        if self.is_local:
            return [str(p) for p in remove_stale_temporaries(self.root / folder, names)]
        removed = []
        with contextlib.suppress(FileNotFoundError):
            for entry in self.fs.ls(self._remote(folder), detail=True):
                base = entry["name"].rstrip("/").rsplit("/", 1)[-1]
                match = _TEMP_NAME.match(base)
                if match and (names is None or match["target"] in names) and self._remote_stale(entry, match):
                    self.fs.rm(entry["name"], recursive=True)
                    removed.append(entry["name"])
        return removed

    def _remote_stale(self, entry: dict, match: re.Match) -> bool:
        if match["pid"] is not None and match["host"] == _host_tag():
            return int(match["pid"]) != os.getpid() and not _process_alive(int(match["pid"]))
        modified = _modified(entry)
        return modified is not None and time.time() - modified > FOREIGN_TEMP_AGE_S

    def prune_empty_folders(self, rels: list[str], include_root: bool = False) -> None:
        """Remove empty folders below these names (local only: object stores have no empty folders)."""
        if not self.is_local:
            return
        folders = [self.root / rel for rel in rels] + ([self.root] if include_root else [])
        for folder in folders:
            if not folder.is_dir() or folder.is_symlink():
                continue
            for dirpath, _, _ in sorted(os.walk(folder), key=lambda item: -len(item[0])):
                with contextlib.suppress(OSError):
                    os.rmdir(dirpath)  # only empty folders go


def _modified(entry: dict) -> float | None:
    """An fsspec listing entry's modification time in seconds, where the filesystem gives one."""
    for key in ("mtime", "LastModified", "last_modified", "created", "updated"):
        value = entry.get(key)
        if value is None:
            continue
        if isinstance(value, (int, float)):
            return float(value)
        if hasattr(value, "timestamp"):
            return value.timestamp()
    return None
