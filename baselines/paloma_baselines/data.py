"""Training data: OLMo's token files, OLMo's instances, OLMo's global order.

Training reads tokens that `paloma baselines tokenize` (baselines/tokens.py) wrote earlier, or OLMo's and
Dolma's own tokenized data; it never tokenizes inside the (distributed) job.

1. **Token files** (`TokenFiles`) are OLMo's format: a flat array of uint16 (uint32 for vocabularies over
   65,536) token ids with no header, documents separated by EOS, despite the `.npy` name. Each file is cut
   into instances of seq_len tokens on its own (its tail is dropped) and instances are numbered file after
   file, in the given order: exactly `olmo.data.MemMapDataset`.
2. **The global order** (`GlobalOrder`) is OLMo's `IterableDataset` (ai2-olmo 0.6.0; at commit 1f2f020, the
   baselines' code, the same for epoch 0): epoch e permutes the instance ids with
   `np.random.Generator(np.random.PCG64(seed + e)).shuffle`, cuts the permutation to a multiple of the
   process count W (`drop_last`, as the baselines' configs set), and optimizer step s of that epoch trains on
   positions [(s−1)·B, s·B) of it; process r takes positions r, r+W, r+2W, ... The permutation is held once,
   as a uint32 file that every process memory-maps, not as an int64 array per process.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from paloma.errors import PalomaError
from paloma.eval.tokens import tokenizer_hash
from paloma.io import atomic_write
from paloma_baselines.config import Config, DataConfig

LOCAL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".jsonl.zst", ".jsonl.zstd", ".parquet")
TOKENS_FORMAT = "paloma-tokens/1"
TOKENS_PLAN = "tokens.json"  # a tokenize folder's plan: corpus, tokenizer, dtype, tasks (written first)
DTYPES = {"uint16": np.uint16, "uint32": np.uint32}


def task_record_name(rank: int) -> str:
    """The file a tokenize task writes last, listing its token files: its presence marks the task complete."""
    return f"part-{rank:05d}.json"


# ---------------------------------------------------------------------------------------------- reading text


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


def check_hub_corpus(data: DataConfig) -> None:
    """Open a hub corpus as streaming datasets (one per configuration), or fail with one line."""
    from datasets import load_dataset

    names = [n.strip() for n in data.corpus_config.split(",")] if data.corpus_config else [None]
    try:
        for name in names:
            load_dataset(data.corpus, name=name, split=data.split, streaming=True, data_files=data.data_files)
    except Exception as err:  # datasets raises many types for "not found", "offline", "gated"
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PalomaError(f"corpus {data.corpus}: cannot open it on the hub ({message})") from None


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


def token_dtype(vocab_size: int) -> str:
    """OLMo's choice: uint16 while every id fits, else uint32."""
    return "uint16" if vocab_size <= 1 << 16 else "uint32"


# ---------------------------------------------------------------------------------------------- token files


@dataclass
class TokenFiles:
    """OLMo's `MemMapDataset`: instance i is the i-th run of seq_len tokens, counted file after file.

    `provenance` says where the tokens came from (a tokenize folder's plan and counts, or the file list).
    """

    paths: list[Path]
    dtype: str
    seq_len: int
    provenance: dict = field(default_factory=dict)
    _maps: dict[int, np.memmap] = field(default_factory=dict, init=False, repr=False)  # opened on first use

    @cached_property
    def _sizes(self) -> list[int]:
        """Tokens per file; a file whose size is not a whole number of ids is refused."""
        itemsize = np.dtype(self.dtype).itemsize
        sizes = []
        for path in self.paths:
            size = path.stat().st_size
            if size % itemsize:
                raise PalomaError(f"{path}: {size} bytes is not a whole number of {self.dtype} token ids")
            sizes.append(size // itemsize)
        return sizes

    @cached_property
    def _starts(self) -> np.ndarray:
        """The first instance id of each file (and the total at the end)."""
        return np.cumsum([0] + [n // self.seq_len for n in self._sizes])

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def tokens(self) -> int:
        return sum(self._sizes)

    def digest(self) -> str:
        """What identifies the instances: file names, sizes and dtype (a resumed run must read the same)."""
        key = [self.dtype, [(p.name, n) for p, n in zip(self.paths, self._sizes, strict=True)]]
        return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:16]

    def summary(self) -> dict:
        """What a run records about its data (trainer state, paloma_training.json): small, whatever the corpus."""
        plan = self.provenance.get("plan")
        summary = {"tokens": self.provenance.get("tokens"), "digest": self.digest(), "dtype": self.dtype}
        summary.update({"files": len(self.paths), "token_count": self.tokens, "instances": len(self)})
        if plan is None:
            return {**summary, "corpus": None, "decontamination": None}
        records = self.provenance["tasks"]
        read = sum(r["documents_read"] for r in records)
        corpus = {k: v for k, v in plan["corpus"].items() if k != "files"}
        decontamination = {
            "index_checksum": (plan["decontamination"] or {}).get("checksum"),
            "documents_read": read,
            "documents_removed": read - sum(r["documents_kept"] for r in records),
        }
        return {**summary, "corpus": corpus, "decontamination": decontamination}

    def instance(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self):
            raise IndexError(f"instance {index} is out of range (the token files hold {len(self)})")
        file = int(np.searchsorted(self._starts, index, side="right") - 1)
        if file not in self._maps:
            self._maps[file] = np.memmap(self.paths[file], dtype=self.dtype, mode="r")
        offset = (index - int(self._starts[file])) * self.seq_len
        return np.asarray(self._maps[file][offset : offset + self.seq_len], dtype=np.int64)

    def batch(self, indices: list[int]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self.instance(i) for i in indices]))


