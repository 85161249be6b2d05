"""Ranking stability: flip rates of leaderboard pairs under paired resampling of documents and domains."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from eval_folders import synthetic_records, write_eval_output

from paloma.analysis.ranking import Entry, order_stability, rank_stability, shared_ranks
from paloma.analysis.runs import read_records
from paloma.errors import PalomaError
from paloma.metrics import sum_records

DOMAINS = {("c4_en", "c4_en"): 40, ("m2d2_s2orc", "Art"): 30, ("m2d2_s2orc", "Physics"): 30, ("m2d2_s2orc", "Math"): 30}


def _entry(tmp_path, name: str, records: list[dict]) -> Entry:
    folder = write_eval_output(tmp_path / name, records)
    return Entry(name, sum_records(records), read_records(folder / "records"))


def _shifted(records: list[dict], shift: dict) -> list[dict]:
    """The same documents, with `shift[domain]` nats added per token plus a little per-document noise."""
    rng = np.random.default_rng(len(json.dumps(sorted(map(str, shift.items())))))
    return [
        {**r, "nll_sum": r["nll_sum"] + (shift[(r["source"], r["domain"])] + rng.normal(0, 0.05)) * r["tokens"]}
        for r in records
    ]


@pytest.fixture
def base():
    return synthetic_records(np.random.default_rng(0), DOMAINS, dict.fromkeys(DOMAINS, 3.0))


def test_a_uniformly_better_submission_never_flips(tmp_path, base):
    worse = [{**r, "nll_sum": r["nll_sum"] + 0.001 * r["tokens"]} for r in base]
    result = rank_stability([_entry(tmp_path, "worse", worse), _entry(tmp_path, "better", base)], replicates=300)
    assert [r["name"] for r in result["ranking"]] == ["better", "worse"]
    assert result["ranking"][0]["flip_with_next"] == 0.0
    assert result["ranking"][0]["rank_interval"] == [1, 1] and result["ranking"][0]["rank_kept"] == 1.0
    assert result["resampled"].startswith("documents within domains")


def _naive_flip_rate(
    a: list[dict], b: list[dict], replicates: int, rng: np.random.Generator, documents: bool = True
) -> float:
    """Reference: loop over replicates; redraw domains per source and documents per domain; compare macro ppl."""
    docs: dict = {}
    for ra, rb in zip(a, b, strict=True):
        docs.setdefault(ra["source"], {}).setdefault(ra["domain"], []).append(
            (ra["nll_sum"], rb["nll_sum"], ra["tokens"])
        )
    observed_a_better = None
    flips = 0
    for rep in range(replicates + 1):
        macro = np.zeros(2)
        for domains in docs.values():
            names = sorted(domains)
            drawn = names if rep == 0 else [names[i] for i in rng.integers(0, len(names), len(names))]
            per_source = np.zeros(2)
            for name in drawn:
                rows = np.array(domains[name])
                if rep and documents:
                    rows = rows[rng.integers(0, len(rows), len(rows))]
                per_source += np.exp(rows[:, :2].sum(axis=0) / rows[:, 2].sum())
            macro += per_source / len(drawn)
        if rep == 0:
            observed_a_better = macro[0] < macro[1]
        else:
            flips += (macro[0] < macro[1]) != observed_a_better
    return flips / replicates


def test_flip_rate_agrees_with_a_naive_bootstrap(tmp_path, base):
    # A is better on c4 and Art, worse on Physics and Math: a close race.
    a = _shifted(
        base,
        {
            ("c4_en", "c4_en"): -0.03,
            ("m2d2_s2orc", "Art"): -0.02,
            ("m2d2_s2orc", "Physics"): 0.01,
            ("m2d2_s2orc", "Math"): 0.0,
        },
    )
    b = _shifted(base, dict.fromkeys(DOMAINS, 0.0))
    result = rank_stability([_entry(tmp_path, "a", a), _entry(tmp_path, "b", b)], replicates=2000, seed=1)
    flip = result["pairs"][0]["flip_rate"]
    reference = _naive_flip_rate(a, b, 2000, np.random.default_rng(2))
    # Two independent Monte Carlo estimates of the same probability, 2000 draws each: SE of the difference
    # is at most 0.016, so 0.05 is three standard errors.
    assert 0.02 < reference < 0.98
    assert flip == pytest.approx(reference, abs=0.05)


def test_observed_values_and_ranks_of_three_submissions(tmp_path, base):
    runs = {name: _shifted(base, dict.fromkeys(DOMAINS, s)) for name, s in (("x", 0.2), ("y", 0.0), ("z", 0.1))}
    result = rank_stability([_entry(tmp_path, n, r) for n, r in runs.items()], replicates=200)
    assert [r["name"] for r in result["ranking"]] == ["y", "z", "x"]
    for row in result["ranking"]:
        sums = sum_records(runs[row["name"]])
        c4 = math.exp(sums[("c4_en", "c4_en")].nll_sum / sums[("c4_en", "c4_en")].tokens)
        m2d2 = np.mean([math.exp(s.nll_sum / s.tokens) for k, s in sums.items() if k[0] == "m2d2_s2orc"])
        assert row["value"] == pytest.approx((c4 + m2d2) / 2, rel=1e-12)
        assert row["rank_interval"][0] <= row["rank"] <= row["rank_interval"][1]
    assert len(result["pairs"]) == 3


def test_without_records_only_domains_are_resampled(base):
    # A is much better on one m2d2 domain and a little worse on the two others: the draw of domains decides.
    a = _shifted(
        base,
        {
            ("c4_en", "c4_en"): 0.0,
            ("m2d2_s2orc", "Art"): -0.15,
            ("m2d2_s2orc", "Physics"): 0.05,
            ("m2d2_s2orc", "Math"): 0.06,
        },
    )
    b = _shifted(base, dict.fromkeys(DOMAINS, 0.0))
    result = rank_stability([Entry("a", sum_records(a)), Entry("b", sum_records(b))], replicates=2000, seed=3)
    assert result["resampled"].startswith("domains within sources only")
    reference = _naive_flip_rate(a, b, 2000, np.random.default_rng(4), documents=False)
    assert 0.02 < reference < 0.98
    assert result["pairs"][0]["flip_rate"] == pytest.approx(reference, abs=0.05)


def test_different_documents_are_refused(tmp_path, base):
    with pytest.raises(PalomaError, match="scored different documents"):
        rank_stability([_entry(tmp_path, "a", base), _entry(tmp_path, "b", base[1:])], replicates=10)


def test_different_data_without_records_is_refused(base):
    """The bug: without records, rank-stability ranked runs of different data (here one document fewer in
    c4_en) that a paired comparison refuses."""
    fewer = [r for r in base if r["id"] != base[0]["id"]]
    with pytest.raises(PalomaError, match="c4_en/c4_en: b and a scored different documents"):
        rank_stability([Entry("a", sum_records(base)), Entry("b", sum_records(fewer))], replicates=10)


def test_exact_ties_share_a_rank_and_are_not_called_certain(tmp_path, base):
    """The bug: two runs with identical numbers were ranked 1 and 2 by argument order, each "keeping" its
    rank in 100% of replicates, with a flip rate of 0 between them."""
    worse = _shifted(base, dict.fromkeys(DOMAINS, 0.2))
    entries = [_entry(tmp_path, "z", base), _entry(tmp_path, "w", worse), _entry(tmp_path, "a", base)]
    result = rank_stability(entries, replicates=100)
    rows = {r["name"]: r for r in result["ranking"]}
    assert rows["z"]["rank"] == rows["a"]["rank"] == 1 and rows["w"]["rank"] == 3
    assert rows["z"]["rank_interval"] == rows["a"]["rank_interval"] == [1, 1]
    first = result["ranking"][0]
    assert first["tied_with_next"] is True and first["flip_with_next"] is None
    assert result["ranking"][1]["tied_with_next"] is False and result["ranking"][1]["flip_with_next"] == 0.0
    tie = next(p for p in result["pairs"] if {p["better"], p["worse"]} == {"z", "a"})
    assert tie["tied"] is True and tie["flip_rate"] is None


def test_shared_ranks_against_a_hand_count():
    assert shared_ranks(np.array([3.0, 1.0, 3.0, 2.0])).tolist() == [3, 1, 3, 2]
    assert shared_ranks(np.array([[1.0, 1.0], [2.0, 1.0]])).tolist() == [[1, 1], [2, 1]]
    # without observed values the displayed order is the observed ranking (as the site calls it)
    rows = order_stability(np.array([[1.0, 2.0], [2.0, 1.0]]), [0, 1])
    assert [r["rank"] for r in rows] == [1, 2] and rows[0]["flip_with_next"] == 0.5


def test_runs_under_different_protocols_are_refused_as_compare_refuses(tmp_path, base, paloma_cli):
    a = write_eval_output(tmp_path / "a", base)
    b = write_eval_output(tmp_path / "b", base, protocol={"data_revision": "other", "fingerprint": "0123456789abcdef"})
    proc = paloma_cli("rank-stability", a, b, "--bootstrap", "10")
    assert proc.returncode == 2 and "data_revision: " in proc.stderr and "not comparable" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert paloma_cli("rank-stability", a, b, "--bootstrap", "10", "--force").returncode == 0


def test_cli(tmp_path, base, paloma_cli):
    folders = []
    for name, shift in (("m1", 0.0), ("m2", 0.3)):
        folders.append(write_eval_output(tmp_path / name, _shifted(base, dict.fromkeys(DOMAINS, shift))))
    out = tmp_path / "stability.json"
    proc = paloma_cli("rank-stability", *folders, "--bootstrap", "200", "--output", out, check=True)
    result = json.loads(out.read_text())
    assert [r["name"] for r in result["ranking"]] == ["m1", "m2"]
    assert "macro_ppl over 4 domains of 2 sources; 200 replicates" in proc.stdout
