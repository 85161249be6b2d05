"""The filter: a pure per-document decision, a per-file runner, and a parallel driver over many files.

Decision (reference §5, training side): split the document on "\\n", look every non-blank paragraph up as the
raw string; one hit removes the whole document. Paragraphs shorter (in UTF-8 bytes) than the shortest indexed
paragraph cannot be in the index and are not hashed, which changes no decision.

Outputs under OUTPUT: `kept/<relative name>` (same format), `removed/<relative name>`, `bad/<relative name>`
(only with --skip-bad-lines), `.decon-state/run.json` (the run: index, options, files; written first),
`.decon-state/<relative name>.json` (written last for each finished unit; `--resume` skips units whose state
matches), and `decon-report.json`. Inputs are opened read-only, and an output folder that is, contains or lies
inside an input is refused. A folder holds one run: a rerun resumes it (`--resume`: same index, options and
files) or removes all of it first (`--overwrite`), so kept/ and removed/ never mix documents of two runs.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from paloma import __version__
from paloma.decon.decision import decide
from paloma.decon.index import ContaminationIndex, read_header
from paloma.decon.readers import (
    Batch,
    dataset_batches,
    datasets_splits,
    input_kind,
    is_datasets_folder,
    read_batches,
)
from paloma.decon.remote import is_url, open_index
from paloma.decon.writers import Sink, parquet_compression, save_dataset_atomically
from paloma.errors import PalomaError
from paloma.io import check_output_dir
from paloma.outputs import Outputs, as_location, check_not_overlapping_urls, filesystem

REPORT_NAME = "decon-report.json"
REPORT_KIND = "paloma decon filter"
REPORT_VERSION = 2  # 1: before the `report` and `report_version` fields and rule sets
STATE_DIR = ".decon-state"
SAMPLE_CHARS = 500
Progress = Callable[[int, int], None]


# ---- units of work ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """One input file (or `datasets` folder) and its name relative to the input root.

    `path` is a local Path, or a URL string for a file in a bucket (any fsspec filesystem).
    """

    path: Path | str
    rel: str
    kind: str


def discover_units(inputs: Iterable[str | Path]) -> list[Unit]:
    """Expand files and folders into units, in a stable order; unsupported files in folders are ignored."""
    units: list[Unit] = []
    for item in map(as_location, inputs):
        if isinstance(item, str):
            units += _remote_units(item)
            continue
        if not item.exists():
            raise PalomaError(f"{item}: no such file or folder")
        kind = input_kind(item)
        if kind is not None:
            units.append(Unit(item, item.name, kind))
        elif item.is_dir():
            units += _walk(item)
        else:
            raise PalomaError(
                f"{item}: unsupported input (JSONL, .jsonl.gz, .jsonl.zst, .parquet or a datasets folder)"
            )
    seen: dict[str, Path] = {}
    for unit in units:
        if unit.rel in seen:
            raise PalomaError(f"{unit.path} and {seen[unit.rel]} would both write {unit.rel}: filter them separately")
        seen[unit.rel] = unit.path
    if not units:
        raise PalomaError("no input files found (JSONL, .jsonl.gz, .jsonl.zst, .parquet or datasets folders)")
    return units


def _remote_units(url: str) -> list[Unit]:
    """The JSONL and Parquet files at a URL: the file itself, or every file below a folder (prefix)."""
    fs, root = filesystem(url)
    scheme = url.split("://", 1)[0]
    try:
        if fs.isfile(root):
            kind = input_kind(Path(root))
            if kind is None:
                raise PalomaError(f"{url}: unsupported input (JSONL, .jsonl.gz, .jsonl.zst or .parquet)")
            return [Unit(url, root.rstrip("/").rsplit("/", 1)[-1], kind)]
        if not fs.isdir(root):
            raise PalomaError(f"{url}: no such file or folder")
        found = fs.find(root)
    except (OSError, ValueError) as err:
        raise PalomaError(f"{url}: cannot list ({type(err).__name__}: {err})") from None
    units = []
    base = root.rstrip("/") + "/"
    for name in sorted(found):
        rel = name[len(base) :] if name.startswith(base) else name.rsplit("/", 1)[-1]
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        if rel.endswith(("/state.json", "/dataset_dict.json")):
            raise PalomaError(f"{url}/{rel}: datasets folders are read from local disk only")
        kind = input_kind(Path(rel))
        if kind is not None:
            units.append(Unit(f"{scheme}://{name.lstrip('/')}" if scheme != "file" else name, rel, kind))
    return units


def _walk(root: Path) -> list[Unit]:
    units = []
    for folder, subdirs, files in os.walk(root):
        here = Path(folder)
        subdirs.sort()
        for name in list(subdirs):
            if name.startswith("."):
                subdirs.remove(name)
            elif is_datasets_folder(here / name):
                subdirs.remove(name)
                units.append(Unit(here / name, (here / name).relative_to(root).as_posix(), "datasets"))
        for name in sorted(files):
            kind = input_kind(here / name)
            if kind and not name.startswith("."):
                units.append(Unit(here / name, (here / name).relative_to(root).as_posix(), kind))
    return sorted(units, key=lambda u: u.rel)


# ---- per-unit statistics ---------------------------------------------------------------------------------
@dataclass
class UnitStats:
    documents: int = 0
    bytes: int = 0
    kept_documents: int = 0
    kept_bytes: int = 0
    removed_documents: int = 0
    removed_bytes: int = 0
    bad_lines: int = 0
    input_bytes: int = 0
    matched_paragraphs: int = 0
    bad_examples: list[dict] = field(default_factory=list)
    domains: dict[str, Counter] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "domains"}
        out["domains"] = {k: dict(v) for k, v in sorted(self.domains.items())}
        return out


class _Recorder:
    """Turns a batch's decisions into statistics, per-domain hits and a few samples of what matched."""

    def __init__(self, index: ContaminationIndex, unit: Unit, samples: int) -> None:
        self.index, self.unit, self.samples = index, unit, samples
        self.stats = UnitStats()
        self._domains: dict[int, set[str]] = {}

    def _domains_of(self, position: int) -> set[str]:
        if position not in self._domains:
            self._domains[position] = {f"{s}/{d}" for s, d in self.index.domains_of(position)}
        return self._domains[position]

    def record(self, batch: Batch, removed: np.ndarray, hits: list[tuple[int, int]], sizes: list[int]) -> None:
        s = self.stats
        s.documents += len(batch.texts)
        s.input_bytes += batch.input_bytes
        size = np.asarray(sizes, dtype=np.int64)
        s.bytes += int(size.sum())
        s.removed_documents += int(removed.sum())
        s.removed_bytes += int(size[removed].sum())
        s.kept_documents = s.documents - s.removed_documents
        s.kept_bytes = s.bytes - s.removed_bytes
        s.matched_paragraphs += len(hits)
        per_doc: dict[int, set[str]] = {}
        for doc, position in hits:
            for key in self._domains_of(position):
                s.domains.setdefault(key, Counter())["paragraph_hits"] += 1
                per_doc.setdefault(doc, set()).add(key)
        for keys in per_doc.values():
            for key in keys:
                s.domains[key]["documents"] += 1
        for doc in sorted(per_doc)[: max(0, self.samples - len(s.samples))]:
            self._sample(batch, doc)
        for location, reason, _ in batch.bad:
            s.bad_lines += 1
            if len(s.bad_examples) < 5:
                s.bad_examples.append({"location": location, "reason": reason})

    def _sample(self, batch: Batch, doc: int) -> None:
        """Quote the document's first matched paragraph; the parent process adds its origins to the report."""
        for paragraph, position in self.index.matches(batch.texts[doc])[:1]:
            self.stats.samples.append(
                {
                    "file": self.unit.rel,
                    "location": batch.locations[doc],
                    "id": batch.ids[doc],
                    "paragraph": paragraph[:SAMPLE_CHARS],
                    "position": position,
                }
            )


