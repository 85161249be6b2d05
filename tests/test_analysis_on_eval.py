"""The analyses on real `paloma eval` outputs of tiny models: formats line up end to end."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from fixtures import NON_ASCII, pydoc_paragraphs, write_release

from paloma.analysis.compare import BootstrapConfig, compare_runs
from paloma.analysis.ranking import Entry, rank_stability
from paloma.analysis.reweight import reweight, token_shares
from paloma.analysis.runs import load_run
from paloma.analysis.tokens import select, token_report
from paloma.eval.data import DataSpec
from paloma.evaluate import EvalConfig, evaluate
from paloma.merge import make_recipe, merge
from paloma.token_stats import check_against_sums, load_token_stats


def _evaluate(model: Path, release: Path, output: Path, token_stats: bool = True):
    config = EvalConfig(
        model=str(model),
        data=DataSpec(path=str(release)),
        output=output,
        max_length=16,
        token_stats=token_stats,
        progress=False,
        cache_dir=output.parent / "cache",
        command=["test"],
    )
    evaluate(config)
    return load_run(output)


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    paragraphs = pydoc_paragraphs()
    return write_release(
        tmp_path_factory.mktemp("analysis-release"),
        {
            ("c4_en", None): paragraphs[:10],
            ("redpajama", "books"): paragraphs[40:48],
            ("redpajama", "arxiv"): paragraphs[80:86],
            ("dolma-v1_5", "wiki"): NON_ASCII,
        },
    )


@pytest.fixture(scope="module")
def runs(tiny, release, tmp_path_factory):
    root = tmp_path_factory.mktemp("analysis-eval")
    return {kind: _evaluate(tiny["models"][kind], release, root / kind) for kind in ("llama", "olmo", "gpt_neox")}


def test_token_statistics_of_a_real_run_sum_to_its_domain_totals(runs):
    run = runs["llama"]
    stats = load_token_stats(run.path)
    assert set(stats.domains) == set(run.domain_sums)
    assert check_against_sums(stats, run.domain_sums) == []
    report = token_report(stats, select(stats), against=load_token_stats(runs["olmo"].path))
    total_change = sum(s.nll_sum for s in runs["olmo"].domain_sums.values()) - sum(
        s.nll_sum for s in run.domain_sums.values()
    )
    assert report["comparison"]["total_loss_change"] == pytest.approx(total_change, rel=1e-9)


def test_compare_two_real_runs(runs):
    result = compare_runs(runs["llama"], runs["olmo"], BootstrapConfig(replicates=200))
    assert result["protocol"]["same"] and result["protocol"]["same_tokenizer"]
    rows = {(r["source"], r["domain"]): r for r in result["domains"]}
    assert set(rows) == set(runs["llama"].domain_sums)
    for key, row in rows.items():
        a, b = runs["llama"].domain_sums[key], runs["olmo"].domain_sums[key]
        assert row["ppl_diff"] == pytest.approx(math.exp(b.nll_sum / b.tokens) - math.exp(a.nll_sum / a.tokens))
        assert row["ppl_ci"][0] <= row["ppl_diff"] <= row["ppl_ci"][1]


def test_rank_stability_and_reweighting_of_real_runs(runs):
    result = rank_stability([Entry.from_run(r, kind) for kind, r in runs.items()], replicates=100)
    values = {r["name"]: r["value"] for r in result["ranking"]}
    for kind, run in runs.items():
        assert values[kind] == pytest.approx(run.results["suite"]["macro_ppl"], rel=1e-9)
    llama = runs["llama"]
    assert reweight(llama.domain_sums, token_shares(llama.domain_sums))["ppl"] == pytest.approx(
        llama.results["suite"]["micro_ppl"], rel=1e-12
    )


def test_a_merge_of_a_model_with_itself_evaluates_identically(tiny, release, runs, tmp_path):
    merged = merge(make_recipe([tiny["models"]["llama"], tiny["models"]["llama"]]), tmp_path / "self-merge")
    run = _evaluate(merged, release, tmp_path / "eval", token_stats=False)
    assert run.domain_sums == runs["llama"].domain_sums


def test_records_of_a_killed_and_resumed_run_read_like_any_other(tmp_path):
    """Repeated ids get distinct keys and an incomplete last line is skipped, as the evaluator writes them."""
    import json

    from paloma.analysis.runs import read_records

    folder = tmp_path / "records"
    folder.mkdir()
    rows = [
        {"key": "c4_en/c4_en/x", "id": "x", "source": "c4_en", "domain": "c4_en", "tokens": 3, "bytes": 9,
         "nll_sum": 6.0},
        {"key": "c4_en/c4_en/x#2", "id": "x", "source": "c4_en", "domain": "c4_en", "tokens": 2, "bytes": 5,
         "nll_sum": 1.0},
    ]  # fmt: skip
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"key": "c4_en/c4_en/y", "nll'
    (folder / "rank0-of1-attempt1.jsonl").write_text(text)
    docs = read_records(folder)[("c4_en", "c4_en")]
    assert sorted(docs.nll) == [1.0, 6.0]
