"""`paloma baselines tokenize`: a corpus → OLMo's token files, as a datatrove pipeline, before training.

    reader(s) → count → [Paloma decontamination filter] → tokenizer + memmap writer

The steps are datatrove `PipelineStep`s, so the same list runs on datatrove's local executor here (`tokenize`)
and on its Slurm or Ray executors unchanged (`tokenize_pipeline`, see docs/baselines.md). The corpus is split
into `tasks` shards by file (datatrove's readers: task r reads files r, r+T, ...); each task writes its own
token files `part-<task>-<k>.npy` (OLMo's flat memmap format; a new file after data.shard_tokens tokens) and
then `part-<task>.json`, the record that marks it complete. A killed run resumes by task: rerunning the same
command skips the tasks whose record exists. The folder's first file, `tokens.json`, is the plan (corpus,
tokenizer, dtype, decontamination index, tasks); a rerun with another plan is refused, so a folder never
mixes tokens of two corpora or tokenizers.

Documents are tokenized without special tokens and each is followed by EOS, as Dolma's tokenizer and OLMo's
data expect; empty documents are skipped (datatrove's readers drop them).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datatrove.data import DocumentsPipeline
from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.base import PipelineStep

from paloma.errors import PalomaError
from paloma.io import check_output_dir
from paloma.outputs import Outputs, as_location, check_not_overlapping_urls, filesystem, is_url
from paloma_baselines.config import Config, DataConfig, resolve_config
from paloma_baselines.data import (
    LOCAL_SUFFIXES,
    TOKENS_FORMAT,
    TOKENS_PLAN,
    check_hub_corpus,
    check_tokenizer,
    load_tokenizer,
    local_files,
    read_token_folder,
    task_record_name,
    token_dtype,
)

LOGS = "logs"  # datatrove's logging folder (task logs, stats, completions) inside the output


# ---------------------------------------------------------------------------------------------- pipeline steps


class CountDocuments(PipelineStep):
    """Passes documents on and counts them: the number read, before decontamination drops any."""

    name = "🦜 count documents"
    type = "📊 - STATS"

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        for document in data:
            self.count += 1
            yield document


class OlmoTokenWriter(PipelineStep):
    """Tokenize documents (each followed by EOS) and write OLMo's flat token files; the pipeline's last step.

    Files are written through `paloma.io.atomic_write`, so a killed task leaves no partial token file, and
    the task's record (`part-<task>.json`, with its files, documents and tokens) is written last.
    `counter` is the pipeline's `CountDocuments` step, for the number of documents read.
    """

    name = "🦜 OLMo token files"
    type = "🔢 - TOKENIZER"

    def __init__(
        self,
        output_dir: str,
        tokenizer: str,
        eos_token_id: int,
        dtype: str,
        shard_tokens: int,
        counter: CountDocuments | None = None,
        batch_size: int = 1024,
    ) -> None:
        super().__init__()
        self.output_dir, self.tokenizer, self.eos_token_id = output_dir, tokenizer, eos_token_id
        self.dtype, self.shard_tokens, self.counter, self.batch_size = dtype, shard_tokens, counter, batch_size

    def run(self, data: DocumentsPipeline, rank: int = 0, world_size: int = 1) -> DocumentsPipeline:
        started, cpu_started = time.perf_counter(), time.process_time()
        tokenizer = load_tokenizer(self.tokenizer)
        eos = np.asarray([self.eos_token_id], dtype=self.dtype)
        documents = 0
        outputs = Outputs(self.output_dir)
        with _TaskFiles(outputs, rank, self.dtype, self.shard_tokens) as files:
            for batch in _batches(data, self.batch_size):
                with self.track_time(unit="batch"):
                    encoded = tokenizer([d.text for d in batch], add_special_tokens=False)["input_ids"]
                    for ids in encoded:
                        files.write(np.concatenate([np.asarray(ids, dtype=self.dtype), eos]))
                documents += len(batch)
                self.stat_update("documents", value=len(batch))
        self.stat_update("tokens", value=files.tokens)
        record = {
            "task": rank,
            "files": files.done,
            "documents_read": self.counter.count if self.counter is not None else documents,
            "documents_kept": documents,
            "tokens": files.tokens,
            # the task's whole run (reading, decontaminating, tokenizing, writing): for tokens/s per worker
            "seconds": round(time.perf_counter() - started, 3),
            "cpu_seconds": round(time.process_time() - cpu_started, 3),
        }
        outputs.write_json(task_record_name(rank), record)
        yield from ()


@contextlib.contextmanager
def _silenced_stderr() -> Iterator[None]:
    """Send this process's stderr (file descriptor 2) to /dev/null for a while. An error still reaches the
    caller as an exception."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _batches(data: DocumentsPipeline, size: int) -> Iterator[list]:
    batch = []
    for document in data:
        batch.append(document)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _TaskFiles:
    """One task's token files: part-<task>-00000.npy, -00001, ...; a new one once `shard_tokens` are written."""

    def __init__(self, folder: Outputs, task: int, dtype: str, shard_tokens: int) -> None:
        self.folder, self.task, self.dtype, self.shard_tokens = folder, task, dtype, shard_tokens
        self.done: list[dict] = []
        self.tokens = 0
        self._stack: contextlib.ExitStack | None = None
        self._handle = None
        self._in_file = 0

    def write(self, ids: np.ndarray) -> None:
        if self._stack is not None and self._in_file >= self.shard_tokens:
            self._finish()
        if self._stack is None:
            self._stack = contextlib.ExitStack()
            name = f"part-{self.task:05d}-{len(self.done):05d}.npy"
            self._handle = self._stack.enter_context(self.folder.open(name, "wb"))
            self._name, self._in_file = name, 0
        self._handle.write(ids.tobytes())
        self._in_file += len(ids)
        self.tokens += len(ids)

    def _finish(self) -> None:
        self._stack.close()  # renames the finished file into place
        self.done.append({"file": self._name, "tokens": self._in_file})
        self._stack = None

    def __enter__(self) -> _TaskFiles:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._stack is None:
            return
        if exc[0] is None:
            self._finish()
        else:
            self._stack.__exit__(*exc)  # deletes the unfinished file