# ---- running one unit ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FilterOptions:
    text_field: str = "text"
    dry_run: bool = False
    skip_bad_lines: bool = False
    samples: int = 20
    compression_level: int | None = None

    def fingerprint(self) -> dict:
        """Options that change outputs: a unit finished under other options is redone."""
        return {"text_field": self.text_field, "skip_bad_lines": self.skip_bad_lines}


def filter_unit(
    index: ContaminationIndex,
    unit: Unit,
    output: Outputs | None,
    options: FilterOptions,
    progress: Progress | None = None,
) -> UnitStats:
    """Filter one unit; writes kept/removed/bad outputs unless dry-run. A pure function of (index, unit)."""
    recorder = _Recorder(index, unit, options.samples)
    if unit.kind == "datasets":
        _filter_datasets(index, unit, output, options, recorder, progress)
        return recorder.stats
    with contextlib.ExitStack() as stack:
        sinks = None
        if not options.dry_run and output is not None:
            sinks = {
                name: Sink(stack, output, f"{name}/{unit.rel}", options.compression_level)
                for name in ("kept", "removed", "bad")
            }
        compression = parquet_compression(unit.path) if unit.kind == "parquet" and sinks else None
        schema = None
        for batch in read_batches(unit.path, unit.kind, options.text_field, options.skip_bad_lines):
            removed, hits, sizes = decide(index, batch.texts)
            recorder.record(batch, removed, hits, sizes)
            if sinks is not None:
                schema = _write(batch, removed, sinks, compression)
            if progress:
                progress(len(batch.texts) + len(batch.bad), batch.input_bytes)
        if sinks is not None:
            sinks["kept"].ensure_exists(schema, compression or "snappy")
    return recorder.stats


