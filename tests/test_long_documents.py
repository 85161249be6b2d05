"""A long document is tokenized in pieces, with the ids of the whole text (issue 19, "Why" 8).

One 20 MB document needed 3.96 GB to tokenize whole; pieces bound the memory (benchmarks/long_document.py
measures it). Pieces are cut only where the tokenizer gives the same ids cut and uncut, so the ids are exactly
those of the whole text: shown here on long real text (Python's bundled documentation and standard-library
sources) for the tokenizers the tests use and for the other pre-tokenizer families of the field.
"""

from __future__ import annotations

import argparse
import inspect
import json
from pathlib import Path

import pytest
import tiny_llama
from fixtures import pydoc_paragraphs, train_tokenizer
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from paloma.eval import tokens

PROSE = "\n\n".join(pydoc_paragraphs())[:150_000]
CODE = "".join(Path(inspect.getsourcefile(m)).read_text() for m in (argparse, inspect, json.decoder))[:150_000]
PIECE = 4096  # small pieces: the texts above are cut some thirty times
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)


def _trained(model, pre_tokenizer=None, normalizer=None, trainer=trainers.BpeTrainer, **options):
    tokenizer = Tokenizer(model)
    if pre_tokenizer is not None:
        tokenizer.pre_tokenizer = pre_tokenizer
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    specials = ["<unk>", "<s>", "</s>"]
    trainer = trainer(vocab_size=400, special_tokens=specials, **options)
    tokenizer.train_from_iterator(PROSE.splitlines()[:3000], trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", bos_token="<s>")


def _llama3():
    split = pre_tokenizers.Split(Regex(LLAMA3_PATTERN), "isolated")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    return _trained(models.BPE(), pre_tokenizers.Sequence([split, byte_level]), initial_alphabet=alphabet)


def _metaspace():
    return _trained(models.BPE(unk_token="<unk>"), pre_tokenizers.Metaspace(prepend_scheme="first"))


def _wordpiece():
    pre_tokenizer, normalizer = pre_tokenizers.BertPreTokenizer(), normalizers.BertNormalizer()
    return _trained(models.WordPiece(unk_token="<unk>"), pre_tokenizer, normalizer, trainers.WordPieceTrainer)


def _llama2():
    prepend = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    return _trained(models.BPE(unk_token="<unk>", byte_fallback=True), None, prepend)


TOKENIZERS = {
    # the tests' own: byte-level BPE (GPT-2 / GPT-NeoX / OLMo pre-tokenizer)
    "fixtures": lambda tmp: train_tokenizer(tmp / "fixtures"),
    "tiny_llama": lambda tmp: tiny_llama.train_tokenizer(tmp / "tiny_llama"),
    # the other families: Llama 3's regex, SentencePiece-style Metaspace, BERT's WordPiece, and Llama 2's
    # normalizer that prepends "▁" to every text (never cut: the check refuses every cut)
    "llama3": lambda tmp: _llama3(),
    "metaspace": lambda tmp: _metaspace(),
    "wordpiece": lambda tmp: _wordpiece(),
    "llama2": lambda tmp: _llama2(),
}


@pytest.fixture(scope="module", params=list(TOKENIZERS))
def tokenizer(request, tmp_path_factory):
    return request.param, TOKENIZERS[request.param](tmp_path_factory.mktemp(request.param))


class LargestCall:
    """The tokenizer under test, recording the longest text it was ever asked to tokenize in one call."""

    def __init__(self, tokenizer):
        self.__dict__["inner"] = tokenizer
        self.__dict__["largest"] = 0

    def __call__(self, texts, **kwargs):
        self.__dict__["largest"] = max(self.largest, *map(len, texts))
        return self.inner(texts, **kwargs)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __setattr__(self, name, value):
        setattr(self.inner, name, value)


@pytest.mark.parametrize("text", [PROSE, CODE], ids=["prose", "code"])
def test_a_long_document_in_pieces_has_the_ids_of_the_whole_text(tokenizer, text, monkeypatch):
    name, tokenizer = tokenizer
    whole = tokenizer(text, add_special_tokens=False)["input_ids"]
    monkeypatch.setattr(tokens, "PIECE_CHARS", PIECE)
    recorder = LargestCall(tokenizer)
    store = tokens.tokenize(recorder, [("doc", text), ("next", "a short one")], 2, None, "key", show_progress=False)
    assert store[0].tolist() == whole
    assert store[1].tolist() == tokenizer("a short one", add_special_tokens=False)["input_ids"]
    assert tokens.encode_texts(tokenizer, [("doc", text)]) == [whole]  # what a release manifest counts
    if name == "llama2":  # every text starts with "▁": no cut keeps the ids, so the document stays whole
        assert recorder.largest == len(text)
    else:  # never more than two pieces' worth at once (the check's windows are smaller)
        assert recorder.largest <= 2 * PIECE
