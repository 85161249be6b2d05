"""Rank stability on the leaderboard: intervals and flip rates beside each rank, from domain resampling."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from leaderboard_factory import eval_output, metadata, write_tiny_registry

from paloma.site.builder import build
from paloma.submissions.submit import submit

MODELS = {"close-a": 1.0, "close-b": 1.01, "far": 1.3}  # name: quality (lower is better)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("stability-site")
    registry_file = write_tiny_registry(root)
    for name, quality in MODELS.items():
        out = eval_output(root / f"eval-{name}", registry_file, model=name, quality=quality)
        submit(out, metadata(name, fixed_vocabulary=True, training_tokens=10**9), root / "subs", registry_file)
    build(root / "subs", root / "out", registry_file=registry_file, progress=False)
    return root


def _naive_flip(results_a: dict, results_b: dict, replicates: int, rng: np.random.Generator) -> float:
    """Reference: redraw each source's domains; compare the suite macro bpb (mean of source means)."""

    def bpb(d: dict) -> float:
        return d["nll_sum"] / (d["bytes"] * math.log(2))

    flips = 0
    for _ in range(replicates):
        suite = np.zeros(2)
        for source in results_a:
            names = sorted(results_a[source])
            drawn = [names[i] for i in rng.integers(0, len(names), len(names))]
            suite += [np.mean([bpb(r[source][d]) for d in drawn]) for r in (results_a, results_b)]
        flips += suite[1] < suite[0]
    return flips / replicates


def test_leaderboard_rows_carry_rank_intervals_and_flip_rates(site):
    data = json.loads((site / "out" / "data" / "leaderboard.json").read_text())
    assert data["stability"] == {"replicates": 1000, "level": 0.95, "resampled": "domains within sources"}
    rows = sorted(data["rows"], key=lambda r: r["suite"]["all"]["bpb"])
    assert {rows[0]["name"], rows[1]["name"]} == {"close-a", "close-b"} and rows[2]["name"] == "far"
    for rank, row in enumerate(rows, start=1):
        lo, hi, _ = row["stab"]["all/bpb"]
        assert lo <= rank <= hi
    assert rows[-1]["stab"]["all/bpb"][2] is None  # nothing below the last model
    assert rows[1]["stab"]["all/bpb"][2] == 0.0  # "far" never beats the second

    subs = {n: json.loads((site / "subs" / n / "submission.json").read_text())["results"] for n in MODELS}
    public = [s for s in subs["close-a"] if s != "hidden"]
    better, worse = ({s: subs[r["name"]][s] for s in public} for r in rows[:2])
    reference = _naive_flip(better, worse, 2000, np.random.default_rng(1))
    assert 0.02 < reference < 0.98  # a close race, so the check has teeth
    assert rows[0]["stab"]["all/bpb"][2] == pytest.approx(reference, abs=0.05)


@pytest.mark.browser
def test_the_rank_cell_shows_the_flip_rate_and_explains_it(site, browser):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto((site / "out" / "index.html").as_uri())
    first = page.locator("#leaderboard tbody tr").first.locator("td.rank .stab")
    assert first.text_content().startswith("1–") and " ⇅" in first.text_content()  # text beside the rank
    assert page.locator("#leaderboard tbody tr").first.locator("td.rank .rank-value").inner_text().strip() == "1"
    assert "95% rank interval 1–" in first.get_attribute("title")
    page.check("input[name=decon]")  # another view: its ranking was not resampled, so nothing is claimed
    assert page.locator("#leaderboard td.rank .stab").count() == 0
    page.close()
    assert errors == []