def _write(batch: Batch, removed: np.ndarray, sinks: dict[str, Sink], compression: str | None) -> Any:
    if batch.table is None:
        sinks["kept"].write_lines([line for line, r in zip(batch.raw, removed, strict=True) if not r])
        sinks["removed"].write_lines([line for line, r in zip(batch.raw, removed, strict=True) if r])
        sinks["bad"].write_lines([raw for _, _, raw in batch.bad if raw is not None])
        return None
    import pyarrow as pa

    good_rows = np.setdiff1d(np.arange(batch.table.num_rows), np.asarray(batch.bad_rows, dtype=np.int64))
    sinks["kept"].write_table(batch.table.take(pa.array(good_rows[~removed])), compression)
    if removed.any():
        sinks["removed"].write_table(batch.table.take(pa.array(good_rows[removed])), compression)
    if batch.bad_rows:
        sinks["bad"].write_table(batch.table.take(pa.array(batch.bad_rows)), compression)
    return batch.table.schema


def _filter_datasets(
    index: ContaminationIndex,
    unit: Unit,
    output: Outputs | None,
    options: FilterOptions,
    recorder: _Recorder,
    progress: Progress | None,
) -> None:
    """A `datasets` folder (one Dataset, or a DatasetDict): split by split, saved back with `save_to_disk`."""
    from datasets import DatasetDict

    splits = datasets_splits(unit.path)
    outputs: dict[str, dict] = {"kept": {}, "removed": {}, "bad": {}}
    for split, dataset in splits.items():
        where = unit.path if split is None else unit.path / split
        chosen: dict[str, list[int]] = {"kept": [], "removed": [], "bad": []}
        for batch in dataset_batches(where, dataset, options.text_field, options.skip_bad_lines):
            removed, hits, sizes = decide(index, batch.texts)
            recorder.record(batch, removed, hits, sizes)
            for location, r in zip(batch.locations, removed, strict=True):
                chosen["removed" if r else "kept"].append(location)
            chosen["bad"] += [location for location, _, _ in batch.bad]
            if progress:
                progress(len(batch.texts) + len(batch.bad), batch.input_bytes)
        for name, rows in chosen.items():
            outputs[name][split] = dataset.select(rows)
    if options.dry_run or output is None:
        return
    for name, parts in outputs.items():
        if name != "kept" and all(len(part) == 0 for part in parts.values()):
            continue
        result = parts[None] if None in parts else DatasetDict(parts)
        save_dataset_atomically(result, output.root / name / unit.rel)


