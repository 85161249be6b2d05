"""File helpers shared by every stage: atomic writes, output-location checks and reading compressed JSON lines.

Outputs are written to a temporary file (or folder) beside the target and renamed into place, so a killed run
never leaves a half-written file; inputs are only ever opened for reading. Temporaries are created with the
permissions any other new file gets (0644 / 0755 under umask 022), so results, shared token caches and built
sites stay readable by teammates and web servers, and their names carry the writer's host and process id, so
the next run of the same output can tell a killed writer's leftovers from a live one's work and remove them.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from paloma.errors import PalomaError

TEMP_SUFFIX = ".tmp"
# A temporary of ours: `.<target name>.<host>-<pid>.<random>.tmp` (older versions wrote `.<name>.<random>.tmp`).
_TEMP_NAME = re.compile(r"^\.(?P<target>.+?)\.(?:(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.)?[a-z0-9_]{6,}\.tmp$")
# Leftovers without an owner we can check (another host, or the old naming) are removed once this old.
FOREIGN_TEMP_AGE_S = 24 * 3600
_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else set and restored."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def honour_umask(folder: Path) -> None:
    """Give the files other libraries wrote into `folder` the mode any new file gets (0644 under umask 022).

    transformers 5 and accelerate write weights through private temporary files (mode 0600), which would
    leave exports and checkpoints unreadable for teammates on a shared cluster.
    """
    mode = 0o666 & ~current_umask()
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            path.chmod(mode)


def _host_tag() -> str:
    return re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname())[:40] or "host"


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.{_host_tag()}-{os.getpid()}."


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _is_stale(entry: Path, match: re.Match) -> bool:
    """A temporary whose writer is gone: same host and a dead pid, or an unverifiable owner for a day."""
    if match["pid"] is not None and match["host"] == _host_tag():
        return int(match["pid"]) != os.getpid() and not _process_alive(int(match["pid"]))
    try:
        return time.time() - entry.lstat().st_mtime > FOREIGN_TEMP_AGE_S
    except FileNotFoundError:
        return False


def remove_stale_temporaries(folder: str | Path, target_names: Iterable[str] | None = None) -> list[Path]:
    """Delete temporaries left in `folder` by killed writers (of `target_names` only, when given).

    Live writers' temporaries (this host, process still running) are never touched, so concurrent processes
    sharing a folder (several ranks, a shared token cache) are safe. Returns what was removed.
    """
    folder = Path(folder)
    wanted = set(target_names) if target_names is not None else None
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in folder.iterdir():
            match = _TEMP_NAME.match(entry.name)
            if not match or (wanted is not None and match["target"] not in wanted) or not _is_stale(entry, match):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success rename it over `path`, on error delete it.

    The file gets mode 0666 & ~umask like any newly created file (mkstemp alone would give 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, [path.name])
    fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None:  # a failed write (disk full): name the file
            raise OSError(err.errno, err.strerror or str(err), str(path)) from None
        raise


@contextlib.contextmanager
def atomic_dir(path: str | Path, replace: bool = False) -> Iterator[Path]:
    """Yield a fresh staging folder beside `path`; on success it becomes `path`, on error it is deleted.

    With `replace`, an existing `path` is swapped out and removed only after the new folder is in place;
    without it an existing `path` must be absent or an empty folder. The staging folder is 0777 & ~umask.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, [path.name, f"{path.name}.old"])
    staging = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=TEMP_SUFFIX, dir=path.parent))
    try:
        staging.chmod(0o777 & ~current_umask())
        yield staging
        make_readable(staging)
        _move_into_place(staging, path, replace)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def make_readable(path: str | Path) -> None:
    """Give every file and folder below `path` the mode a new one gets under the umask (0644 / 0755 under 022).

    Some writers create private files whatever the umask (safetensors writes 0600; mkstemp does too); outputs
    that others must read (models, checkpoints, caches) pass through here. Executables stay executable.
    """
    mask = current_umask()
    for entry in [Path(path), *Path(path).rglob("*")]:
        if entry.is_symlink():
            continue
        current = entry.stat().st_mode & 0o777
        executable = entry.is_dir() or current & 0o111
        wanted = (0o777 if executable else 0o666) & ~mask
        if current != wanted:
            entry.chmod(wanted)