def _expand_token_paths(spec: str) -> list[Path]:
    """`a.npy,dir/,part-*.npy,list.txt` → files in that order (folders and globs sorted; .txt lists paths)."""
    paths: list[Path] = []
    for item in (part.strip() for part in spec.split(",")):
        path = Path(item).expanduser()
        if item.endswith(".txt") and path.is_file():
            lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
            paths += [Path(line).expanduser() for line in lines if line and not line.startswith("#")]
        elif path.is_dir():
            paths += sorted(p for p in path.rglob("*.npy") if p.is_file())
        elif any(ch in item for ch in "*?["):
            paths += sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        else:
            paths.append(path)
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise PalomaError(f"data.tokens: {missing[0]}: no such token file")
    if not paths:
        raise PalomaError(f"data.tokens {spec}: names no token files")
    return paths


def read_token_folder(folder: Path) -> tuple[dict, list[dict]]:
    """A tokenize folder's plan and its tasks' records, or a one-line error saying how to finish it."""
    plan = json.loads((folder / TOKENS_PLAN).read_text(encoding="utf-8"))
    if plan.get("format") != TOKENS_FORMAT:
        raise PalomaError(f"{folder / TOKENS_PLAN}: format {plan.get('format')!r}, expected {TOKENS_FORMAT!r}")
    records, missing = [], []
    for rank in range(plan["tasks"]):
        path = folder / task_record_name(rank)
        if path.is_file():
            records.append(json.loads(path.read_text(encoding="utf-8")))
        else:
            missing.append(rank)
    if missing:
        raise PalomaError(
            f"{folder}: tokenizing is incomplete ({plan['tasks'] - len(missing)} of {plan['tasks']} tasks done): "
            "rerun the same `paloma baselines tokenize` command to finish it"
        )
    return plan, records


def tokens_instruction(config: Config) -> str:
    return (
        f"run `paloma baselines tokenize --config {config.name or 'CONFIG'} --output TOKENS` first (with the "
        "same --set options), then train with --tokens TOKENS"
    )


def open_tokens(config: Config) -> TokenFiles:
    """The training instances named by data.tokens, checked before any compute is spent."""
    spec, seq_len = config.data.tokens, config.train.seq_len
    if not spec:
        raise PalomaError(f"no tokenized training data (data.tokens is not set): {tokens_instruction(config)}")
    folder = Path(spec).expanduser()
    if folder.is_dir() and (folder / TOKENS_PLAN).is_file():
        plan, records = read_token_folder(folder)
        paths = [folder / f["file"] for record in records for f in record["files"]]
        provenance = {"tokens": str(folder), "plan": plan, "tasks": records}
        return TokenFiles(paths, plan["dtype"], seq_len, provenance)
    if folder.is_dir() and not any(folder.rglob("*.npy")):
        raise PalomaError(f"data.tokens {spec}: the folder holds no token files; {tokens_instruction(config)}")
    if not folder.exists() and "," not in spec and not any(ch in spec for ch in "*?["):
        raise PalomaError(f"data.tokens {spec}: no such folder or file; {tokens_instruction(config)}")
    paths = _expand_token_paths(spec)
    tokens = TokenFiles(paths, config.data.memmap_dtype, seq_len, {"tokens": spec, "files": len(paths)})
    len(tokens)  # every file's size is checked now, before any compute
    return tokens


def check_tokens_match(tokens: TokenFiles, tokenizer, config: Config) -> None:
    """A tokenize folder records its tokenizer and EOS id: both must be the run's."""

    plan = tokens.provenance.get("plan")
    if plan is None:
        return  # OLMo's own files carry no record: the config's tokenizer and vocabulary are trusted
    if plan["tokenizer"]["hash"] != tokenizer_hash(tokenizer):
        raise PalomaError(
            f"{tokens.provenance['tokens']}: tokenized with {plan['tokenizer']['name']} "
            f"({plan['tokenizer']['hash']}), but this run's tokenizer {config.data.tokenizer} differs; "
            "tokenize again with this tokenizer, or train with the one the tokens were made with"
        )
    if plan["eos_token_id"] != config.model.eos_token_id:
        raise PalomaError(
            f"{tokens.provenance['tokens']}: documents end with EOS id {plan['eos_token_id']}, "
            f"but model.eos_token_id is {config.model.eos_token_id}"
        )
    if np.dtype(plan["dtype"]).itemsize < np.dtype(token_dtype(config.model.vocab_size)).itemsize:
        raise PalomaError(f"{tokens.provenance['tokens']}: {plan['dtype']} ids cannot hold model.vocab_size")