# ---------------------------------------------------------------------------------------------- readers


def _strict_adapter(self, data: dict, path: str, id_in_file: int | str) -> dict:
    """datatrove's default adapter, but a record without a string text field is an error naming its place."""
    text = data.get(self.text_key)
    if not isinstance(text, str):
        root = getattr(getattr(self, "data_folder", None), "path", None)
        where = f"{root}/{path}" if root else path
        line = id_in_file + 1 if isinstance(id_in_file, int) else id_in_file
        raise PalomaError(f"{where}:{line}: field {self.text_key!r} is missing or not a string")
    return self._default_adapter(data, path, id_in_file)


CORPUS_LISTING = "corpus-files-{}.txt"  # in the output folder: the files reader k reads, relative to its root


def corpus_files(corpus: str) -> list[Path | str] | None:
    """The corpus's files: local (file, folder, glob), in a bucket (a URL of a file, folder or glob on any
    fsspec filesystem), or listed in a `.txt` file (local or a URL; one URL or path a line, relative ones
    against the list's folder: how Dolma and RedPajama publish their files); several of these comma-separated;
    None for a hub dataset id."""
    parts = [part.strip() for part in corpus.split(",") if part.strip()]
    if len(parts) > 1:
        found = [_one_location(part) for part in parts]
        if any(files is None for files in found):
            raise PalomaError(f"corpus {corpus}: a hub dataset id cannot be combined with other locations")
        return [f for files in found for f in files]
    return _one_location(corpus)


def _one_location(corpus: str) -> list[Path | str] | None:
    if corpus.startswith("file://"):
        corpus = str(as_location(corpus))
    if corpus.endswith(".txt"):
        return _listed_files(corpus)
    if is_url(corpus):
        return _bucket_files(corpus)
    return local_files(corpus)


def _listed_files(listing: str) -> list[Path | str]:
    try:
        if is_url(listing):
            fs, path = filesystem(listing)
            text = fs.cat_file(path).decode("utf-8")
        else:
            text = Path(listing).expanduser().read_text(encoding="utf-8")
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise PalomaError(f"corpus {listing}: cannot read the file list ({type(err).__name__}: {err})") from None
    base = listing.rsplit("/", 1)[0] if "/" in listing else "."
    files: list[Path | str] = []
    for line_no, line in enumerate(text.splitlines(), start=1):
        entry = line.strip()
        if not entry or entry.startswith("#"):
            continue
        if not entry.endswith(LOCAL_SUFFIXES):
            raise PalomaError(f"{listing}:{line_no}: {entry} is not a JSONL(.gz/.zst) or Parquet file")
        if entry.startswith("file://"):  # a local file: read with the others, by one reader
            files.append(as_location(entry))
        elif is_url(entry):
            files.append(entry)
        elif is_url(base):
            files.append(f"{base}/{entry}")
        else:
            files.append((Path(base).expanduser() / entry) if not Path(entry).is_absolute() else Path(entry))
    if not files:
        raise PalomaError(f"corpus {listing}: the file list is empty")
    return files


