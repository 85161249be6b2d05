"""Real text and a small trained tokenizer for the baselines tests (offline: no hub downloads).

The text is the documentation of Python's standard library (module, class and function docstrings):
real English prose with code fragments, the same on every machine with the same Python version.
"""

from __future__ import annotations

import importlib
import inspect
import json
import warnings
from pathlib import Path

MODULES = [
    "argparse", "asyncio", "base64", "bisect", "calendar", "collections", "contextlib", "csv", "dataclasses",
    "datetime", "decimal", "difflib", "email", "enum", "fractions", "functools", "gzip", "heapq", "http.client",
    "inspect", "io", "itertools", "json", "logging", "os", "pathlib", "pickle", "random", "re", "shutil",
    "socket", "statistics", "string", "subprocess", "tarfile", "textwrap", "threading", "typing", "unittest",
    "urllib.parse", "uuid", "zipfile",
]  # fmt: skip


def stdlib_documents(min_chars: int = 200) -> list[str]:
    """Docstrings of the modules above and their public members, longest-first order kept stable."""
    docs: list[str] = []
    for name in MODULES:
        module = importlib.import_module(name)
        objects = [module] + [getattr(module, a) for a in sorted(dir(module)) if not a.startswith("_")]
        for obj in objects:
            with warnings.catch_warnings():  # getdoc touches deprecated aliases such as typing.io
                warnings.simplefilter("ignore", DeprecationWarning)
                doc = inspect.getdoc(obj) if (inspect.ismodule(obj) or callable(obj)) else None
            if doc and len(doc) >= min_chars and doc not in docs:
                docs.append(doc)
    return docs


def write_corpus(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": str(i), "text": text}) + "\n")
    return path


def train_tokenizer(texts: list[str], folder: Path, vocab_size: int = 512) -> Path:
    """A byte-level BPE with GPT-NeoX's special-token layout: <|endoftext|> is id 0 (EOS), <|padding|> id 1."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|padding|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|padding|>")
    fast.save_pretrained(folder)
    return folder


def write_corpus_files(folder: Path, texts: list[str], files: int) -> Path:
    """The texts split over `files` JSONL files (datatrove gives each tokenize task whole files)."""
    size = -(-len(texts) // files)
    for k in range(files):
        write_corpus(folder / f"part-{k}.jsonl", texts[k * size : (k + 1) * size])
    return folder


def tiny_tokens(corpus: Path, tokenizer: Path, output: Path, tasks: int = 1, **options):
    """`paloma baselines tokenize` of the tiny config (512-token vocabulary), in this process (one worker)."""
    from paloma_baselines.tokens import tokenize

    overrides = ["model.vocab_size=512", *options.pop("overrides", [])]
    return tokenize(
        "tiny", output, overrides=overrides, corpus=str(corpus), tokenizer=str(tokenizer), tasks=tasks, quiet=True,
        **options,
    )  # fmt: skip


def expected_token_stream(texts: list[str], tokenizer, eos: int = 0) -> list[int]:
    """Each document's tokens (no special tokens) then EOS, concatenated: the data written out independently."""
    stream: list[int] = []
    for text in texts:
        stream += [*tokenizer.encode(text, add_special_tokens=False), eos]
    return stream


def launch_env(config_file: Path) -> dict[str, str]:
    """The environment `accelerate launch --config_file FILE` gives each of its processes (accelerate's own code
    reads the file; with more than one process it launches through torchrun with exactly this environment)."""
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser
    from accelerate.utils.launch import prepare_multi_gpu_env

    args = launch_command_parser().parse_args(["--config_file", str(config_file), "-m", "paloma_baselines.train"])
    args, _, _ = _validate_launch_command(args)
    return prepare_multi_gpu_env(args)
