"""The lm-eval preset is lm-evaluation-harness: its own `HFLM.loglikelihood_rolling`, run here, per domain.

Two tokenizer kinds: a Llama-style one whose encoding adds its own BOS (lm-eval keeps it and prepends its prefix
token as well: one more scored token per document), and a GPT-NeoX-style EOS-only one (no BOS: the prefix is EOS,
nothing added). Per domain, tokens, the NLL sum, words (as lm-eval's `paloma_*` tasks count them) and bytes must
equal what lm-eval computes; per source, word and byte perplexity and bits per byte as lm-eval aggregates them.
"""

from __future__ import annotations

import re

import pytest
from fixtures import NON_ASCII, build_model, pydoc_paragraphs, write_release

from paloma.eval.data import DataSpec, count_words
from paloma.eval.evaluate import EvalConfig, evaluate
from paloma.eval.records import load_records
from paloma.protocol import LM_EVAL_MATCHED

L = 16


@pytest.fixture(scope="module")
def tokenizer_kinds(tiny, tmp_path_factory):
    """{kind: model folder}: "bos" a tiny Llama whose tokenizer adds <s>, "eos" a tiny GPT-NeoX without a BOS."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    root = tmp_path_factory.mktemp("kinds")
    base = tiny["tokenizer"].backend_tokenizer
    bos = base.__class__.from_str(base.to_str())
    bos.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 2)])
    tokenizers = {
        "bos": PreTrainedTokenizerFast(tokenizer_object=bos, eos_token="<|endoftext|>", pad_token="<|padding|>",
                                       bos_token="<s>"),
        "eos": PreTrainedTokenizerFast(tokenizer_object=base.__class__.from_str(base.to_str()),
                                       eos_token="<|endoftext|>", pad_token="<|padding|>"),
    }  # fmt: skip
    folders = {}
    for kind, architecture in (("bos", "llama"), ("eos", "gpt_neox")):
        folders[kind] = root / kind
        build_model(architecture, len(tokenizers[kind]), folders[kind], max_positions=64, seed=3)
        tokenizers[kind].save_pretrained(folders[kind])
    return folders


@pytest.fixture(scope="module")
def corpus():
    """Whitespace at the edges, an empty text, a text that begins with the BOS text, long and non-ASCII texts."""
    paragraphs = pydoc_paragraphs()
    return {
        ("c4_en", None): [paragraphs[3], "  leading spaces", "trailing newline\n", "", " ", "x"],
        ("redpajama", "arxiv"): [" ".join(paragraphs[60:64]), "<s>starts with the BOS text", paragraphs[70]],
        ("redpajama", "books"): ["\n" + paragraphs[80] + "\n\n", paragraphs[81][:50]],
        ("dolma-v1_5", "wiki"): NON_ASCII[:3],
    }


def harness_per_domain(model_dir, corpus) -> dict:
    """lm-evaluation-harness on each domain's texts: its scored tokens, −Σ log-likelihood, words and bytes."""
    from lm_eval.api.instance import Instance
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.models.huggingface import HFLM

    harness = HFLM(pretrained=str(model_dir), max_length=L, batch_size=3, device="cpu", dtype="float64")
    out = {}
    for (source, domain), texts in corpus.items():
        requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
        logliks = harness.loglikelihood_rolling(requests, disable_tqdm=True)
        out[(source, domain or source)] = {
            "tokens": sum(len(harness.tok_encode(t)) for t in texts),  # every encoded token is scored once
            "nll_sum": -sum(logliks),
            "words": sum(ConfigurableTask.count_words(t) for t in texts),
            "bytes": sum(ConfigurableTask.count_bytes(t) for t in texts),
            "items": list(zip(logliks, texts, strict=True)),
        }
    return out