def _bucket_files(url: str) -> list[Path | str]:
    """A URL's corpus files: the file, every corpus file below a folder (prefix), or a glob's matches."""
    scheme = url.split("://", 1)[0]
    try:
        fs, path = filesystem(url)
        if any(ch in path for ch in "*?["):
            found = fs.glob(path)
        elif fs.isfile(path):
            found = [path]
        elif fs.isdir(path):
            found = fs.find(path)
        else:
            raise PalomaError(f"corpus {url}: no such file or folder")
    except (OSError, ValueError) as err:
        raise PalomaError(f"corpus {url}: cannot list it ({type(err).__name__}: {err})") from None
    files = sorted(f"{scheme}://{name.lstrip('/')}" for name in found if name.endswith(LOCAL_SUFFIXES))
    if not files:
        raise PalomaError(f"corpus {url}: holds no {', '.join(LOCAL_SUFFIXES)} files")
    return files


def _reader_groups(files: list[Path | str]) -> list[tuple[str, str, list[str]]]:
    """(kind, root folder, names relative to it) for datatrove's readers: one per kind of file and per
    filesystem (local disk, or a URL's scheme and bucket or host)."""
    kinds = {"parquet": (".parquet",), "zstd": (".zst", ".zstd")}
    groups: dict[tuple[str, str], list[str]] = {}
    for f in files:
        name = str(Path(f).resolve()) if isinstance(f, Path) else f
        kind = next((k for k, ends in kinds.items() if name.endswith(ends)), "infer")
        where = "/".join(name.split("/")[:3]) if is_url(name) else ""
        groups.setdefault((kind, where), []).append(name)
    out = []
    for (kind, _), names in groups.items():
        folders = [name.split("/")[:-1] for name in names]
        depth = next((i for i, parts in enumerate(zip(*folders, strict=False)) if len(set(parts)) > 1), None)
        root = "/".join(folders[0][: min(map(len, folders)) if depth is None else depth])
        out.append((kind, root, [name[len(root) :].lstrip("/") for name in names]))
    return out


def corpus_readers(data: DataConfig, files: list[Path | str] | None, output: Outputs, limit: int) -> list:
    """datatrove readers of the corpus: one per kind of file and filesystem (their file list written into the
    output folder as corpus-files-<k>.txt, which every worker reads), or one streaming reader per configuration
    of a hub dataset. `limit` is documents per task (-1: all)."""
    from datatrove.pipeline.readers import HuggingFaceDatasetReader, JsonlReader, ParquetReader

    common = {"limit": limit, "text_key": data.text_field, "adapter": _strict_adapter}
    if files is None:
        names = [n.strip() for n in data.corpus_config.split(",")] if data.corpus_config else [None]
        options = [{"name": n, "split": data.split, "data_files": data.data_files} for n in names]
        return [HuggingFaceDatasetReader(data.corpus, o, streaming=True, **common) for o in options]
    readers = []
    for k, (kind, root, names) in enumerate(_reader_groups(files)):
        listing = CORPUS_LISTING.format(k)
        with output.open(listing, "wb") as handle:
            handle.write("".join(f"{name}\n" for name in names).encode("utf-8"))
        where = str(output.location(listing))
        if kind == "parquet":
            readers.append(ParquetReader(root, paths_file=where, **common))
        else:
            readers.append(JsonlReader(root, paths_file=where, compression=kind, **common))
    return readers


# ---------------------------------------------------------------------------------------------- the plan


@dataclass
class Plan:
    """What a tokenize folder holds (written to tokens.json before any task runs) and how to make it."""

    config: Config
    output_dir: Path | str  # a local folder or a bucket URL
    files: list[Path | str] | None  # corpus files (local paths or URLs); None for a hub dataset
    tokenizer: Any
    record: dict


