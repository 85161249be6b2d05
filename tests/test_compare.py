"""`paloma compare`: paired bootstrap intervals with correct coverage, and a CLI that refuses bad pairs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from eval_folders import synthetic_records, write_eval_output

from paloma.analysis.compare import BootstrapConfig, compare_runs, paired_difference_interval
from paloma.analysis.runs import load_run
from paloma.errors import PalomaError
from paloma.metrics import LN2


def _simulated_domain(rng: np.random.Generator, n_docs: int, mu_a: float, mu_b: float) -> np.ndarray:
    """Paired documents whose population per-token losses are exactly mu_a and mu_b.

    Each document has a shared difficulty u (so pairing matters) and its own noise; both have mean zero and
    are independent of length, so Σnll/Σtokens converges to mu. Columns: nll_a, tokens_a, nll_b, tokens_b, bytes.
    """
    tokens = rng.integers(50, 500, n_docs).astype(float)
    difficulty = rng.normal(0.0, 0.5, n_docs)
    nll_a = tokens * (mu_a + difficulty + rng.normal(0.0, 0.2, n_docs))
    nll_b = tokens * (mu_b + difficulty + rng.normal(0.0, 0.2, n_docs))
    return np.column_stack([nll_a, tokens, nll_b, tokens, 4 * tokens])


def test_paired_bootstrap_95_interval_covers_the_true_difference_about_95_percent_of_the_time():
    # 400 simulated domains of 200 documents; the coverage estimate has a standard error of about 1.1%,
    # so [0.92, 0.98] is about three standard errors either side of 0.95.
    mu_a, mu_b = 2.0, 1.95
    true_ppl = math.exp(mu_b) - math.exp(mu_a)
    true_bpb = (mu_b - mu_a) / (4 * LN2)
    rng = np.random.default_rng(7)
    config = BootstrapConfig(replicates=500, level=0.95)
    hits = {"ppl": 0, "bpb": 0}
    trials = 400
    for _ in range(trials):
        ci = paired_difference_interval(_simulated_domain(rng, 200, mu_a, mu_b), config, rng)
        hits["ppl"] += ci["ppl"][0] <= true_ppl <= ci["ppl"][1]
        hits["bpb"] += ci["bpb"][0] <= true_bpb <= ci["bpb"][1]
    assert 0.92 <= hits["ppl"] / trials <= 0.98
    assert 0.92 <= hits["bpb"] / trials <= 0.98


def test_pairing_cancels_shared_document_difficulty():
    # B is A plus exactly 0.1 nats per token on every document: every paired replicate sees the same
    # difference, so the interval of the bpb difference collapses to the point 0.1 / (4 ln 2).
    rng = np.random.default_rng(1)
    columns = _simulated_domain(rng, 300, 2.0, 2.0)
    columns[:, 2] = columns[:, 0] + 0.1 * columns[:, 1]
    lo, hi = paired_difference_interval(columns, BootstrapConfig(replicates=200), rng)["bpb"]
    assert lo == pytest.approx(0.1 / (4 * LN2), rel=1e-9)
    assert hi == pytest.approx(0.1 / (4 * LN2), rel=1e-9)


DOMAINS = {("c4_en", "c4_en"): 60, ("m2d2_s2orc", "Art"): 40, ("m2d2_s2orc", "Physics"): 50}


def _pair(tmp_path, shift_b: dict, **kwargs_b):
    rng = np.random.default_rng(3)
    base = {k: 3.0 for k in DOMAINS}
    records_a = synthetic_records(rng, DOMAINS, base)
    records_b = [{**r, "nll_sum": r["nll_sum"] + shift_b[(r["source"], r["domain"])] * r["tokens"]} for r in records_a]
    a = write_eval_output(tmp_path / "a", records_a)
    b = write_eval_output(tmp_path / "b", records_b, **kwargs_b)
    return a, b, records_a, records_b


def _ppl(records, key):
    rs = [r for r in records if (r["source"], r["domain"]) == key]
    return math.exp(sum(r["nll_sum"] for r in rs) / sum(r["tokens"] for r in rs))


def test_compare_reports_differences_wins_and_extremes(tmp_path):
    shift = {("c4_en", "c4_en"): -0.2, ("m2d2_s2orc", "Art"): 0.3, ("m2d2_s2orc", "Physics"): -0.001}
    a, b, records_a, records_b = _pair(tmp_path, shift)
    result = compare_runs(load_run(a), load_run(b), BootstrapConfig(replicates=300))
    rows = {(r["source"], r["domain"]): r for r in result["domains"]}
    for key in DOMAINS:
        assert rows[key]["ppl_diff"] == pytest.approx(_ppl(records_b, key) - _ppl(records_a, key), rel=1e-9)
        lo, hi = rows[key]["ppl_ci"]
        assert lo <= rows[key]["ppl_diff"] <= hi
    assert rows[("c4_en", "c4_en")]["winner"] == "b" and rows[("c4_en", "c4_en")]["significant"]
    assert rows[("m2d2_s2orc", "Art")]["winner"] == "a" and rows[("m2d2_s2orc", "Art")]["significant"]
    summary = result["summary"]
    assert summary["b_wins"] == 2 and summary["a_wins"] == 1
    assert summary["b_win_share"] == pytest.approx(2 / 3)
    assert result["most_improved"][0]["domain"] == "c4_en"
    assert result["most_regressed"][0]["domain"] == "Art"
    m2d2 = next(s for s in result["sources"] if s["source"] == "m2d2_s2orc")
    expected_macro = np.mean([_ppl(records_b, k) - _ppl(records_a, k) for k in DOMAINS if k[0] == "m2d2_s2orc"])
    assert m2d2["macro_ppl_diff"] == pytest.approx(expected_macro, rel=1e-9)
    assert m2d2["macro_ppl_ci"][0] <= m2d2["macro_ppl_diff"] <= m2d2["macro_ppl_ci"][1]


def test_without_records_the_comparison_has_point_differences_only(tmp_path):
    shift = dict.fromkeys(DOMAINS, -0.1)
    a, _, _, records_b = _pair(tmp_path, shift)
    b = write_eval_output(tmp_path / "b_sums_only", records_b, with_records=False)
    result = compare_runs(load_run(a), load_run(b))
    assert result["bootstrap"] is None
    assert all(r["ppl_ci"] is None and r["winner"] == "b" for r in result["domains"])


def test_different_documents_are_refused(tmp_path):
    a, _, _, records_b = _pair(tmp_path, dict.fromkeys(DOMAINS, 0.0))
    b = write_eval_output(tmp_path / "fewer", records_b[1:])
    with pytest.raises(PalomaError, match=r"c4_en/c4_en: the runs scored different documents \(1 only in A"):
        compare_runs(load_run(a), load_run(b))


def test_cli_refuses_different_protocols_unless_forced_and_writes_json_and_csv(tmp_path, paloma_cli):
    shift = dict.fromkeys(DOMAINS, 0.05)
    a, b, _, _ = _pair(tmp_path, shift, protocol={"max_length": 1024, "fingerprint": "fp-other"})
    refused = paloma_cli("compare", a, b)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        "paloma compare: error: the runs used different evaluation protocols (max_length: 2048 vs 1024); their "
        "numbers are not comparable. Pass --force to compare anyway (bits per byte stays comparable across "
        "tokenizers, perplexity does not)"
    ]
    out = tmp_path / "out"
    forced = paloma_cli("compare", a, b, "--force", "--bootstrap", "200", "--output", out, check=True)
    assert "warning: protocols differ (max_length), forced" in forced.stdout
    assert "B is better on 0.0% of 3 domains, A on 100.0%; significantly: B on 0.0%, A on 100.0%" in forced.stdout
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["protocol"]["differences"] == {"max_length": [2048, 1024]}
    assert saved["protocol"]["forced"] is True
    csv_lines = (out / "comparison.csv").read_text().splitlines()
    assert csv_lines[0].startswith("source,domain,documents,")
    assert len(csv_lines) == 1 + len(DOMAINS)