def _move_into_place(staging: Path, path: Path, replace: bool) -> None:
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        path.rmdir()
    if not path.exists() and not path.is_symlink():
        os.replace(staging, path)
        return
    if not replace:
        raise PalomaError(f"{path}: exists and is not empty; choose a new folder")
    old = Path(
        tempfile.mkdtemp(prefix=_temp_prefix(path.with_name(f"{path.name}.old")), suffix=TEMP_SUFFIX, dir=path.parent)
    )
    os.rmdir(old)
    os.replace(path, old)
    os.replace(staging, path)
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink()


def read_json(path: str | Path, what: str) -> object:
    """A JSON file's content; a missing or unparsable file is one error naming it and what it should be."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PalomaError(f"{path}: no such {what} file") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PalomaError(f"{path}: not a JSON {what} ({err})") from None


def write_json(path: str | Path, data: object) -> None:
    """Write JSON atomically; NaN and infinities become null so any JSON reader accepts the file, and anything
    that looks like a Hugging Face token is redacted (results files are shared: a secret never reaches one)."""
    with atomic_write(path) as handle:
        json.dump(_finite(redact(data)), handle, indent=1, ensure_ascii=False, allow_nan=False)
        handle.write("\n")


# ------------------------------------------------------------------------------------ secrets

REDACTED = "<redacted>"
# Hugging Face access tokens: hf_ and 34 letters today (20 or more are redacted).
_TOKEN_TEXT = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")
# Options whose value is a secret, in any CLI a command line may hold (ours, accelerate's, a launcher's).
_SECRET_OPTION = re.compile(
    r"^--?(?:hf[-_]|hub[-_])?(?:token|auth[-_]token|access[-_]token|api[-_]key|password|secret)$"
)


def redact_text(text: str) -> str:
    """`text` with every Hugging Face-looking token replaced."""
    return _TOKEN_TEXT.sub(REDACTED, text)


def redact(value: object) -> object:
    """A copy of JSON-like data with token-looking strings redacted (keys and values, at any depth)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact(k): redact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def redact_command(argv: Iterable[str]) -> list[str]:
    """A command line fit to record: the values of secret options (`--token X`, `--token=X`, `--hf-token`, …)
    and anything that looks like a Hugging Face token are redacted, whatever form the token has."""
    out: list[str] = []
    secret_next = False
    for arg in map(str, argv):
        name, sep, _ = arg.partition("=")
        if secret_next:
            out.append(REDACTED)
        elif sep and _SECRET_OPTION.match(name):
            out.append(f"{name}={REDACTED}")
        else:
            out.append(redact_text(arg))
        secret_next = not secret_next and not sep and bool(_SECRET_OPTION.match(arg))
    return out


def _finite(value: object) -> object:
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# ------------------------------------------------------------------------------------ output checks


def _nearest_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def _check_creatable(path: Path, what: str) -> None:
    """Every existing ancestor of `path` is a folder, and the nearest one is writable."""
    ancestor = _nearest_existing(path.parent)
    for parent in [path.parent, *path.parent.parents]:
        if parent.exists() and not parent.is_dir():
            raise PalomaError(f"{path}: cannot create the {what}: {parent} is not a folder")
        if parent == ancestor:
            break
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise PalomaError(f"{path}: cannot create the {what}: {ancestor} is not writable")


def check_output_file(path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse, before any work, an output file that is a folder, cannot be created, or is one of `inputs`."""
    path = Path(path)
    if path.is_dir():
        raise PalomaError(f"{path}: is a folder; the output here is a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise PalomaError(f"{path}: not writable")
    _check_creatable(path, "output file")
    check_not_overlapping(path, inputs)
    return path


def check_output_dir(path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse, before any work, an output folder that is a file, cannot be created, or overlaps an input."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PalomaError(f"{path}: is a file; the output here is a folder")
    if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
        raise PalomaError(f"{path}: folder not writable")
    _check_creatable(path, "output folder")
    check_not_overlapping(path, inputs)
    return path


def check_not_overlapping(output: str | Path, inputs: Iterable[str | Path]) -> None:
    """An output must not be an input, contain one, or lie inside one: writing it would rewrite the input."""
    out = Path(os.path.realpath(output))
    for given in inputs:
        src = Path(os.path.realpath(given))
        if out == src:
            raise PalomaError(f"{output}: is also an input; choose another output")
        if src.is_relative_to(out):
            raise PalomaError(f"{output}: contains the input {given}; choose an output outside it")
        if src.is_dir() and out.is_relative_to(src):
            raise PalomaError(f"{output}: lies inside the input folder {given}; choose an output outside it")


# ------------------------------------------------------------------------------------ file hashes


HASH_BLOCK = 16 * 2**20
HASH_ALGORITHMS = ("xxh3_128", "sha256")


def cache_root() -> Path:
    """paloma's cache folder ($PALOMA_CACHE, default ~/.cache/paloma), read when used."""
    return Path(os.environ.get("PALOMA_CACHE", Path.home() / ".cache" / "paloma"))


def file_hash(path: Path, algorithm: str = "xxh3_128") -> str:
    """The hex digest of a file's bytes, cached by (path, size, mtime) under `<cache>/file-hashes/`.

    xxh3_128 (fast) identifies model weights; sha256 identifies data files, because it is the hash the hub
    already publishes for LFS files, so a local copy and a hub snapshot of the same bytes agree.
    """
    if algorithm not in HASH_ALGORITHMS:
        raise ValueError(f"unknown file hash {algorithm!r}")
    stat = path.stat()
    tag = "" if algorithm == "xxh3_128" else f"|{algorithm}"  # xxh3 entries keep the key they always had
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}{tag}".encode()).hexdigest()[:32]
    cached = cache_root() / "file-hashes" / key
    if cached.is_file():
        return cached.read_text().strip()
    value = _hash_bytes(path, algorithm)
    try:
        with atomic_write(cached) as out:
            out.write(value + "\n")
    except OSError:
        pass  # an unwritable cache only costs a re-hash next time
    return value


