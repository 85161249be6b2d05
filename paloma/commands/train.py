"""`paloma train`: train a Paloma baseline recipe in this process (the library call is paloma_baselines.train.train).

It reads token files made beforehand by `paloma baselines tokenize` (or OLMo's own). For several GPUs or
nodes use `accelerate launch -m paloma_baselines.train` with the same options (baselines/accelerate/ has FSDP configs).
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from paloma_baselines.config import add_train_arguments

    parser = subparsers.add_parser(
        "train",
        help="train a baseline recipe (tiny, ladder-*, c4, dolma, ...) and export it",
        description="Train a Paloma baseline recipe in one process on tokens from `paloma baselines tokenize`; "
        "resumes from the latest checkpoint in --output (--overwrite starts over).",
    )
    add_train_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from paloma_baselines.train import run_from_args

    return run_from_args(args)
