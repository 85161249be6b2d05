"""Training data: read a corpus, drop contaminated documents, tokenize, pack, and order it globally.

The steps, each a plain function:
1. `open_corpus` streams documents from the hub (`datasets`, streaming) or local JSONL/Parquet files;
2. a contamination predicate (`load_decontamination`: a `paloma decon` index) drops every document that
   contains a Paloma paragraph;
3. `prepare_data` tokenizes each document, appends EOS (documents are EOS-separated), concatenates them and
   cuts the stream into fixed-length instances, written once to disk in shards and reused by later runs;
4. `GlobalOrder.step_instances` orders instances by ONE permutation seeded by the run's seed (a fresh one per epoch),
   and hands optimizer step s the global batch at positions [(s−1)·B, s·B) of that order. A process
   takes every W-th of them, so which sequences a step trains on does not depend on the number of
   processes W (Paloma's fixed-training-order guideline, as OLMo's data loader does).
"""

from __future__ import annotations

import glob
import hashlib
import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from baselines.config import Config, DataConfig
from paloma.errors import PalomaError
from paloma.eval.tokens import tokenizer_hash
from paloma.io import atomic_write, iter_jsonl

CACHE_FORMAT = "paloma-baselines-tokens/1"
LOCAL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".jsonl.zstd", ".parquet")

# A predicate on one document's text: True when it must not be trained on.
ContaminationCheck = Callable[[str], bool]


# ---------------------------------------------------------------------------------------------- reading