def _hash_bytes(path: Path, algorithm: str) -> str:
    if algorithm == "sha256":
        hasher = hashlib.sha256()
    else:
        import xxhash

        hasher = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            hasher.update(block)
    return hasher.hexdigest()


# ------------------------------------------------------------------------------------ reading


LFS_POINTER = b"version https://git-lfs.github.com/spec/"


def open_binary(path: str | Path) -> IO[bytes]:
    """Open a possibly compressed file (.gz, .zst, .zstd, plain) for reading bytes, line by line.

    A zstd stream reader cannot iterate lines itself; a buffered reader over it can.
    """
    path = Path(path)
    if path.suffix == ".gz":
        return gzip.open(path, "rb")
    if path.suffix in (".zst", ".zstd"):
        import zstandard

        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def check_not_lfs_pointer(path: str | Path) -> None:
    """Refuse a Git LFS pointer (a clone made without Git LFS) in place of the data it stands for."""
    try:
        with open(path, "rb") as handle:
            pointer = handle.read(len(LFS_POINTER)) == LFS_POINTER
    except OSError:
        return  # the reader reports a missing or unreadable file itself
    if pointer:
        raise PalomaError(
            f"{path}: a Git LFS pointer, not the data (the clone was made without Git LFS); "
            "run `git lfs pull` in the clone (or `git lfs install` before cloning)"
        )


def _decompression_error(err: BaseException) -> bool:
    """zlib and zstandard raise their own error types for corrupt (not truncated) data."""
    import zlib

    return isinstance(err, zlib.error) or type(err).__module__.startswith("zstandard")


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; errors name the file and line.

    Lines are decoded one by one, so invalid UTF-8 is reported at its own line (a buffered text reader
    reports the line where its buffer starts, or none). A Git LFS pointer, a truncated or a corrupt
    compressed file is one line naming the file.
    """
    check_not_lfs_pointer(path)
    line_no = 0
    try:
        with open_binary(path) as raw:
            for line_no, data in enumerate(raw, start=1):
                obj = _parse_line(path, line_no, data)
                if obj is not None:
                    yield line_no, obj
    except (OSError, EOFError) as err:
        if isinstance(err, FileNotFoundError):
            raise PalomaError(f"{path}: no such file") from None
        where = f"{path}:{line_no + 1}" if line_no else str(path)
        raise PalomaError(f"{where}: cannot read ({type(err).__name__}: {err})") from None
    except Exception as err:
        if _decompression_error(err):
            kind = "gzip" if Path(path).suffix == ".gz" else "zstd"
            where = f"{path}:{line_no + 1}" if line_no else str(path)
            raise PalomaError(f"{where}: corrupt {kind} data, cannot read ({err})") from None
        raise


def _parse_line(path: str | Path, line_no: int, data: bytes) -> dict | None:
    try:
        line = data.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 4]
        raise PalomaError(f"{path}:{line_no}: invalid UTF-8 at byte {err.start} of the line ({bad!r})") from None
    if not line.strip():
        return None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise PalomaError(f"{path}:{line_no}: invalid JSON ({err.msg})") from None
    if not isinstance(obj, dict):
        raise PalomaError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
    return obj
