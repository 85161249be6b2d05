"""Reweighting to another corpus's domain mix: exp(Σ α_d NLL_d), and the micro perplexity as a special case."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from eval_folders import synthetic_records, write_eval_output

from paloma.analysis.reweight import parse_shares, reweight, token_shares
from paloma.errors import PalomaError
from paloma.metrics import sum_records

DOMAINS = {("c4_en", "c4_en"): 30, ("m2d2_s2orc", "Art"): 20, ("m2d2_s2orc", "Physics"): 25}
LOSS = {("c4_en", "c4_en"): 3.0, ("m2d2_s2orc", "Art"): 2.5, ("m2d2_s2orc", "Physics"): 3.5}


@pytest.fixture
def records():
    return synthetic_records(np.random.default_rng(0), DOMAINS, LOSS)


def test_own_token_shares_reproduce_the_micro_perplexity(records):
    sums = sum_records(records)
    micro = math.exp(sum(r["nll_sum"] for r in records) / sum(r["tokens"] for r in records))
    assert reweight(sums, token_shares(sums))["ppl"] == pytest.approx(micro, rel=1e-12)


def test_shares_follow_the_formula_and_are_normalised(records):
    sums = sum_records(records)
    nll = {k: s.nll_sum / s.tokens for k, s in sums.items()}
    result = reweight(sums, {("c4_en", "c4_en"): 3, ("m2d2_s2orc", "Art"): 1})
    assert result["ppl"] == pytest.approx(math.exp(0.75 * nll[("c4_en", "c4_en")] + 0.25 * nll[("m2d2_s2orc", "Art")]))
    assert result["shares_sum"] == 4
    assert result["unweighted_domains"] == ["m2d2_s2orc/Physics"]
    one = reweight(sums, {("m2d2_s2orc", "Physics"): 1.0})
    assert one["ppl"] == pytest.approx(math.exp(nll[("m2d2_s2orc", "Physics")]))


def test_share_files_in_both_shapes_and_bad_ones():
    nested = parse_shares({"m2d2_s2orc": {"Art": 0.2, "Physics": 0.3}, "c4_en": {"c4_en": 0.5}})
    flat = parse_shares({"m2d2_s2orc/Art": 0.2, "m2d2_s2orc/Physics": 0.3, "c4_en": 0.5})
    assert nested == flat
    with pytest.raises(PalomaError, match="field 'c4_en': share must be a non-negative number, got -1"):
        parse_shares({"c4_en": -1})
    with pytest.raises(PalomaError, match="domain c4_en/c4_en given twice"):
        parse_shares({"c4_en": 0.5, "c4_en/c4_en": 0.5})


def test_a_share_for_an_unscored_domain_is_an_error(records):
    with pytest.raises(PalomaError, match="domain wikitext_103/wikitext_103 has a share but no scored tokens"):
        reweight(sum_records(records), {("wikitext_103", "wikitext_103"): 1.0, ("c4_en", "c4_en"): 1.0})


def test_cli(tmp_path, records, paloma_cli):
    run = write_eval_output(tmp_path / "run", records)
    shares = tmp_path / "shares.json"
    shares.write_text(json.dumps({"c4_en": 0.9, "m2d2_s2orc/Art": 0.1}))
    out = tmp_path / "reweighted.json"
    proc = paloma_cli("reweight", run, "--shares", shares, "--output", out, check=True)
    result = json.loads(out.read_text())
    sums = sum_records(records)
    nll = {k: s.nll_sum / s.tokens for k, s in sums.items()}
    expected = math.exp(0.9 * nll[("c4_en", "c4_en")] + 0.1 * nll[("m2d2_s2orc", "Art")])
    assert result["ppl"] == pytest.approx(expected)
    assert f"perplexity {expected:.4f} under the given mix of 2 domains" in proc.stdout
    own = paloma_cli("reweight", run, "--shares-from", run, check=True)
    micro = math.exp(sum(r["nll_sum"] for r in records) / sum(r["tokens"] for r in records))
    assert f"perplexity {micro:.4f}" in own.stdout
