"""The analyses on real `paloma eval` outputs of tiny models: formats line up end to end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from fixtures import NON_ASCII, pydoc_paragraphs, write_release

from paloma.analysis.compare import BootstrapConfig, compare_runs
from paloma.analysis.merge import make_recipe, merge
from paloma.analysis.ranking import Entry, rank_stability
from paloma.analysis.reweight import reweight, token_shares
from paloma.analysis.runs import load_run
from paloma.analysis.tokens import select, token_report
from paloma.eval.data import DataSpec
from paloma.eval.evaluate import EvalConfig, evaluate
from paloma.eval.token_stats import check_against_sums, load_token_stats


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
        # 6-10 documents a domain: too few for an honest interval, so none, and nothing is "significant"
        assert row["ppl_ci"] is None and row["significant"] is None and "effective" in row["interval_note"]
    assert result["summary"]["macro_ppl_ci"] is None and result["summary"]["interval_note"]


def test_aggregate_gives_intervals_where_compare_does(runs, tmp_path, paloma_cli):
    """Issue 19: `paloma aggregate --bootstrap` wrote intervals for 1- and 6-document domains that compare
    refuses (a zero-width one for a single document); now both follow the same minimum."""
    import shutil

    copy = tmp_path / "llama"
    shutil.copytree(runs["llama"].path, copy)
    proc = paloma_cli("aggregate", copy, "--bootstrap", "50", "--registry", "none")
    assert proc.returncode == 0, proc.stderr
    results = json.loads((copy / "results.json").read_text())
    compared = compare_runs(runs["llama"], runs["olmo"], BootstrapConfig(replicates=50))
    for row in compared["domains"]:
        entry = results["sources"][row["source"]]["domains"][row["domain"]]
        assert (entry["ci"] is None) == (row["ppl_ci"] is None)
    assert all(results["sources"][s]["ci"] is None for s in results["sources"]) and results["suite"]["ci"] is None


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


def _modes(root: Path) -> dict[str, int]:
    """Permission bits of `root` and everything below it, by path relative to `root`'s parent."""
    paths = [root, *root.rglob("*")]
    return {str(p.relative_to(root.parent)): p.stat().st_mode & 0o777 for p in paths}


def test_analysis_outputs_are_readable_like_any_other_file_under_umask_022(tiny, runs, tmp_path, paloma_cli):
    """Issue 10: fits, merges, comparisons, reports and SVGs are 0644, their folders 0755, under umask 022."""
    import os

    llama, olmo = runs["llama"].path, runs["olmo"].path
    previous = os.umask(0o022)
    try:
        paloma_cli("compare", llama, olmo, "--bootstrap", "50", "--output", tmp_path / "cmp", check=True)
        paloma_cli(
            "merge", tiny["models"]["llama"], tiny["models"]["llama"], "--output", tmp_path / "merged", check=True
        )
        paloma_cli("tokens", "report", llama, "--output", tmp_path / "reports" / "tokens.json", check=True)
        paloma_cli("reweight", llama, "--shares-from", olmo, "--output", tmp_path / "reports" / "rw.json", check=True)
        paloma_cli(
            "rank-stability",
            llama,
            olmo,
            "--bootstrap",
            "20",
            "--output",
            tmp_path / "reports" / "rank.json",
            check=True,
        )
        ladder = _ladder_of_runs(tmp_path / "ladder-runs")
        paloma_cli(
            "ladder",
            "fit",
            *ladder[:-1],
            "--holdout",
            ladder[-1],
            "--levels",
            "suite",
            "--no-loo",
            "--output",
            tmp_path / "fit",
            check=True,
        )
    finally:
        os.umask(previous)
    modes = {}
    for folder in ("cmp", "merged", "reports", "fit"):
        modes.update(_modes(tmp_path / folder))
    expected_files = {"cmp/forest.svg", "cmp/comparison.json", "fit/ladder.svg", "fit/holdout.csv", "merged/merge.json"}
    assert expected_files <= set(modes)
    wrong = {p: oct(m) for p, m in modes.items() if m != (0o755 if (tmp_path / p).is_dir() else 0o644)}
    assert not wrong, wrong


def _ladder_of_runs(root: Path) -> list[Path]:
    """Ten eval-like outputs on a known law: nine ladder runs (3 sizes × 3 budgets) and a bigger held-out one."""
    from eval_folders import write_eval_output

    from paloma.analysis.ladder import ScalingLaw

    law = ScalingLaw(E=1.69, A=406.4, alpha=0.34, B=410.7, beta=0.28)
    sizes = [(n, d) for d in (2e9, 4e9, 8e9) for n in (1e8, 2e8, 4e8)] + [(1.6e9, 3.2e10)]
    folders = []
    for i, (n, d) in enumerate(sizes):
        record = {
            "id": "0",
            "source": "c4_en",
            "domain": "c4_en",
            "tokens": 100,
            "bytes": 400,
            "nll_sum": 100 * float(law(n, d)),
        }
        model = {"name_or_path": f"l{i}", "non_embedding_parameters": n, "training_tokens": d}
        folders.append(write_eval_output(root / f"l{i}", [record], model=model))
    return folders
