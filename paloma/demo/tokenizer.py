"""The demo's tokenizer: a small byte-level BPE trained on the demo's training part.

It follows the Paloma baselines' vocabulary conventions where they matter to evaluation: `<|endoftext|>` is
token 0 and serves as EOS and BOS (so the EOS-prefix and BOS-prefix protocols agree), `<|padding|>` is
token 1. Byte-level BPE can encode any text, so no evaluation document has unknown tokens. Training is
deterministic for a given input order (checked across thread counts), which keeps the suite reproducible.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

EOS_TOKEN = "<|endoftext|>"
PAD_TOKEN = "<|padding|>"


def train_bpe(texts: Iterable[str], vocab_size: int):
    """Train a byte-level BPE `tokenizers.Tokenizer` with EOS id 0 and padding id 1."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS_TOKEN, PAD_TOKEN],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def save_for_transformers(tokenizer, path: str | Path) -> None:
    """Save as a `transformers` tokenizer folder (`AutoTokenizer.from_pretrained(path)` loads it)."""
    from transformers import PreTrainedTokenizerFast

    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token=EOS_TOKEN, bos_token=EOS_TOKEN, pad_token=PAD_TOKEN
    )
    wrapped.save_pretrained(str(path))
