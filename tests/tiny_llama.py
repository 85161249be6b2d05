"""Test helper: a small trained BPE tokenizer and 2-layer Llama models built from configs (no downloads)."""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

# Real English text that ships with Python: the docstrings of a few standard-library modules.
TEXT = "\n".join(m.__doc__ for m in (argparse, csv, json, pathlib, torch.nn.Module) if m.__doc__)


def train_tokenizer(folder: Path, vocab_size: int = 300, text: str = TEXT) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on `text` and save it as a transformers tokenizer in `folder`."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(text.splitlines(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    fast.save_pretrained(folder)
    return fast


def tiny_llama(folder: Path, tokenizer_dir: Path, seed: int, hidden: int = 32) -> Path:
    """A randomly initialised 2-layer Llama saved with the tokenizer from `tokenizer_dir`."""
    tokenizer = PreTrainedTokenizerFast.from_pretrained(tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        tie_word_embeddings=False,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
