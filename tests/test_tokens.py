"""Token-type statistics: the shared file format, loss concentration, type-level comparisons, the report CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from eval_folders import write_eval_output
from tiny_llama import train_tokenizer

from paloma.analysis.tokens import loss_concentration, type_differences
from paloma.errors import PalomaError
from paloma.eval.token_stats import TokenStats, check_against_sums, load_token_stats, save_token_stats
from paloma.metrics import sum_records

VOCAB = 300
ZIPF = 1.0 / np.arange(1, VOCAB + 1) ** 1.1
ZIPF /= ZIPF.sum()


def _scored_tokens(rng: np.random.Generator, n_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Zipf-distributed token ids with per-token losses that grow with rarity (as in real text)."""
    ids = rng.choice(VOCAB, size=n_tokens, p=ZIPF)
    losses = rng.gamma(2.0, 0.5 + np.log1p(ids) / 2)
    return ids, losses


def _domain(rng, source, domain, n_docs):
    """Per-document records and the matching per-type stats of one domain."""
    records, all_ids, all_losses = [], [], []
    for i in range(n_docs):
        ids, losses = _scored_tokens(rng, int(rng.integers(30, 300)))
        records.append(
            {
                "id": str(i),
                "source": source,
                "domain": domain,
                "tokens": len(ids),
                "bytes": 3 * len(ids),
                "nll_sum": float(losses.sum()),
            }
        )
        all_ids.append(ids)
        all_losses.append(losses)
    ids, losses = np.concatenate(all_ids), np.concatenate(all_losses)
    count = np.bincount(ids, minlength=VOCAB).astype(np.int64)
    nll = np.bincount(ids, weights=losses, minlength=VOCAB)
    return records, (count, nll)


def test_file_round_trips_numpy_and_torch_and_domain_names_with_slashes(tmp_path):
    count = torch.tensor([3, 0, 2], dtype=torch.int64)
    nll = torch.tensor([1.5, 0.0, 0.25], dtype=torch.float64)
    path = save_token_stats(
        tmp_path / "token_stats.npz", {("s2orc", "a/b"): (count, nll), ("c4", "c4"): ([1, 1, 1], [0.1, 0.2, 0.3])}
    )
    stats = load_token_stats(tmp_path)  # a folder finds token_stats.npz
    assert stats.vocab_size == 3 and set(stats.domains) == {("s2orc", "a/b"), ("c4", "c4")}
    np.testing.assert_array_equal(stats.domains[("s2orc", "a/b")][0], [3, 0, 2])
    np.testing.assert_array_equal(stats.domains[("s2orc", "a/b")][1], [1.5, 0.0, 0.25])
    assert stats.domains[("c4", "c4")][0].dtype == np.int64
    with np.load(path) as archive:
        assert sorted(archive.files) == ["count/c4/c4", "count/s2orc/a/b", "nll/c4/c4", "nll/s2orc/a/b", "vocab_size"]


def test_malformed_files_are_reported_by_array_name(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, vocab_size=np.array(4), **{"count/c4/c4": np.zeros(4, np.int64), "nll/c4/c4": np.zeros(3)})
    with pytest.raises(PalomaError, match=r"array 'nll/c4/c4' has shape \(3,\), expected \(4,\)"):
        load_token_stats(path)
    np.savez(path, vocab_size=np.array(4), **{"count/c4/c4": np.zeros(4, np.int64)})
    with pytest.raises(PalomaError, match="array 'nll/c4/c4' is missing"):
        load_token_stats(path)
    with pytest.raises(PalomaError, match="different lengths"):
        save_token_stats(tmp_path / "x.npz", {("a", "a"): ([1, 2], [0.1, 0.2]), ("b", "b"): ([1], [0.1])})


def test_type_statistics_sum_to_the_domain_totals_and_inconsistencies_are_named():
    rng = np.random.default_rng(0)
    records, domain_stats = _domain(rng, "c4_en", "c4_en", 20)
    stats = TokenStats(VOCAB, {("c4_en", "c4_en"): domain_stats})
    sums = sum_records(records)
    assert check_against_sums(stats, sums) == []
    broken = TokenStats(
        VOCAB, {("c4_en", "c4_en"): (domain_stats[0] + np.eye(VOCAB, dtype=np.int64)[5], domain_stats[1])}
    )
    [problem] = check_against_sums(broken, sums)
    assert problem.startswith(f"c4_en/c4_en: {sums[('c4_en', 'c4_en')].tokens + 1} tokens by type")