# ---------------------------------------------------------------------------------------------- ordering


def olmo_total_size(num_instances: int, world_size: int) -> int:
    """How many positions of an epoch's permutation OLMo's IterableDataset uses (drop_last=True)."""
    if num_instances % world_size:
        return math.ceil((num_instances - world_size) / world_size) * world_size
    return num_instances


def steps_per_epoch(num_instances: int, batch_size: int, world_size: int) -> int:
    """Whole global batches in one of OLMo's epochs; at least one, or the run is refused."""
    steps = olmo_total_size(num_instances, world_size) // batch_size
    if steps == 0:
        raise PalomaError(
            f"the token files hold {num_instances} instances, fewer than one global batch of {batch_size}: "
            "tokenize more text or lower train.global_batch_size"
        )
    return steps


def epoch_permutation(num_instances: int, seed: int, epoch: int) -> np.ndarray:
    """All instance ids in epoch `epoch`'s order: OLMo's PCG64(seed + epoch) shuffle of uint32 ids."""
    if num_instances >= np.iinfo(np.uint32).max:
        raise PalomaError(f"{num_instances:,} instances: more than OLMo's uint32 instance ids can number")
    indices = np.arange(num_instances, dtype=np.uint32)
    np.random.Generator(np.random.PCG64(seed=seed + epoch)).shuffle(indices)
    return indices


class GlobalOrder:
    """Which instances every optimizer step trains on, on every process: OLMo's order, exactly.

    With `work_dir`, each epoch's permutation is written once (by the process where `is_main` is true) to
    `work_dir/order-seed<seed>-epoch<e>.npy` and memory-mapped by every process after `barrier()`; without
    it (one process, tests) it is computed in memory.
    """

    def __init__(
        self,
        num_instances: int,
        seed: int,
        batch_size: int,
        world_size: int = 1,
        work_dir: Path | None = None,
        is_main: bool = True,
        barrier: Callable[[], None] = lambda: None,
    ) -> None:
        if batch_size % world_size:
            raise PalomaError(f"train.global_batch_size ({batch_size}) is not divisible by {world_size} processes")
        self.num_instances, self.seed, self.batch_size, self.world_size = num_instances, seed, batch_size, world_size
        self.steps_per_epoch = steps_per_epoch(num_instances, batch_size, world_size)
        self.work_dir, self.is_main, self.barrier = work_dir, is_main, barrier
        self._epoch, self._order = -1, np.empty(0, dtype=np.uint32)

    def epoch_of(self, step: int) -> int:
        """The epoch (from 0) of optimizer step `step` (from 1)."""
        return (step - 1) // self.steps_per_epoch

    def _epoch_order(self, epoch: int) -> np.ndarray:
        if epoch == self._epoch:
            return self._order
        if self.work_dir is None:
            order = epoch_permutation(self.num_instances, self.seed, epoch)
        else:
            path = Path(self.work_dir) / f"order-seed{self.seed}-epoch{epoch}.npy"
            if self.is_main and not self._holds_permutation(path):
                with atomic_write(path, "wb") as handle:
                    np.save(handle, epoch_permutation(self.num_instances, self.seed, epoch))
            self.barrier()
            order = np.load(path, mmap_mode="r")
        self._epoch, self._order = epoch, order
        return order

    def _holds_permutation(self, path: Path) -> bool:
        """An earlier run's file of this epoch is reused only if it orders the same number of instances."""
        try:
            return np.load(path, mmap_mode="r").shape == (self.num_instances,)
        except (OSError, ValueError):
            return False

    def global_batch(self, step: int) -> list[int]:
        """Every instance of step `step`, in position order (rank r holds every W-th from the r-th)."""
        epoch, k = divmod(step - 1, self.steps_per_epoch)
        first = k * self.batch_size
        return [int(i) for i in self._epoch_order(epoch)[first : first + self.batch_size]]

    def step_instances(self, step: int, rank: int = 0) -> list[int]:
        """Instance ids that process `rank` trains on at optimizer step `step` (1-based), in OLMo's order.

        Step k of an epoch is positions [k·B, (k+1)·B) of the epoch's permutation; rank r takes positions
        r, r+W, ... of them. Their union over ranks is the same global batch for every W that divides B.
        """
        return self.global_batch(step)[rank :: self.world_size]