@pytest.mark.parametrize("kind", ["bos", "eos"])
def test_lm_eval_preset_equals_hflm_loglikelihood_rolling_per_domain(tokenizer_kinds, corpus, tmp_path, kind):
    model_dir = tokenizer_kinds[kind]
    data = write_release(tmp_path / "data", corpus)
    config = EvalConfig(model=str(model_dir), data=DataSpec(path=str(data)), output=tmp_path / "out",
                        preset="lm-eval-harness", max_length=L, dtype="float64", cache_dir=None, progress=False,
                        batch_tokens=3 * L)  # fmt: skip
    results = evaluate(config)
    theirs = harness_per_domain(model_dir, corpus)
    for (source, domain), expected in theirs.items():
        ours = results["sources"][source]["domains"][domain]
        assert (ours["tokens"], ours["words"], ours["bytes"]) == (
            expected["tokens"],
            expected["words"],
            expected["bytes"],
        ), (source, domain)
        assert ours["nll_sum"] == pytest.approx(expected["nll_sum"], rel=1e-12, abs=1e-12)
    protocol = results["protocol"]
    assert protocol["matches"] == LM_EVAL_MATCHED and protocol["word_count"] == "re-split"
    assert protocol["added_before"] == ([2] if kind == "bos" else [])
    assert protocol["prefix_token_id"] == (2 if kind == "bos" else 0)


def test_a_bos_tokenizer_scores_its_own_bos_after_the_prefix(tokenizer_kinds, tmp_path):
    """The doubled BOS: lm-eval scores <s> after <s>, so a document scores one token more than it has."""
    text = "One short sentence."
    data = write_release(tmp_path / "data", {("c4_en", None): [text]})
    own = len(pydoc_tokenizer(tokenizer_kinds["bos"])(text, add_special_tokens=False)["input_ids"])
    for preset, expected in (("lm-eval-harness", own + 1), ("paloma", own)):
        config = EvalConfig(model=str(tokenizer_kinds["bos"]), data=DataSpec(path=str(data)), output=tmp_path / preset,
                            preset=preset, max_length=L, cache_dir=None, progress=False)  # fmt: skip
        evaluate(config)
        (record,) = load_records(tmp_path / preset)
        assert record["tokens"] == expected


def pydoc_tokenizer(folder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)


def test_per_source_word_and_byte_perplexity_as_lm_eval_aggregates_them(tokenizer_kinds, corpus, tmp_path):
    from lm_eval.api.metrics import bits_per_byte, weighted_perplexity
    from lm_eval.api.task import ConfigurableTask

    model_dir = tokenizer_kinds["bos"]
    data = write_release(tmp_path / "data", corpus)
    config = EvalConfig(model=str(model_dir), data=DataSpec(path=str(data)), output=tmp_path / "out",
                        preset="lm-eval-harness", max_length=L, dtype="float64", cache_dir=None,
                        progress=False)  # fmt: skip
    results = evaluate(config)
    theirs = harness_per_domain(model_dir, corpus)
    for source in {s for s, _ in theirs}:
        items = [item for (s, _), entry in theirs.items() if s == source for item in entry["items"]]
        words = [(ll, ConfigurableTask.count_words(t)) for ll, t in items]
        n_bytes = [(ll, ConfigurableTask.count_bytes(t)) for ll, t in items]
        ours = results["sources"][source]
        assert ours["word_ppl"] == pytest.approx(weighted_perplexity(words), rel=1e-10)
        assert ours["byte_ppl"] == pytest.approx(weighted_perplexity(n_bytes), rel=1e-10)
        assert ours["micro_bpb"] == pytest.approx(bits_per_byte(n_bytes), rel=1e-10)


@pytest.mark.parametrize(
    "text", ["", " ", "a", " a", "a ", "  a  b \n", "\n\n", "a\u00a0b", "tab\there", "\u2003lead", "x\x1cy", "end\x1f"]
)
def test_word_counts_follow_each_rule(text):
    assert count_words(text, "re-split") == len(re.split(r"\s+", text))
    assert count_words(text, "split") == len(text.split())