# ---- resumable, parallel driver --------------------------------------------------------------------------
def _state_name(unit: Unit) -> str:
    return f"{STATE_DIR}/{unit.rel}.json"


def _unit_signature(unit: Unit, index: ContaminationIndex, options: FilterOptions) -> dict:
    """What identifies an input's version: size and modification time (locally), size and ETag (buckets)."""
    if isinstance(unit.path, Path):
        stat = unit.path.stat()
        version = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    else:
        fs, remote = filesystem(unit.path)
        info = fs.info(remote)
        tag = info.get("ETag") or info.get("etag") or info.get("md5Hash") or info.get("mtime") or info.get("created")
        version = {"size": info.get("size"), "version": str(tag)}
    return {**version, "index": index.checksum, "options": options.fingerprint()}


def _finished(output: Outputs, unit: Unit, signature: dict) -> dict | None:
    state = output.read_json(_state_name(unit))
    if isinstance(state, dict) and state.get("signature") == signature and isinstance(state.get("stats"), dict):
        return state["stats"]
    return None


def _run_unit(
    index: ContaminationIndex, unit: Unit, output: Outputs | None, options: FilterOptions, progress: Progress | None
) -> dict:
    """Filter one unit and, when writing, mark it finished (the state file is the last thing written)."""
    signature = _unit_signature(unit, index, options) if output is not None and not options.dry_run else None
    stats = filter_unit(index, unit, output, options, progress).to_dict()
    if signature is not None:
        output.write_json(_state_name(unit), {"unit": unit.rel, "signature": signature, "stats": stats})
    return stats


_WORKER: dict[str, Any] = {}


def _worker_init(index_path: str, progress_queue: Any) -> None:
    _WORKER["index"] = ContaminationIndex.load(index_path, verify=False)  # the parent verified it
    _WORKER["queue"] = progress_queue


def _worker_run(unit: Unit, output: Outputs | None, options: FilterOptions) -> dict:
    progress_queue = _WORKER["queue"]
    return _run_unit(_WORKER["index"], unit, output, options, lambda d, b: progress_queue.put((d, b)))