def test_loss_concentration_matches_a_direct_computation():
    rng = np.random.default_rng(1)
    _, (count, nll) = _domain(rng, "s", "d", 200)
    result = {r["fraction_of_types"]: r for r in loss_concentration(count, nll)}
    seen = sorted((v for v in range(VOCAB) if count[v] > 0), key=lambda v: (-count[v], v))
    k = -(-len(seen) * 5 // 100)  # ceil(5% of the types that occur)
    assert result[0.05]["types"] == k
    assert result[0.05]["loss_share"] == pytest.approx(sum(nll[v] for v in seen[:k]) / nll.sum(), rel=1e-12)
    assert result[0.05]["token_share"] == pytest.approx(sum(count[v] for v in seen[:k]) / count.sum(), rel=1e-12)
    # Zipfian text: a few frequent types carry a large share of the loss, more than their share of types.
    assert result[0.05]["loss_share"] > 0.3


def test_type_differences_find_the_types_that_moved_the_loss():
    rng = np.random.default_rng(2)
    _, (count, nll_a) = _domain(rng, "s", "d", 50)
    frequent = np.argsort(-count)[:3]
    nll_b = nll_a.copy()
    nll_b[frequent[0]] -= 50.0  # B much better on the most frequent type
    nll_b[frequent[1]] += 20.0  # and worse on the second
    nll_b[frequent[2]] -= 5.0
    diff = type_differences((count, nll_a), (count, nll_b), top=5)
    assert diff["total_loss_change"] == pytest.approx(-35.0)
    assert [r["id"] for r in diff["b_better"]] == [frequent[0], frequent[2]]
    assert [r["id"] for r in diff["a_better"]] == [frequent[1]]
    assert diff["b_better"][0]["share_of_total_change"] == pytest.approx(50 / 35)
    with pytest.raises(PalomaError, match="scored different tokens"):
        type_differences((count, nll_a), (count + 1, nll_b), top=5)


def test_report_cli_decodes_types_with_the_runs_tokenizer_and_compares_runs(tmp_path, paloma_cli):
    tokenizer_dir = tmp_path / "tokenizer"
    tokenizer = train_tokenizer(tokenizer_dir)
    runs = []
    for name, shift in (("a", 0.0), ("b", -0.5)):
        rng_run = np.random.default_rng(3)  # both runs score the same tokens
        records, stats = [], {}
        for source, domain in (("c4_en", "c4_en"), ("m2d2_s2orc", "Art")):
            recs, (count, nll) = _domain(rng_run, source, domain, 15)
            top_type = int(np.argmax(count))
            nll[top_type] += shift * count[top_type]  # run b is better on the most frequent type
            recs[0]["nll_sum"] += shift * count[top_type]  # keep the documents' totals consistent
            records += recs
            stats[(source, domain)] = (count, nll)
        folder = write_eval_output(tmp_path / name, records, model={"name_or_path": str(tokenizer_dir)})
        save_token_stats(folder / "token_stats.npz", stats)
        runs.append(folder)
    out = tmp_path / "report.json"
    proc = paloma_cli("tokens", "report", runs[0], "--against", runs[1], "--top", "5", "--output", out, check=True)
    assert "warning" not in proc.stderr
    report = json.loads(out.read_text())
    top_id = report["frequent_types"][0]["id"]
    assert report["frequent_types"][0]["token"] == repr(tokenizer.decode([top_id]))
    assert report["comparison"]["b_better"][0]["id"] == top_id
    assert repr(tokenizer.decode([top_id])) in proc.stdout
    assert "types where B beats A most" in proc.stdout
    only_art = paloma_cli("tokens", "report", runs[0], "--domain", "m2d2_s2orc/Art", "--tokenizer", tmp_path / "none")
    assert only_art.returncode == 2 and "--tokenizer" in only_art.stderr
