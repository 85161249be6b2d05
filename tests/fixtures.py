"""Real text, a small trained BPE tokenizer and tiny real models, built offline for the tests.

The text is Python's own bundled documentation (`pydoc_data.topics`), present wherever Python is, plus
a few non-ASCII paragraphs written here. Models are `transformers` architectures (GPT-NeoX, Llama, OLMo)
built from small configs with a fixed seed; their weights are random but the computation is the real one.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from pathlib import Path

import torch

SPECIAL_TOKENS = ["<|endoftext|>", "<|padding|>", "<s>"]  # ids 0 (EOS), 1 (pad), 2 (BOS)

NON_ASCII = [
    "Der Bäcker verkauft frische Brötchen, Brezeln und Kuchen; die Straße ist früh am Morgen schon voll.",
    "La température a baissé de cinq degrés : les élèves ont mis leurs écharpes et leurs gants.",
    "東京の空は今日も晴れています。駅の近くに新しい本屋ができました。",
    "Москва — столица России; в ней много музеев, театров и парков.",
    "ΕΛΛΑΣ: η θάλασσα είναι γαλάζια και ο ήλιος λάμπει πάνω από τα νησιά.",
    "Emoji also count as bytes 🙂🚀 and so do accents: naïve café, São Paulo, Zürich.",
]


def pydoc_paragraphs() -> list[str]:
    """Paragraphs of Python's bundled documentation: real English prose with some code."""
    from pydoc_data.topics import topics

    paragraphs = []
    for name in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[name]):
            block = block.strip()
            if len(block) > 40:
                paragraphs.append(block)
    return paragraphs


def train_tokenizer(folder: Path, vocab_size: int = 384):
    """A byte-level BPE tokenizer trained on the docs, saved as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(pydoc_paragraphs()[:3000], trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|padding|>", bos_token="<s>"
    )
    fast.save_pretrained(folder)
    return fast


def build_model(kind: str, vocab_size: int, folder: Path, max_positions: int = 64, seed: int = 0):
    """A tiny causal LM of the given architecture, saved with the tokenizer's files beside it."""
    from transformers import AutoModelForCausalLM, GPTNeoXConfig, LlamaConfig, OlmoConfig

    common = dict(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=max_positions,
        eos_token_id=0,
        pad_token_id=1,
        bos_token_id=2,
    )
    config = {
        "gpt_neox": lambda: GPTNeoXConfig(**common, tie_word_embeddings=False),
        "llama": lambda: LlamaConfig(**common, tie_word_embeddings=False),
        "olmo": lambda: OlmoConfig(**common, tie_word_embeddings=False),
    }[kind]()
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # sharper than the default init, so log-likelihoods vary across tokens
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    model.save_pretrained(folder)
    return model


def write_release(root: Path, documents: dict[tuple[str, str | None], list[str]], split: str = "test") -> Path:
    """Write documents in the Paloma layout: <root>/<source>/<split>/<split>_<domain>.jsonl.gz.

    The gzip header's time is fixed, so the same documents always make the same bytes: the data's identity
    (`data_revision`) is a digest of the files' bytes, as it is for a clone or a hub copy of the same files."""
    for (source, domain), texts in documents.items():
        folder = root / source / split
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{split}_{domain}.jsonl.gz" if domain else f"{split}-00000000.jsonl.gz"
        with gzip.GzipFile(folder / name, "wb", mtime=0) as raw, io.TextIOWrapper(raw, encoding="utf-8") as handle:
            for i, text in enumerate(texts):
                row = {"text": text, "id": f"{domain or source}-{i}", "source": source, "added": "2023-01-01"}
                if domain:
                    row["subdomain"] = domain
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return root