def filter_files(
    index: ContaminationIndex | str | Path,
    inputs: Iterable[str | Path],
    output: str | Path | None,
    *,
    text_field: str = "text",
    workers: int = 1,
    dry_run: bool = False,
    skip_bad_lines: bool = False,
    samples: int = 20,
    compression_level: int | None = None,
    progress: bool = True,
    resume: bool = False,
    overwrite: bool = False,
) -> dict:
    """Remove contaminated documents from every input; returns (and, with an output folder, writes) the report.

    An output folder that already holds a run is refused unless `resume` (continue it: same index, options
    and inputs; finished files are skipped) or `overwrite` (its kept/, removed/, bad/, state and report are
    removed first). Everything is checked before the first document is read. With `workers > 1` files run in
    separate processes that memory-map the same index file.
    """
    if workers < 1:
        raise PalomaError(f"--workers must be at least 1, got {workers}")
    if samples < 0:
        raise PalomaError(f"--samples must be at least 0, got {samples}")
    if output is None and not dry_run:
        raise PalomaError("--output is required unless --dry-run")
    if resume and overwrite:
        raise PalomaError("--resume and --overwrite exclude each other")
    inputs = [as_location(p) for p in inputs]
    out = Outputs(output) if output is not None else None
    index_path = index.path if isinstance(index, ContaminationIndex) else None if is_url(index) else Path(index)
    if index_path is not None:
        read_header(index_path)  # a missing file or a folder is named as the index, before the output checks
    if out is not None:
        _check_output(out, inputs, index_path)
    units = discover_units(inputs)
    check_compression_level(compression_level, units)
    index = open_index(index)
    options = FilterOptions(text_field, dry_run, skip_bad_lines, samples, compression_level)
    created = out is not None and out.is_local and not out.root.exists()
    if out is not None:
        prepare_output(out, index, units, options, resume=resume, overwrite=overwrite)
    started = time.perf_counter()
    results: dict[str, dict] = {}
    todo = []
    for unit in units:
        done = _finished(out, unit, _unit_signature(unit, index, options)) if resume and out else None
        if done is not None:
            results[unit.rel] = {**done, "resumed": True}
            continue
        if out is not None and not dry_run:
            clear_unit_outputs(out, unit)
        todo.append(unit)
    bar = _progress_bar(todo, progress)
    try:
        if workers == 1 or len(todo) <= 1:
            for unit in todo:
                results[unit.rel] = _run_unit(index, unit, out, options, bar.update if bar else None)
        else:
            _run_parallel(index, todo, out, options, workers, bar, results)
    except (PalomaError, OSError) as err:
        raise _after_failure(err, out, results, created, dry_run) from None
    finally:
        if bar:
            bar.close()
    report = build_report(index, units, results, options, time.perf_counter() - started, workers)
    if out is not None:
        out.write_json(REPORT_NAME, report)
    return report


def _check_output(out: Outputs, inputs: list[Path | str], index_path: Path | None) -> None:
    """Refuse an output that is, contains or lies inside an input (or contains the index), before any work."""
    if out.is_local:
        check_output_dir(out.root, [*(p for p in inputs if isinstance(p, Path)), *([index_path] if index_path else [])])
        return
    check_not_overlapping_urls(str(out.root), inputs)


# ---- the output folder: one run at a time, resumed or started over, never mixed ---------------------------
OUTPUT_PARTS = ("kept", "removed", "bad")
RUN_NAME = "run.json"
_LEVELS = {"gzip": (0, 9), "zstd": (0, 22)}


def _codec(path: Path | str) -> str | None:
    if str(path).endswith(".gz"):
        return "gzip"
    return "zstd" if str(path).endswith((".zst", ".zstd")) else None


def check_compression_level(level: int | None, units: list[Unit]) -> None:
    """Refuse, before any work, a level outside the range of a codec the outputs will be written with."""
    if level is None:
        return
    for unit in units:
        codec = _codec(unit.path)
        if codec and not _LEVELS[codec][0] <= level <= _LEVELS[codec][1]:
            low, high = _LEVELS[codec]
            raise PalomaError(f"--compression-level {level}: {codec} levels are {low}-{high} ({unit.path})")


def _run_manifest(index: ContaminationIndex, units: list[Unit], options: FilterOptions) -> dict:
    rules = index.header["rules"]
    return {
        "index": index.checksum,
        "rules": {"name": rules.get("name"), "version": rules.get("version"), "parameters": rules.get("parameters")},
        "options": options.fingerprint(),
        "files": [unit.rel for unit in units],
    }


def _held_parts(out: Outputs) -> list[str]:
    """The parts of `out` a run writes that exist now (the folder may hold other, unrelated files)."""
    return [name for name in (*OUTPUT_PARTS, STATE_DIR, REPORT_NAME) if out.exists(name)]


