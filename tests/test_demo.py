"""`paloma demo --quick` end to end: every artifact a newcomer gets, checked against independent numbers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from paloma.demo.pipeline import QUICK, Rung
from paloma.registry import load_registry_file

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:
    """`paloma demo --quick` exactly as a newcomer types it, in an empty folder."""
    from tests.conftest import run_paloma

    cwd = tmp_path_factory.mktemp("newcomer")
    proc = run_paloma("demo", "--quick", check=True, timeout=1800, cwd=cwd, umask=0o022)
    return cwd / "paloma-demo", proc.stdout


def test_every_output_is_readable_like_any_other_file(demo):
    """Under umask 022 all of it (eval runs, decon outputs, models, submissions, fits, the site) is 0644 / 0755:
    teammates on a shared cluster and a web server can read it."""
    root, _ = demo
    wrong = [
        (str(p.relative_to(root)), oct(p.stat().st_mode & 0o777))
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and (p.stat().st_mode & 0o777) != (0o755 if p.is_dir() else 0o644)
    ]
    assert not wrong, wrong[:20]


@pytest.fixture(scope="module")
def registry(demo):
    return load_registry_file(demo[0] / "suite" / "paloma-demo.json")


@pytest.fixture(scope="module")
def results(demo) -> dict[str, dict]:
    runs = demo[0] / "quick" / "runs"
    return {r.name: json.loads((runs / r.name / "results.json").read_text()) for r in QUICK.rungs}


def test_suite_layout_and_domain_counts(demo, registry):
    root, _ = demo
    manifest = json.loads((root / "suite" / "manifest.json").read_text())
    assert registry.release == "paloma-demo" and registry.protocol == {"max_length": 128}
    assert len(registry.sources) == 4 and registry.totals()["domains"] >= 24  # dozens of domains
    if sys.version_info[:2] == (3, 11):
        assert registry.totals()["domains"] == 35
    for source in registry.sources:
        assert set(source.domains) == set(manifest["domains"][source.name])
        for split in ("val", "test"):
            files = sorted(p.name for p in (root / "suite" / source.name / split).glob("*.jsonl.gz"))
            expected = (
                [f"{split}-00000000.jsonl.gz"]
                if source.single_domain
                else sorted(f"{split}_{d}.jsonl.gz" for d in source.domains)
            )
            assert files == expected


def test_one_model_per_rung(demo):
    root, _ = demo
    sizes = {}
    for rung in QUICK.rungs:
        training = json.loads((root / "quick" / "models" / rung.name / "paloma_training.json").read_text())
        assert training["training_tokens"] == rung.steps * QUICK.batch_size * QUICK.seq_len
        assert training["steps"] == rung.steps
        sizes.setdefault(rung.steps, []).append(training["parameters"]["non_embedding"])
    assert all(s == sorted(s) and len(set(s)) == len(s) for s in sizes.values())  # sizes grow along the ladder


def test_results_cover_every_domain_with_the_suite_budget(demo, registry, results):
    root, _ = demo
    manifest = json.loads((root / "suite" / "manifest.json").read_text())
    for name, result in results.items():
        assert result["data"]["release"] == "paloma-demo" and result["protocol"]["max_length"] == 128
        scored = {(s, d): dom["tokens"] for s, e in result["sources"].items() for d, dom in e["domains"].items()}
        assert set(scored) == set(registry.domain_pairs()), name
        for (source, domain), tokens in scored.items():
            # the evaluator's token count equals the suite builder's own count with the same tokenizer
            assert tokens == manifest["domains"][source][domain]["test"]["tokens"], (name, source, domain)


def test_larger_models_fit_better_on_most_domains(results):
    for steps in QUICK.steps:
        for small, large in zip(QUICK.sizes, QUICK.sizes[1:], strict=False):
            a, b = results[Rung(*small, steps).name], results[Rung(*large, steps).name]
            pairs = [
                (dom["ppl"], b["sources"][s]["domains"][d]["ppl"])
                for s, entry in a["sources"].items()
                for d, dom in entry["domains"].items()
            ]
            wins = sum(large_ppl < small_ppl for small_ppl, large_ppl in pairs)
            assert wins > len(pairs) / 2, (small, large, steps, wins, len(pairs))


def test_more_tokens_fit_better_for_every_size(results):
    for size in QUICK.sizes:
        by_steps = [results[Rung(*size, s).name]["suite"]["macro_ppl"] for s in QUICK.steps]
        assert by_steps == sorted(set(by_steps), reverse=True), (size, by_steps)  # strictly falling


def test_decontamination_removed_every_planted_leak(demo):
    root, _ = demo
    check = json.loads((root / "decon" / "demo-check.json").read_text())
    manifest = json.loads((root / "suite" / "manifest.json").read_text())
    planted = {p["train_id"] for p in manifest["planted_contamination"]}
    assert planted and planted <= set(check["removed_ids"])
    report = json.loads((root / check["report"]).read_text())
    assert report["totals"]["removed_documents"] == len(check["removed_ids"])
    kept = (root / check["clean_corpus"]).stat().st_size
    assert kept > 0


def test_submissions_are_valid(demo, paloma_cli):
    root, _ = demo
    proc = paloma_cli(
        "submissions", "validate", root / "quick" / "submissions", "--registry", root / "suite" / "paloma-demo.json"
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{len(QUICK.rungs)} submission(s) valid: {len(QUICK.rungs)} for paloma-demo/test" in proc.stdout


def test_site_is_labelled_demo_and_its_pareto_chart_holds_every_model(demo):
    root, stdout = demo
    site = root / "quick" / "site"
    assert (site / "index.html").is_file()
    assert f"Open the leaderboard: {(site / 'index.html').resolve().as_uri()}" in stdout
    index = (site / "index.html").read_text()
    assert "paloma-demo" in index and "not the Paloma leaderboard" in index
    pareto = next(p for p in site.rglob("*.html") if "pareto" in p.name).read_text()
    for rung in QUICK.rungs:
        assert f"demo {rung.name}" in pareto, rung.name
    for rung in QUICK.rungs:  # each model's page carries the ladder chart (the analysis extension)
        page = (site / "models" / f"demo-{rung.name}.html").read_text()
        assert "Scaling ladder" in page and "<svg" in page, rung.name


def test_ladder_fit_covers_suite_sources_and_domains(demo, registry):
    root, _ = demo
    fits = json.loads((root / "quick" / "ladder" / "fits.json").read_text())
    assert sorted(p["name"] for p in fits["points"]) == sorted(r.name for r in QUICK.rungs)
    targets = {f["target"] for f in fits["fits"]}
    assert "suite" in targets and {f"source:{s.name}" for s in registry.sources} <= targets
    assert (root / "quick" / "ladder" / "ladder.svg").is_file()


def test_summary_table_and_rerun_reuses_everything(demo):
    root, stdout = demo
    for rung in QUICK.rungs:
        assert re.search(rf"^{re.escape(rung.name)}\s", stdout, re.MULTILINE), rung.name
    from tests.conftest import run_paloma

    again = run_paloma("demo", "--quick", check=True, timeout=600, cwd=root.parent).stdout
    reused = [line for line in again.splitlines() if "reused" in line]
    assert len(reused) == 2 * len(QUICK.rungs) + 3, again  # suite, decon, every model, every eval, ladder fit