def local_files(corpus: str) -> list[Path] | None:
    """The files of a local corpus (a file, a folder, or a glob), sorted; None when `corpus` is a hub id."""
    path = Path(corpus).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(LOCAL_SUFFIXES))
        if not files:
            raise PalomaError(f"corpus {corpus}: the folder holds no {', '.join(LOCAL_SUFFIXES)} files")
        return files
    if any(ch in corpus for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        if not files:
            raise PalomaError(f"corpus {corpus}: the pattern matches no files")
        return files
    looks_local = corpus.startswith((".", "/", "~")) or corpus.endswith(LOCAL_SUFFIXES) or corpus.count("/") != 1
    if looks_local:
        raise PalomaError(f"corpus {corpus}: no such file or folder (and not a hub id of the form owner/name)")
    return None


def _iter_local(files: list[Path], text_field: str) -> Iterator[str]:
    for path in files:
        if path.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            parquet = pq.ParquetFile(path)
            if text_field not in parquet.schema_arrow.names:
                raise PalomaError(
                    f"{path}: no column {text_field!r} (columns: {', '.join(parquet.schema_arrow.names)})"
                )
            for batch in parquet.iter_batches(columns=[text_field], batch_size=1024):
                yield from (t or "" for t in batch.column(0).to_pylist())
            continue
        for line_no, record in iter_jsonl(path):
            text = record.get(text_field)
            if not isinstance(text, str):
                raise PalomaError(f"{path}:{line_no}: field {text_field!r} is missing or not a string")
            yield text


def _open_hub(data: DataConfig) -> list:
    """Open the corpus on the hub as streaming datasets (one per configuration), or fail with one line."""
    from datasets import load_dataset

    names = [n.strip() for n in data.corpus_config.split(",")] if data.corpus_config else [None]
    try:
        return [
            load_dataset(data.corpus, name=name, split=data.split, streaming=True, data_files=data.data_files)
            for name in names
        ]
    except Exception as err:  # datasets raises many types for "not found", "offline", "gated"
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PalomaError(f"corpus {data.corpus}: cannot open it on the hub ({message})") from None


def open_corpus(data: DataConfig) -> Callable[[], Iterator[str]]:
    """Check that the corpus exists (before any compute is spent) and return a reader of its texts."""
    files = local_files(data.corpus)
    if files is not None:
        return lambda: _iter_local(files, data.text_field)
    streams = _open_hub(data)

    def read() -> Iterator[str]:
        for stream in streams:
            for row in stream:
                if data.text_field not in row:
                    raise PalomaError(f"corpus {data.corpus}: rows have no field {data.text_field!r}")
                yield row[data.text_field] or ""

    return read


# ---------------------------------------------------------------------------------------------- tokenizer


def load_tokenizer(name_or_path: str):
    """A fast tokenizer from a hub id, a local folder, or a single tokenizer.json file."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    path = Path(name_or_path).expanduser()
    try:
        if path.is_file():
            # A bare tokenizer.json does not say which token is EOS: take GPT-NeoX's name for it.
            tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(path))
            if tokenizer.eos_token is None and "<|endoftext|>" in tokenizer.get_vocab():
                tokenizer.eos_token = "<|endoftext|>"
            return tokenizer
        return AutoTokenizer.from_pretrained(name_or_path)
    except Exception as err:
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PalomaError(f"tokenizer {name_or_path}: cannot load it ({message})") from None


def check_tokenizer(tokenizer, config: Config) -> None:
    """The tokenizer must fit the embedding and agree on the EOS id, or the run is refused before it starts."""
    size, m = len(tokenizer), config.model
    if size > m.vocab_size:
        raise PalomaError(
            f"tokenizer {config.data.tokenizer} has {size} tokens but model.vocab_size is {m.vocab_size}: "
            f"set model.vocab_size to at least {size} (a multiple of 128 is fastest)"
        )
    if tokenizer.eos_token_id != m.eos_token_id:
        raise PalomaError(
            f"tokenizer {config.data.tokenizer} has EOS id {tokenizer.eos_token_id} but model.eos_token_id "
            f"is {m.eos_token_id}: set model.eos_token_id={tokenizer.eos_token_id}"
        )


# ---------------------------------------------------------------------------------------------- packing


@dataclass
class PackedData:
    """Fixed-length instances stored in `.npy` shards: instance i is the i-th run of seq_len tokens."""

    root: Path
    manifest: dict

    @cached_property
    def _shards(self) -> list[np.ndarray]:
        return [np.load(self.root / s["file"], mmap_mode="r") for s in self.manifest["shards"]]

    @cached_property
    def _starts(self) -> np.ndarray:
        return np.cumsum([0] + [s["instances"] for s in self.manifest["shards"]])

    @property
    def seq_len(self) -> int:
        return self.manifest["seq_len"]

    def __len__(self) -> int:
        return int(self._starts[-1])

    def instance(self, index: int) -> np.ndarray:
        shard = int(np.searchsorted(self._starts, index, side="right") - 1)
        offset = (index - int(self._starts[shard])) * self.seq_len
        return np.asarray(self._shards[shard][offset : offset + self.seq_len], dtype=np.int64)

    def batch(self, indices: list[int]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.instance(i) for i in indices]))


def data_fingerprint(config: Config, tok_hash: str, decon_checksum: str | None) -> str:
    d = config.data
    key = [d.corpus, d.corpus_config, d.data_files, d.split, d.text_field, d.max_tokens, tok_hash]
    key += [config.model.eos_token_id, config.train.seq_len, decon_checksum, CACHE_FORMAT]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]


def _tokenized(texts: Iterator[str], tokenizer, eos: int, batch: int = 256) -> Iterator[list[int]]:
    """Token ids of each document followed by EOS; tokenized in batches (the Rust tokenizer is parallel)."""
    buffer: list[str] = []
    for text in texts:
        buffer.append(text)
        if len(buffer) == batch:
            yield from ([*ids, eos] for ids in tokenizer(buffer, add_special_tokens=False)["input_ids"])
            buffer = []
    if buffer:
        yield from ([*ids, eos] for ids in tokenizer(buffer, add_special_tokens=False)["input_ids"])


def prepare_data(
    config: Config,
    cache_dir: Path,
    read_texts: Callable[[], Iterator[str]],
    tokenizer,
    is_contaminated: ContaminationCheck | None = None,
    decon_checksum: str | None = None,
    progress: bool = True,
) -> PackedData:
    """Tokenize and pack the corpus into `cache_dir/<fingerprint>/`, or reuse what an earlier run wrote."""
    fingerprint = data_fingerprint(config, tokenizer_hash(tokenizer), decon_checksum)
    root = Path(cache_dir) / fingerprint
    if (root / "manifest.json").is_file():
        return PackedData(root, json.loads((root / "manifest.json").read_text()))
    seq_len, limit = config.train.seq_len, config.data.max_tokens
    dtype = np.uint16 if config.model.vocab_size <= 1 << 16 else np.uint32
    per_shard = max(1, config.data.shard_tokens // seq_len) * seq_len
    staging = root.with_name(f".{fingerprint}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    stats = {"documents": 0, "removed": 0, "tokens": 0}
    shards: list[dict] = []
    pending: list[int] = []

    def flush(final: bool) -> None:
        nonlocal pending
        while len(pending) >= per_shard or (final and len(pending) >= seq_len):
            take = min(per_shard, len(pending) // seq_len * seq_len)
            name = f"tokens-{len(shards):05d}.npy"
            np.save(staging / name, np.asarray(pending[:take], dtype=dtype))
            shards.append({"file": name, "instances": take // seq_len})
            pending = pending[take:]

    def kept_texts() -> Iterator[str]:
        for text in read_texts():
            stats["documents"] += 1
            if is_contaminated is not None and is_contaminated(text):
                stats["removed"] += 1
                continue
            yield text

    with tqdm(desc="tokenizing", unit="tok", unit_scale=True, total=limit, disable=not progress) as bar:
        for ids in _tokenized(kept_texts(), tokenizer, config.model.eos_token_id):
            if limit is not None:
                ids = ids[: limit - stats["tokens"]]
            pending.extend(ids)
            stats["tokens"] += len(ids)
            bar.update(len(ids))
            flush(final=False)
            if limit is not None and stats["tokens"] >= limit:
                break
    flush(final=True)
    if not shards:
        raise PalomaError(f"corpus {config.data.corpus}: fewer than {seq_len} tokens after decontamination")
    manifest = {
        "format": CACHE_FORMAT,
        "fingerprint": fingerprint,
        "seq_len": seq_len,
        "dtype": np.dtype(dtype).name,
        "corpus": config.data.corpus,
        "decontamination_checksum": decon_checksum,
        "documents_read": stats["documents"],
        "documents_removed": stats["removed"],
        "tokens": stats["tokens"],
        "tokens_dropped": len(pending),
        "shards": shards,
    }
    with atomic_write(staging / "manifest.json") as handle:
        json.dump(manifest, handle, indent=1)
    staging.rename(root)  # the cache entry appears whole or not at all
    return PackedData(root, manifest)


# ---------------------------------------------------------------------------------------------- ordering


def epoch_permutation(num_instances: int, seed: int, epoch: int) -> np.ndarray:
    """The order of all instances in one epoch: torch.randperm seeded by seed + epoch (OLMo's scheme)."""
    generator = torch.Generator().manual_seed(seed + epoch)
    return torch.randperm(num_instances, generator=generator).numpy()


class GlobalOrder:
    """Maps global positions (0, 1, 2, ... over the whole run, across epochs) to instance ids."""

    def __init__(self, num_instances: int, seed: int) -> None:
        self.num_instances, self.seed = num_instances, seed
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def __getitem__(self, position: int) -> int:
        epoch, offset = divmod(position, self.num_instances)
        if epoch != self._epoch:
            self._epoch, self._perm = epoch, epoch_permutation(self.num_instances, self.seed, epoch)
        return int(self._perm[offset])

    def step_instances(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> list[int]:
        """Instance ids that process `rank` of `world_size` trains on at optimizer step `step` (1-based).

        The global batch is positions [(step−1)·B, step·B); rank r takes positions r, r+W, r+2W, ...
        of it. The union over ranks is the same global batch for every W that divides B.
        """
        if batch_size % world_size:
            raise PalomaError(f"train.global_batch_size ({batch_size}) is not divisible by {world_size} processes")
        first = (step - 1) * batch_size
        return [self[first + i] for i in range(rank, batch_size, world_size)]


def load_decontamination(path: str | None) -> tuple[ContaminationCheck | None, str | None]:
    """The per-document decision of a `paloma decon` index and the index's checksum (None, None without one)."""
    if path is None:
        return None, None
    from paloma.decon import ContaminationIndex

    if not Path(path).expanduser().is_file():
        raise PalomaError(f"decontamination index {path}: no such file (build one with `paloma decon build`)")
    index = ContaminationIndex.load(Path(path).expanduser())
    return index.is_contaminated, index.checksum
