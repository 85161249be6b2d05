"""Failure cases of `paloma train` and `paloma baselines` (params, show, tokenize, export).

Each fails on its arguments, its config or its output location before any data is read or a model is built;
none needs a hub download (the default tokenizer is never reached).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cli_failures import Case


def _files(spec: dict[str, str | None]) -> Callable[[Path], None]:
    """A setup writing `spec` into the case's folder: relative path → text, or None for an empty folder."""

    def setup(tmp: Path) -> None:
        for name, text in spec.items():
            path = tmp / name
            if text is None:
                path.mkdir(parents=True, exist_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)

    return setup


CORPUS = '{"text": "a document"}\n'
TRAIN = ("train", "--config", "tiny", "--output", "{tmp}/run")
TOKENIZE = ("baselines", "tokenize", "--config", "tiny")

CASES = [
    # paloma train: argument ranges, config fields, output location, then the data it needs
    Case("train-max-steps-negative", (*TRAIN, "--max-steps", "-1"), "argument --max-steps: must be ≥ 0, got -1"),
    Case("train-max-steps-not-a-number", (*TRAIN, "--max-steps", "ten"), "expected an integer, got 'ten'"),
    Case("train-unknown-config", ("train", "--config", "c5", "--output", "{tmp}/run"), "unknown config 'c5'"),
    Case("train-unknown-field", (*TRAIN, "--set", "train.batch_size=3"), "unknown key train.batch_size"),
    Case(
        "train-field-out-of-range", (*TRAIN, "--set", "train.micro_batch_size=0"), "train.micro_batch_size must be ≥ 1"
    ),
    Case("train-lr-nan", (*TRAIN, "--set", "optimizer.lr=.nan"), "optimizer.lr must be > 0, got nan"),
    Case(
        "train-override-not-yaml", (*TRAIN, "--set", "train.seed=[1"), "override train.seed: '[1' is not a YAML value"
    ),
    Case("train-override-without-section", (*TRAIN, "--set", "seed=1"), "expected SECTION.KEY=VALUE"),
    Case("train-keep-layers-alone", (*TRAIN, "--keep-layers", "0-1"), "--keep-layers needs --init-from"),
    Case(
        "train-output-is-a-file",
        ("train", "--config", "tiny", "--output", "{tmp}/f"),
        "is a file",
        _files({"f": "x\n"}),
    ),
    Case("train-output-under-dev-null", ("train", "--config", "tiny", "--output", "/dev/null/run"), "is not a folder"),
    Case(
        "train-output-holds-something-else",
        ("train", "--config", "tiny", "--output", "{tmp}/mine"),
        "exists, is not empty and is not a training run",
        _files({"mine/notes": "mine\n"}),
    ),
    Case(
        "train-without-tokens",
        TRAIN,
        "no tokenized training data (data.tokens is not set): run `paloma baselines tokenize",
    ),
    Case("train-tokens-missing", (*TRAIN, "--tokens", "{tmp}/nope"), "nope: no such folder or file; run `paloma"),
    Case(
        "train-tokens-incomplete",
        (*TRAIN, "--tokens", "{tmp}/tokens"),
        "tokenizing is incomplete (0 of 2 tasks done): rerun the same `paloma baselines tokenize`",
        _files({"tokens/tokens.json": '{"format": "paloma-tokens/1", "tasks": 2}'}),
    ),
    Case(
        "train-tokens-not-whole-ids",
        (*TRAIN, "--tokens", "{tmp}/odd.npy"),
        "odd.npy: 3 bytes is not a whole number of uint16 token ids",
        _files({"odd.npy": "abc"}),
    ),
    # paloma baselines params / show: config names, files and fields
    Case("params-unknown-config", ("baselines", "params", "c5"), "unknown config 'c5'"),
    Case(
        "params-invalid-yaml",
        ("baselines", "params", "{tmp}/bad.yaml"),
        "invalid YAML",
        _files({"bad.yaml": "model: [\n"}),
    ),
    Case(
        "params-not-a-mapping",
        ("baselines", "params", "{tmp}/list.yaml"),
        "expected a mapping at the top level",
        _files({"list.yaml": "- a\n- b\n"}),
    ),
    Case(
        "params-unknown-key-in-file",
        ("baselines", "params", "{tmp}/typo.yaml"),
        "unknown key train.max_stesp",
        _files({"typo.yaml": "inherit: tiny\ntrain: {max_stesp: 10}\n"}),
    ),
    Case("params-unknown-option", ("baselines", "params", "--bogus"), "unrecognized arguments: --bogus"),
    Case("baselines-without-action", ("baselines",), "the following arguments are required: ACTION"),
    Case("show-unknown-config", ("baselines", "show", "c5"), "unknown config 'c5'"),
    Case(
        "show-bad-value",
        ("baselines", "show", "tiny", "--set", "optimizer.lr=fast"),
        "optimizer.lr: 'fast' is not a valid float",
    ),
    Case(
        "show-out-of-range",
        ("baselines", "show", "tiny", "--set", "train.global_batch_size=0"),
        "train.global_batch_size must be ≥ 1",
    ),
    Case(
        "show-betas-out-of-range",
        ("baselines", "show", "tiny", "--set", "optimizer.betas=[0.9,1.5]"),
        "optimizer.betas must be two numbers in [0, 1)",
    ),
    Case(
        "show-inherits-nothing",
        ("baselines", "show", "{tmp}/child.yaml"),
        "inherits from 'nope', which is neither a file nor a shipped config",
        _files({"child.yaml": "inherit: nope\n"}),
    ),
    Case(
        "show-memmap-dtype",
        ("baselines", "show", "tiny", "--set", "data.memmap_dtype=int8"),
        "data.memmap_dtype must be uint16 or uint32",
    ),
    # paloma baselines tokenize: ranges, then the corpus, the output location, the index, the tokenizer
    Case("tokenize-workers-zero", (*TOKENIZE, "--workers", "0"), "argument --workers: must be ≥ 1, got 0"),
    Case("tokenize-tasks-zero", (*TOKENIZE, "--tasks", "0"), "argument --tasks: must be ≥ 1, got 0"),
    Case("tokenize-limit-negative", (*TOKENIZE, "--limit", "-3"), "argument --limit: must be ≥ 1, got -3"),
    Case(
        "tokenize-without-output",
        (*TOKENIZE, "--corpus", "{tmp}/c.jsonl"),
        "name the folder to write with --output",
        _files({"c.jsonl": CORPUS}),
    ),
    Case(
        "tokenize-missing-corpus",
        (*TOKENIZE, "--corpus", "{tmp}/nope.jsonl", "--output", "{tmp}/out"),
        "no such file or folder",
    ),
    Case(
        "tokenize-more-tasks-than-files",
        (*TOKENIZE, "--corpus", "{tmp}/c.jsonl", "--output", "{tmp}/out", "--tasks", "3"),
        "--tasks 3: the corpus has 1 file(s)",
        _files({"c.jsonl": CORPUS}),
    ),
    Case(
        "tokenize-output-is-a-file",
        (*TOKENIZE, "--corpus", "{tmp}/c.jsonl", "--output", "{tmp}/f"),
        "is a file; the output here is a folder",
        _files({"c.jsonl": CORPUS, "f": "x\n"}),
    ),
    Case(
        "tokenize-output-inside-the-corpus",
        (*TOKENIZE, "--corpus", "{tmp}/corpus", "--output", "{tmp}/corpus/tokens"),
        "lies inside the input folder",
        _files({"corpus/c.jsonl": CORPUS}),
    ),
    Case(
        "tokenize-missing-index",
        (*TOKENIZE, "--corpus", "{tmp}/c.jsonl", "--output", "{tmp}/out", "--decon", "{tmp}/missing.decon"),
        "missing.decon: no such index file",
        _files({"c.jsonl": CORPUS}),
    ),
    Case(
        "tokenize-tokenizer-too-big",
        (
            *TOKENIZE,
            "--corpus",
            "{tmp}/c.jsonl",
            "--output",
            "{tmp}/out",
            "--tokenizer",
            "{model}",
            "--set",
            "model.vocab_size=64",
        ),
        "but model.vocab_size is 64",
        _files({"c.jsonl": CORPUS}),
    ),
    Case(
        "tokenize-into-a-foreign-folder",
        (*TOKENIZE, "--corpus", "{tmp}/c.jsonl", "--output", "{tmp}/mine", "--overwrite"),
        "is not empty and is not a tokenize folder",
        _files({"c.jsonl": CORPUS, "mine/notes": "mine\n"}),
    ),
    # paloma baselines export: the checkpoint, then the output location
    Case(
        "export-missing-checkpoint",
        ("baselines", "export", "{tmp}/nope", "--output", "{tmp}/out"),
        "no such checkpoint or run folder",
    ),
    Case(
        "export-without-output", ("baselines", "export", "{tmp}/ckpt"), "the following arguments are required: --output"
    ),
    Case(
        "export-not-a-checkpoint",
        ("baselines", "export", "{tmp}/ckpt", "--output", "{tmp}/out"),
        "not a checkpoint (no trainer_state.json)",
        _files({"ckpt": None}),
    ),
    Case(
        "export-output-is-a-file",
        ("baselines", "export", "{tmp}/ckpt", "--output", "{tmp}/f"),
        "is a file; the output here is a folder",
        _files({"ckpt": None, "f": "x\n"}),
    ),
    Case(
        "export-output-inside-the-checkpoint",
        ("baselines", "export", "{tmp}/ckpt", "--output", "{tmp}/ckpt/model"),
        "lies inside the input folder",
        _files({"ckpt": None}),
    ),
    Case(
        "export-output-under-dev-null", ("baselines", "export", "{tmp}", "--output", "/dev/null/x"), "is not a folder"
    ),
]