def make_plan(config: Config, output_dir: Path | str, tasks: int, limit: int | None) -> Plan:
    """Check every input and the output location (before any work) and describe the folder to write."""
    from paloma.eval.tokens import tokenizer_hash

    d = config.data
    if not d.corpus:
        raise PalomaError(f"config {config.name}: data.corpus is empty: name a dataset id or a local path (--corpus)")
    files = corpus_files(d.corpus)
    if files is not None and tasks > len(files):
        raise PalomaError(
            f"--tasks {tasks}: the corpus has {len(files)} file(s), and datatrove splits a corpus between tasks "
            f"by file; use --tasks {len(files)} or fewer"
        )
    # The corpus folder too: token files inside it would be read as corpus by the next run over it.
    given = [d.corpus, d.decontamination_index, d.tokenizer]
    if is_url(output_dir):
        check_not_overlapping_urls(str(output_dir), [*(files or []), *(p for p in given if p and is_url(p))])
    else:
        local = [f for f in files or [] if isinstance(f, Path)]
        check_output_dir(output_dir, [*local, *(Path(p).expanduser() for p in given if _exists_locally(p))])
    out = Outputs(output_dir)
    if not out.is_empty() and not out.exists(TOKENS_PLAN):
        raise PalomaError(f"{output_dir}: exists, is not empty and is not a tokenize folder; choose a new --output")
    decontamination = _decontamination_record(d.decontamination_index)
    if files is None:
        check_hub_corpus(d)
    tokenizer = load_tokenizer(d.tokenizer)
    check_tokenizer(tokenizer, config)
    record = {
        "format": TOKENS_FORMAT,
        "dtype": token_dtype(config.model.vocab_size),
        "eos_token_id": config.model.eos_token_id,
        "tokenizer": {"name": d.tokenizer, "hash": tokenizer_hash(tokenizer), "vocab_size": len(tokenizer)},
        "corpus": _corpus_record(d, files),
        "decontamination": decontamination,
        "tasks": tasks,
        "documents_per_task_limit": limit,
        "shard_tokens": d.shard_tokens,
    }
    return Plan(config, output_dir, files, tokenizer, record)


def _exists_locally(path: str | None) -> bool:
    return bool(path) and not is_url(path) and Path(path).expanduser().exists()


def _corpus_record(d: DataConfig, files: list[Path | str] | None) -> dict:
    """The corpus as the plan names it: its files, with their sizes where the filesystem lists them cheaply
    (local files, buckets; not every file of an https list), so a changed file is a new plan."""
    if files is None:
        return {"id": d.corpus, "config": d.corpus_config, "data_files": d.data_files, "split": d.split,
                "text_field": d.text_field}  # fmt: skip
    files_record = [_file_record(f) for f in files]
    return {"path": d.corpus, "text_field": d.text_field, "files": files_record}


def _file_record(f: Path | str) -> dict:
    if isinstance(f, Path):
        return {"path": str(f.resolve()), "bytes": f.stat().st_size}
    if f.startswith(("http://", "https://")):
        return {"path": f}
    fs, path = filesystem(f)
    return {"path": f, "bytes": fs.info(path).get("size")}


def _decontamination_record(index: str | None) -> dict | None:
    """The index the filter applies (its checksum verified once, here), or None."""
    if not index:
        return None
    from paloma.decon import ContaminationIndex

    index_path = Path(index).expanduser().resolve()
    return {"index": str(index_path), "checksum": ContaminationIndex.load(index_path).checksum}


def _claim_folder(plan: Plan, overwrite: bool) -> None:
    """Resume a folder of the same plan; start a tokenize folder over with `overwrite`; refuse another plan.

    (A non-empty folder that is not a tokenize folder was refused before: it is never deleted.)
    """
    out = Outputs(plan.output_dir)
    if not out.exists(TOKENS_PLAN):  # new or empty: anything else was refused by make_plan
        return
    old = out.read_json(TOKENS_PLAN)
    if overwrite:
        out.remove("")
    elif old != plan.record:
        differs = next(k for k in plan.record if old.get(k) != plan.record[k])
        raise PalomaError(
            f"{out}: holds tokens of another plan ({differs} differs); rerun the command that wrote it to "
            "finish it, choose a new --output, or pass --overwrite to start over"
        )


