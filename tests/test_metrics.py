"""Metrics against hand computation: domain micro values, source macro/micro, suite aggregates, and the
intervals results.json carries (the interval policy of `paloma.intervals`, shared with `paloma compare`)."""

import math

import numpy as np
import pytest
from scipy.stats import t as student_t

from paloma.eval.results import build_results
from paloma.intervals import MIN_EFFECTIVE_DOCUMENTS, effective_documents
from paloma.metrics import aggregate_records
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


def _domain(rng, source, domain, docs, start=0):
    """`docs` records of one domain with varied lengths and losses."""
    tokens = rng.integers(50, 200, size=docs)
    return [
        rec(source, domain, float(t * rng.uniform(2.0, 3.5)), int(t), int(t) * 4, i=start + i)
        for i, t in enumerate(tokens)
    ]


def test_intervals_are_seeded_and_studentized_around_the_estimate():
    rng = np.random.default_rng(0)
    records = _domain(rng, "c4_en", "c4_en", 200)
    a = build_results(records, None, {}, bootstrap=500, bootstrap_seed=7)
    assert a == build_results(records, None, {}, bootstrap=500, bootstrap_seed=7)
    ci = a["sources"]["c4_en"]["domains"]["c4_en"]["ci"]
    low, high = ci["bpb"]
    point = a["sources"]["c4_en"]["domains"]["c4_en"]["bpb"]
    assert low < point < high
    # independently: the delta-method standard error of a ratio of sums, and the Student-t interval on it,
    # which the reported interval (its union with the bootstrap-t one) contains
    nll = np.array([r["nll_sum"] for r in records])
    n_bytes = np.array([r["bytes"] for r in records], dtype=float)
    se = np.sqrt(np.sum((nll - nll.sum() / n_bytes.sum() * n_bytes) ** 2)) / n_bytes.sum() / math.log(2)
    half = student_t.ppf(0.975, effective_documents(n_bytes) - 1) * se
    assert low <= point - half * (1 - 1e-9) and high >= point + half * (1 - 1e-9)
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)
    assert ci["level"] == 0.95 and ci["n"] == 500 and ci["effective_documents"] == effective_documents(n_bytes)


@pytest.mark.parametrize("docs", [1, 10])
def test_a_domain_with_too_few_documents_gets_no_interval(docs):
    """Issue 19: a 1-document domain got a zero-width interval, and a 10-document domain's "95%" interval held
    the truth in 91% of draws; compare gives neither an interval, and results now follow the same policy."""
    rng = np.random.default_rng(1)
    records = _domain(rng, "c4_en", "c4_en", 200) + _domain(rng, "c4_en", "tiny", docs, start=1000)
    results = build_results(records, None, {}, bootstrap=200)
    source = results["sources"]["c4_en"]
    assert source["domains"]["tiny"]["ci"] is None
    assert source["domains"]["c4_en"]["ci"]["ppl"][0] < source["domains"]["c4_en"]["ppl"]
    # the source's macro value needs every domain's interval (or 30 domains to resample): none either,
    # and so none for the suite
    assert source["ci"] is None and results["suite"]["ci"] is None


def test_the_threshold_is_effective_documents_not_the_count():
    # 40 documents, one of them carrying almost all the bytes: about 1.6 effective documents
    rng = np.random.default_rng(2)
    records = _domain(rng, "c4_en", "c4_en", 40)
    records[0] = rec("c4_en", "c4_en", 250000.0, 100000, 400000, words=80000, i=0)
    n_bytes = np.array([r["bytes"] for r in records], dtype=float)
    assert len(records) > MIN_EFFECTIVE_DOCUMENTS > effective_documents(n_bytes)
    assert build_results(records, None, {}, bootstrap=100)["sources"]["c4_en"]["domains"]["c4_en"]["ci"] is None


def test_source_and_suite_intervals_combine_their_domains():
    rng = np.random.default_rng(3)
    records = _domain(rng, "s1", "a", 60) + _domain(rng, "s1", "b", 60, 100) + _domain(rng, "s2", "c", 60, 200)
    results = build_results(records, None, {}, bootstrap=300)
    for source in ("s1", "s2"):
        entry = results["sources"][source]
        low, high = entry["ci"]["macro_ppl"]
        assert low < entry["macro_ppl"] < high and entry["ci"]["scheme"] == "documents within domains"
    suite = results["suite"]
    assert suite["ci"]["macro_bpb"][0] < suite["macro_bpb"] < suite["ci"]["macro_bpb"][1]
    # two independent sources: the suite's interval is narrower than each source's
    width = suite["ci"]["macro_bpb"][1] - suite["ci"]["macro_bpb"][0]
    assert all(width < np.ptp(results["sources"][s]["ci"]["macro_bpb"]) for s in ("s1", "s2"))


def test_intervals_of_a_well_sampled_domain_cover_at_their_level():
    """60 documents (about 45 effective) from a known population, 300 draws: the interval holds the
    population value about 95% of the time (a binomial 95% band around 0.95 at 300 draws reaches down to 0.925)."""
    rng = np.random.default_rng(4)
    tokens_pop = rng.integers(20, 400, size=20000)
    nll_pop = tokens_pop * rng.gamma(9.0, 0.3, size=20000)
    truth = nll_pop.sum() / (4 * tokens_pop.sum() * math.log(2))
    inside = 0
    for draw in range(300):
        pick = rng.integers(0, 20000, size=60)
        records = [
            rec("s", "d", float(nll_pop[j]), int(tokens_pop[j]), int(tokens_pop[j]) * 4, i=i)
            for i, j in enumerate(pick)
        ]
        ci = build_results(records, None, {}, bootstrap=200, bootstrap_seed=draw)["sources"]["s"]["domains"]["d"]["ci"]
        inside += ci["bpb"][0] <= truth <= ci["bpb"][1]
    assert inside / 300 >= 0.92
