"""Metrics against hand computation: domain micro values, source macro/micro, suite aggregates, bootstrap."""

import math

import numpy as np
import pytest

from paloma.metrics import aggregate_records, bootstrap_intervals
from paloma.registry import load_registry


def rec(source, domain, nll, tokens, n_bytes, chars=None, words=1, i=0):
    return {
        "source": source, "domain": domain, "id": str(i), "nll_sum": nll, "tokens": tokens, "bytes": n_bytes,
        "chars": n_bytes if chars is None else chars, "words": words,
    }  # fmt: skip


RECORDS = [
    # redpajama/arxiv: two documents
    rec("redpajama", "arxiv", 10.0, 5, 20, words=4, i=1),
    rec("redpajama", "arxiv", 2.0, 3, 12, words=2, i=2),
    # redpajama/books: one document, one empty document
    rec("redpajama", "books", 30.0, 10, 40, words=8, i=3),
    rec("redpajama", "books", 0.0, 0, 0, words=0, i=4),
    # c4_en: single-domain source
    rec("c4_en", "c4_en", 8.0, 4, 16, words=3, i=5),
    # gab: fringe, excluded from ordinary perplexity
    rec("gab", "gab", 50.0, 5, 10, words=2, i=6),
    # dolma stack_uniform: code, excluded from ordinary perplexity
    rec("dolma-v1_5", "stack_uniform", 9.0, 3, 9, words=1, i=7),
    rec("dolma-v1_5", "books", 6.0, 3, 9, words=1, i=8),
]


@pytest.fixture(scope="module")
def results():
    return aggregate_records(RECORDS, load_registry())


def test_domain_micro_values(results):
    arxiv = results["sources"]["redpajama"]["domains"]["arxiv"]
    assert arxiv["nll_sum"] == 12.0 and arxiv["tokens"] == 8 and arxiv["bytes"] == 32 and arxiv["documents"] == 2
    assert arxiv["ppl"] == pytest.approx(math.exp(12 / 8))
    assert arxiv["bpb"] == pytest.approx(12 / (32 * math.log(2)))
    assert arxiv["byte_ppl"] == pytest.approx(math.exp(12 / 32))
    assert arxiv["word_ppl"] == pytest.approx(math.exp(12 / 6))
    assert 2 ** arxiv["bpb"] == pytest.approx(arxiv["byte_ppl"])


def test_empty_documents_score_nothing_but_are_counted(results):
    books = results["sources"]["redpajama"]["domains"]["books"]
    assert books["documents"] == 2 and books["empty_documents"] == 1 and books["tokens"] == 10
    assert books["ppl"] == pytest.approx(math.exp(3.0))


def test_source_macro_is_the_mean_of_domain_perplexities(results):
    red = results["sources"]["redpajama"]
    assert red["macro_ppl"] == pytest.approx((math.exp(12 / 8) + math.exp(30 / 10)) / 2)
    assert red["macro_bpb"] == pytest.approx((12 / (32 * math.log(2)) + 30 / (40 * math.log(2))) / 2)


def test_source_micro_is_token_weighted(results):
    red = results["sources"]["redpajama"]
    assert red["micro_ppl"] == pytest.approx(math.exp(42 / 18))
    assert red["micro_bpb"] == pytest.approx(42 / (72 * math.log(2)))


def test_single_domain_source_macro_equals_micro(results):
    c4 = results["sources"]["c4_en"]
    assert c4["macro_ppl"] == pytest.approx(c4["micro_ppl"]) == pytest.approx(math.exp(2.0))


def test_suite_macro_is_the_mean_over_sources(results):
    expected = np.mean([results["sources"][s]["macro_ppl"] for s in ("redpajama", "c4_en", "gab", "dolma-v1_5")])
    assert results["suite"]["macro_ppl"] == pytest.approx(expected)


def test_ordinary_perplexity_leaves_out_fringe_and_code(results):
    # redpajama (42 / 18) + c4_en (8 / 4) + dolma books (6 / 3); not gab, not stack_uniform
    assert results["suite"]["ordinary_ppl"] == pytest.approx(math.exp((42 + 8 + 6) / (18 + 4 + 3)))
    assert results["suite"]["ordinary_tokens"] == 25
    assert results["suite"]["micro_ppl"] == pytest.approx(math.exp((42 + 8 + 50 + 15) / (18 + 4 + 5 + 6)))


def test_missing_and_unknown_domains_are_reported():
    out = aggregate_records([rec("redpajama", "arxiv", 1, 1, 1), rec("redpajama", "poetry", 1, 1, 1)], load_registry())
    red = out["sources"]["redpajama"]
    assert red["unknown_domains"] == ["poetry"]
    assert set(red["missing_domains"]) == {"books", "c4", "commoncrawl", "github", "stackexchange", "wikipedia"}


def test_undivided_manosphere_is_not_missing_domains():
    out = aggregate_records([rec("manosphere_meta_sep", "manosphere_meta_sep", 1, 1, 1)], load_registry())
    assert out["sources"]["manosphere_meta_sep"]["missing_domains"] == []
    assert out["sources"]["manosphere_meta_sep"]["unknown_domains"] == []


def test_bootstrap_is_seeded_and_brackets_the_estimate():
    rng = np.random.default_rng(0)
    records = [rec("c4_en", "c4_en", float(rng.uniform(10, 60)), int(t), int(t) * 4, i=i)
               for i, t in enumerate(rng.integers(5, 20, size=200))]  # fmt: skip
    a = bootstrap_intervals(records, n=500, seed=7)
    b = bootstrap_intervals(records, n=500, seed=7)
    assert a == b
    low, high = a["domains"][("c4_en", "c4_en")]["ppl"]
    point = aggregate_records(records)["sources"]["c4_en"]["domains"]["c4_en"]["ppl"]
    assert low < point < high
    # a resample of 200 documents: the interval's half-width is near 1.96 standard errors of the ratio estimator
    nll = np.array([r["nll_sum"] for r in records])
    tok = np.array([r["tokens"] for r in records], dtype=float)
    ratio = nll.sum() / tok.sum()
    se = np.sqrt(np.sum((nll - ratio * tok) ** 2)) / tok.sum()  # delta method for a ratio of sums
    assert (math.log(high) - math.log(low)) / 2 == pytest.approx(1.96 * se, rel=0.2)