def prepare_output(
    out: Outputs, index: ContaminationIndex, units: list[Unit], options: FilterOptions, *, resume: bool, overwrite: bool
) -> None:
    """Make `out` ready for this run: fresh, resumed (same index, options and files) or cleared (overwrite)."""
    held = _held_parts(out)
    manifest = _run_manifest(index, units, options)
    if resume:
        _check_resumable(out, held, manifest, options)
        return
    if held and not overwrite:
        earlier = _read_manifest(out)
        cited = f" (index {earlier['index']})" if earlier else ""
        raise PalomaError(
            f"{out}: holds an earlier `paloma decon filter` run{cited}; "
            "use --resume to continue it or --overwrite to start over"
        )
    for part in held:
        out.remove(part)
    if not options.dry_run:
        out.write_json(f"{STATE_DIR}/{RUN_NAME}", manifest)


def _check_resumable(out: Outputs, held: list[str], manifest: dict, options: FilterOptions) -> None:
    if options.dry_run:
        raise PalomaError("--resume continues a run that writes documents; a dry run has nothing to resume")
    earlier = _read_manifest(out)
    if earlier is None:
        if held:
            raise PalomaError(f"{out}: holds a run without run state, which cannot be resumed; use --overwrite")
        raise PalomaError(f"{out}: holds no earlier run to resume; run without --resume")
    for key, what in (("index", "index"), ("options", "options"), ("files", "input files")):
        if earlier.get(key) != manifest[key]:
            raise PalomaError(
                f"{out}: holds a run with other {what} ({_difference(earlier.get(key), manifest[key])}); "
                "--resume continues only the same run: use --overwrite to start over, or another folder"
            )


def _difference(earlier: Any, now: Any) -> str:
    if isinstance(earlier, list) and isinstance(now, list):
        gone, new = sorted(set(earlier) - set(now)), sorted(set(now) - set(earlier))
        parts = [f"not given now: {', '.join(gone[:3])}" if gone else "", f"new: {', '.join(new[:3])}" if new else ""]
        return "; ".join(p for p in parts if p) or "another order"
    return f"{earlier} then, {now} now"


def _read_manifest(out: Outputs) -> dict | None:
    manifest = out.read_json(f"{STATE_DIR}/{RUN_NAME}")
    return manifest if isinstance(manifest, dict) and "index" in manifest else None


def _after_failure(
    err: PalomaError | OSError, out: Outputs | None, results: dict, created: bool, dry_run: bool
) -> PalomaError | OSError:
    """Leave nothing behind when no file was finished; otherwise say how to continue."""
    if out is None or dry_run:
        return err
    if not results:
        with contextlib.suppress(OSError):
            out.remove(f"{STATE_DIR}/{RUN_NAME}")
        out.prune_empty_folders([*OUTPUT_PARTS, STATE_DIR], include_root=created)
        return err
    if isinstance(err, PalomaError):
        finished = sum(1 for r in results.values() if not r.get("resumed"))
        return PalomaError(f"{err} ({finished} files finished before: fix it and rerun with --resume to keep them)")
    return err


def clear_unit_outputs(out: Outputs, unit: Unit) -> None:
    """Remove what an earlier, unfinished or changed run of `unit` left: its outputs, state and temporaries.

    A redone file may remove nothing this time, so its old removed/ file would otherwise stay beside the new
    kept/ file and hold documents twice.
    """
    for name in [*(f"{part}/{unit.rel}" for part in OUTPUT_PARTS), _state_name(unit)]:
        out.remove(name)
        out.clean_temporaries(name)


def _run_parallel(
    index: ContaminationIndex,
    units: list[Unit],
    out: Outputs | None,
    options: FilterOptions,
    workers: int,
    bar: Any,
    results: dict[str, dict],
) -> dict[str, dict]:
    """Filter units in worker processes; finished units go into `results` as they come (also on failure)."""
    if index.path is None:
        raise PalomaError("parallel filtering needs an index saved to a file (workers memory-map it)")
    context = multiprocessing.get_context("spawn")
    progress_queue = context.Queue()
    with ProcessPoolExecutor(
        max_workers=min(workers, len(units)),
        mp_context=context,
        initializer=_worker_init,
        initargs=(str(index.path), progress_queue),
    ) as pool:
        pending: dict[Future, Unit] = {pool.submit(_worker_run, u, out, options): u for u in units}
        try:
            while pending:
                done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
                _drain(progress_queue, bar)
                for future in done:
                    results[pending.pop(future).rel] = future.result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
        _drain(progress_queue, bar)
    return results