def tokenize_pipeline(plan: Plan) -> list:
    """The datatrove steps of a plan: run them on any datatrove executor with tasks=plan.record['tasks']."""
    d = plan.config.data
    limit = plan.record["documents_per_task_limit"] or -1
    steps: list = corpus_readers(d, plan.files, Outputs(plan.output_dir), limit)
    counter = CountDocuments()
    steps.append(counter)
    if plan.record["decontamination"]:
        from paloma.decon.datatrove import PalomaDeconFilter

        steps.append(PalomaDeconFilter(plan.record["decontamination"]["index"], verify=False))
    steps.append(
        OlmoTokenWriter(
            str(plan.output_dir), d.tokenizer, plan.config.model.eos_token_id, plan.record["dtype"],
            d.shard_tokens, counter,
        )
    )  # fmt: skip
    return steps


# ---------------------------------------------------------------------------------------------- running it


@dataclass
class TokenizeResult:
    output_dir: Path | str
    tasks: int
    files: int
    documents_read: int
    documents_removed: int
    tokens: int
    seconds: float


class QuietLocalExecutor(LocalPipelineExecutor):
    """datatrove's local executor, its logs kept out of stderr: each task logs to <output>/logs only (as
    always), and the executor's own summary is not printed. For `paloma demo` and `tokenize --quiet`."""

    def _launch_run_for_rank(self, rank: int, ranks_q, completed=None, completed_lock=None):
        with _silenced_stderr():
            return super()._launch_run_for_rank(rank, ranks_q, completed, completed_lock)

    def run(self):
        from datatrove.utils.logging import logger

        logger.disable("datatrove")  # this process's messages (the workers' are silenced above)
        try:
            return super().run()
        finally:
            logger.enable("datatrove")


def tokenize(
    config: Config | str,
    output_dir: str | Path | None = None,
    *,
    overrides: dict | list[str] | None = None,
    corpus: str | None = None,
    tokenizer: str | None = None,
    decontamination_index: str | None = None,
    tasks: int = 1,
    workers: int = 1,
    limit: int | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> TokenizeResult:
    """Tokenize the config's corpus into `output_dir` (default: data.tokens) on datatrove's local executor.

    A folder that already holds this plan is resumed (finished tasks are skipped; a complete folder returns at
    once). `limit` caps the documents each task reads, for trial runs.
    """
    config = resolve_config(
        config, overrides, data_corpus=corpus, data_tokenizer=tokenizer,
        data_decontamination_index=decontamination_index,
    )  # fmt: skip
    target = output_dir or config.data.tokens
    if not target:
        raise PalomaError("name the folder to write with --output (or set data.tokens in the config)")
    plan = make_plan(config, str(target) if is_url(target) else Path(target).expanduser(), tasks, limit)
    _claim_folder(plan, overwrite)
    out = Outputs(plan.output_dir)
    if out.is_local:
        out.root.mkdir(parents=True, exist_ok=True)
    if not out.exists(TOKENS_PLAN):
        out.write_json(TOKENS_PLAN, plan.record)
    started = time.perf_counter()
    executor_class = QuietLocalExecutor if quiet else LocalPipelineExecutor
    logs = str(out.location(LOGS))
    executor_class(tokenize_pipeline(plan), tasks=tasks, workers=min(workers, tasks), logging_dir=logs).run()
    records = _task_records(out, tasks)
    read = sum(r["documents_read"] for r in records)
    result = TokenizeResult(
        output_dir=plan.output_dir,
        tasks=tasks,
        files=sum(len(r["files"]) for r in records),
        documents_read=read,
        documents_removed=read - sum(r["documents_kept"] for r in records),
        tokens=sum(r["tokens"] for r in records),
        seconds=time.perf_counter() - started,
    )
    return result


def _task_records(out: Outputs, tasks: int) -> list[dict]:
    """Every task's record (local folders are read by the trainer's own reader, which checks the plan too)."""
    if out.is_local:
        return read_token_folder(out.root)[1]
    records = [out.read_json(task_record_name(rank)) for rank in range(tasks)]
    missing = [rank for rank, record in enumerate(records) if not isinstance(record, dict)]
    if missing:
        raise PalomaError(f"{out}: tokenizing is incomplete (tasks {missing[:5]} have no record): rerun the command")
    return records
