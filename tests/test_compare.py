"""`paloma compare`: paired intervals with measured coverage, none where documents are too few, and a CLI."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from eval_folders import synthetic_records, write_eval_output

from paloma.analysis.compare import BootstrapConfig, compare_runs, domain_estimates, domain_intervals
from paloma.analysis.runs import load_run
from paloma.errors import PalomaError
from paloma.intervals import MIN_DOMAINS, MIN_EFFECTIVE_DOCUMENTS, effective_documents, mean_of, mean_over_items
from paloma.metrics import LN2
from paloma.registry import parse_registry


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


def _realistic_domain(rng: np.random.Generator, n_docs: int, sigma: float, effect: str) -> np.ndarray:
    """Paired documents with lognormal lengths (median 300 tokens, log-sd `sigma`: 1.5 is heavy-tailed).

    Per token, A's loss is 3 + difficulty + noise/√tokens, and B's is A's + 0.03 + a per-document effect of
    the change (mean zero, independent of length: normal, skewed or heavy-tailed) + its own noise, so the
    population differences are exactly 0.03 nats per token (bpb: 0.03 / (4 ln 2)) and e^3.03 − e^3 (ppl).
    """
    tokens = np.maximum(1.0, np.round(np.exp(rng.normal(math.log(300), sigma, n_docs))))
    change = {
        "normal": lambda: rng.normal(0.0, 0.1, n_docs),
        "skewed": lambda: rng.exponential(0.1, n_docs) - 0.1,
        "heavy": lambda: 0.1 * rng.standard_t(3, n_docs) / math.sqrt(3),
    }[effect]()
    loss_a = 3.0 + rng.normal(0.0, 0.5, n_docs) + rng.normal(0.0, 1.0, n_docs) / np.sqrt(tokens)
    loss_b = loss_a + 0.03 + change + rng.normal(0.0, 1.0, n_docs) / np.sqrt(tokens)
    return np.column_stack([tokens * loss_a, tokens, tokens * loss_b, tokens, 4 * tokens])


TRUE_DIFF = {"bpb": 0.03 / (4 * LN2), "ppl": math.exp(3.03) - math.exp(3.0)}


def test_wherever_an_interval_is_reported_it_covers_the_truth_at_least_93_percent_of_the_time():
    """The acceptance test of issue 15: 1-10 documents get no interval (the old percentile bootstrap
    covered 0%, 51%, 81% and 86-89% there); from 30 effective documents up, with light to heavy-tailed
    lengths and normal, skewed or heavy-tailed effects, the 95% intervals cover the true difference."""
    rng = np.random.default_rng(15)
    config = BootstrapConfig(replicates=500)
    hits, reported, withheld = {"ppl": 0, "bpb": 0}, 0, 0
    for sigma in (0.5, 1.0, 1.5):
        for effect in ("normal", "skewed", "heavy"):
            for n_docs in (1, 2, 5, 10, *rng.integers(40, 300, 24) / math.exp(-(sigma**2))):
                columns = _realistic_domain(rng, int(n_docs), sigma, effect)
                estimates = domain_intervals(columns, config, rng)
                if estimates is None:
                    assert effective_documents(columns[:, 4]) < MIN_EFFECTIVE_DOCUMENTS
                    withheld += 1
                    continue
                reported += 1
                for metric, estimate in estimates.items():
                    lo, hi = estimate.interval(0.95)
                    hits[metric] += lo <= TRUE_DIFF[metric] <= hi
    assert withheld >= 36 and reported >= 180  # every 1-10 document domain withheld, most large ones reported
    coverage = {metric: count / reported for metric, count in hits.items()}
    assert coverage["bpb"] >= 0.93 and coverage["ppl"] >= 0.93, coverage


def test_a_source_of_single_document_domains_gets_its_interval_from_resampling_domains():
    # M2D2-like: 60 domains of one document each. The true macro difference is the mean of the domains'
    # true differences (here they vary between domains too); resampling domains covers it.
    rng = np.random.default_rng(3)
    hits, trials = 0, 400
    for _ in range(trials):
        truth = rng.normal(0.03, 0.02, 60)  # per-domain true difference, nats per token
        observed = truth + rng.normal(0.0, 0.05, 60)  # one long document's worth of noise each
        lo, hi = mean_over_items(observed, 500, rng).interval(0.95)
        hits += lo <= truth.mean() <= hi
    assert hits / trials >= 0.93


def test_a_sources_interval_combines_its_domains():
    # Five domains with enough documents each: the macro difference's interval from the domains' replicates.
    rng = np.random.default_rng(4)
    config = BootstrapConfig(replicates=300)
    hits, trials = 0, 100
    for _ in range(trials):
        domains = [domain_intervals(_realistic_domain(rng, 150, 0.5, "skewed"), config, rng) for _ in range(4)]
        lo, hi = mean_of([d["bpb"] for d in domains]).interval(0.95)
        hits += lo <= TRUE_DIFF["bpb"] <= hi
    assert hits / trials >= 0.9  # 100 trials: a standard error of about 2%


def test_pairing_cancels_shared_document_difficulty():
    # B is A plus exactly 0.1 nats per token on every document: every paired replicate sees the same
    # difference, so the interval of the bpb difference collapses to the point 0.1 / (4 ln 2).
    rng = np.random.default_rng(1)
    columns = _simulated_domain(rng, 300, 2.0, 2.0)
    columns[:, 2] = columns[:, 0] + 0.1 * columns[:, 1]
    lo, hi = domain_estimates(columns, BootstrapConfig(replicates=200), rng)["bpb"].interval(0.95)
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
    assert "B is better on 0.0% of 3 domains, A on 100.0%; significantly: B on 0.0%, A on " in forced.stdout
    saved = json.loads((out / "comparison.json").read_text())
    assert saved["protocol"]["differences"] == {"max_length": [2048, 1024]}
    assert saved["protocol"]["forced"] is True
    csv_lines = (out / "comparison.csv").read_text().splitlines()
    assert csv_lines[0].startswith("source,domain,documents,")
    assert len(csv_lines) == 1 + len(DOMAINS)


def _folders_with_domains(tmp_path, domains: dict, shift: dict, name_b: str = "b"):
    rng = np.random.default_rng(5)
    records_a = synthetic_records(rng, domains, dict.fromkeys(domains, 3.0))
    records_b = [{**r, "nll_sum": r["nll_sum"] + shift[(r["source"], r["domain"])] * r["tokens"]} for r in records_a]
    return (
        write_eval_output(tmp_path / "a", records_a),
        write_eval_output(tmp_path / name_b, records_b),
        records_a,
        records_b,
    )


def test_few_document_domains_are_never_significant_and_the_overall_row_averages_sources(tmp_path):
    domains = {("c4_en", "c4_en"): 400, ("m2d2_s2orc", "Art"): 1, ("m2d2_s2orc", "Physics"): 3}
    shift = {("c4_en", "c4_en"): -0.05, ("m2d2_s2orc", "Art"): 0.5, ("m2d2_s2orc", "Physics"): 0.5}
    a, b, records_a, records_b = _folders_with_domains(tmp_path, domains, shift)
    result = compare_runs(load_run(a), load_run(b), BootstrapConfig(replicates=300))
    rows = {r["domain"]: r for r in result["domains"]}
    for small in ("Art", "Physics"):  # B is much worse there, but one or three documents prove nothing
        assert rows[small]["bpb_ci"] is None and rows[small]["significant"] is None
        assert "fewer than 30, no interval" in rows[small]["interval_note"]
    assert rows["c4_en"]["significant"] is True and rows["c4_en"]["bpb_ci"][1] < 0
    sources = {s["source"]: s for s in result["sources"]}
    assert sources["m2d2_s2orc"]["macro_bpb_ci"] is None  # 2 domains: too few to resample domains
    assert f"resampling domains needs at least {MIN_DOMAINS}" in sources["m2d2_s2orc"]["interval_note"]
    assert sources["c4_en"]["macro_bpb_ci"] == rows["c4_en"]["bpb_ci"]
    summary = result["summary"]
    per_source = [np.mean([_ppl(records_b, k) - _ppl(records_a, k) for k in domains if k[0] == s]) for s in sources]
    assert summary["macro_ppl_diff"] == pytest.approx(np.mean(per_source), rel=1e-9)  # sources equal, not domains
    assert summary["macro_ppl_ci"] is None and "m2d2_s2orc has no interval" in summary["interval_note"]
    assert summary["b_wins_significant"] == 1 and summary["domains_with_interval"] == 1


def test_with_a_registry_each_purpose_group_gets_its_row(tmp_path):
    domains = {("c4_en", "c4_en"): 60, ("m2d2_s2orc", "Art"): 40}
    a, b, _, _ = _folders_with_domains(tmp_path, domains, dict.fromkeys(domains, -0.1))
    registry = parse_registry(
        {
            "release": "mini",
            "sources": [
                {"name": "m2d2_s2orc", "group": "fine-grained", "domains": ["Art"]},
                {"name": "c4_en", "group": "standard", "domains": ["c4_en"]},
            ],
        }
    )
    result = compare_runs(load_run(a), load_run(b), BootstrapConfig(replicates=200), registry=registry)
    assert [s["source"] for s in result["sources"]] == ["m2d2_s2orc", "c4_en"]  # registry order
    groups = {g["group"]: g for g in result["groups"]}
    assert set(groups) == {"standard", "fine-grained"}
    sources = {s["source"]: s for s in result["sources"]}
    assert groups["standard"]["macro_bpb_diff"] == pytest.approx(sources["c4_en"]["macro_bpb_diff"])
    assert groups["standard"]["macro_bpb_ci"] == pytest.approx(sources["c4_en"]["macro_bpb_ci"], rel=0.05)


def test_the_forest_plot_draws_every_row_and_escapes_run_names(tmp_path, paloma_cli):
    domains = {("c4_en", "c4_en"): 60, ("m2d2_s2orc", "Art"): 40, ("m2d2_s2orc", "Physics"): 2}
    hostile = "b<script>alert(1)&"  # a run is named after its folder; no slash, so one folder
    a, b, _, _ = _folders_with_domains(tmp_path, domains, dict.fromkeys(domains, -0.1), name_b=hostile)
    out = tmp_path / "out"
    paloma_cli("compare", a, b, "--bootstrap", "200", "--registry", "none", "--output", out, check=True)
    text = (out / "forest.svg").read_text()
    assert "<script>" not in text and "B = b&lt;script&gt;alert(1)&amp;" in text
    root = ET.fromstring(text)
    circles = root.findall(".//{http://www.w3.org/2000/svg}circle")
    assert len(circles) == 1 + 2 + 3  # overall, two sources, three domains
    hollow = [c for c in circles if c.get("fill") == "#fff"]
    assert len(hollow) == 3  # Physics (2 documents), its source m2d2_s2orc, and so the overall row