def _drain(progress_queue: Any, bar: Any) -> None:
    while True:
        try:
            documents, nbytes = progress_queue.get_nowait()
        except queue.Empty:
            return
        if bar:
            bar.update(documents, nbytes)


class _Bar:
    """A tqdm bar over uncompressed input bytes (MB/s) that also shows documents per second."""

    def __init__(self, total_files: int) -> None:
        from tqdm.auto import tqdm

        self.tqdm = tqdm(desc=f"decon filter ({total_files} files)", unit="B", unit_scale=True, unit_divisor=1000)
        self.documents = 0
        self.start = time.perf_counter()

    def update(self, documents: int, nbytes: int) -> None:
        self.documents += documents
        rate = self.documents / max(time.perf_counter() - self.start, 1e-9)
        self.tqdm.set_postfix_str(f"{self.documents:,} docs, {rate:,.0f} docs/s", refresh=False)
        self.tqdm.update(nbytes)

    def close(self) -> None:
        self.tqdm.close()


def _progress_bar(units: list[Unit], enabled: bool) -> _Bar | None:
    return _Bar(len(units)) if enabled and units else None


# ---- the report ------------------------------------------------------------------------------------------
def _with_origins(index: ContaminationIndex, sample: dict) -> dict:
    """Replace a sample's index position by the evaluation documents (up to three) that hold the paragraph."""
    out = {k: v for k, v in sample.items() if k != "position"}
    origins = index.origins(sample["position"])
    return {**out, "origins": [o.to_dict() for o in origins[:3]], "origin_count": len(origins)}


def build_report(
    index: ContaminationIndex,
    units: list[Unit],
    results: dict[str, dict],
    options: FilterOptions,
    seconds: float,
    workers: int,
) -> dict:
    """Totals, per-domain hits and samples over all units, with the index's identity for citation."""
    totals: Counter = Counter()
    domains: dict[str, Counter] = {}
    samples: list[dict] = []
    files = []
    for unit in units:
        stats = results[unit.rel]
        for key in ("documents", "bytes", "kept_documents", "kept_bytes", "removed_documents", "removed_bytes",
                    "bad_lines", "input_bytes", "matched_paragraphs"):  # fmt: skip
            totals[key] += stats[key]
        for key, counts in stats["domains"].items():
            domains.setdefault(key, Counter()).update(counts)
        samples += [
            _with_origins(index, sample) for sample in stats["samples"][: max(0, options.samples - len(samples))]
        ]
        files.append({"file": unit.rel, "format": unit.kind, **{k: v for k, v in stats.items() if k != "samples"}})
    documents, nbytes = totals["documents"], totals["bytes"]
    return {
        "report": REPORT_KIND,
        "report_version": REPORT_VERSION,
        "paloma_version": __version__,
        "dry_run": options.dry_run,
        "index": index.summary(),
        "options": {**options.fingerprint(), "compression_level": options.compression_level, "workers": workers},
        "totals": {
            **dict(totals),
            "files": len(units),
            "removal_rate_documents": totals["removed_documents"] / documents if documents else 0.0,
            "removal_rate_bytes": totals["removed_bytes"] / nbytes if nbytes else 0.0,
            "seconds": round(seconds, 3),
        },
        "hits_by_domain": [
            {"source": key.split("/", 1)[0], "domain": key.split("/", 1)[1], **dict(counts)}
            for key, counts in sorted(domains.items(), key=lambda kv: (-kv[1]["documents"], kv[0]))
        ],
        "samples": samples,
        "files": files,
    }
