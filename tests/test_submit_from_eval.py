"""End to end: `paloma eval` output → `paloma submit` → `paloma submissions validate` → `paloma site build`.

Needs the evaluator (`paloma.eval.evaluate`) and its test fixtures (`tests/fixtures.py`: a trained BPE tokenizer
and tiny models); until both are in this checkout the test is skipped. `paloma release manifest` counts the
same data with the same tokenizer, and its counts, data revision and fingerprint must be the evaluator's.
"""

from __future__ import annotations

import json

import pytest
from conftest import run_paloma

pytest.importorskip("paloma.eval.evaluate")
fixtures = pytest.importorskip("fixtures")


def test_real_eval_output_becomes_a_valid_submission_and_a_site(tmp_path):
    registry = {
        "release": "tiny-e2e",
        "protocol": {"max_length": 32},  # tiny models: the release declares its shorter windows
        "sources": [
            {"name": "alpha", "paper_name": "Alpha", "group": "standard", "domains": ["a1", "a2"]},
            {"name": "beta", "paper_name": "Beta", "group": "fine-grained", "domains": ["beta"]},
        ],
    }
    registry_file = tmp_path / "tiny-e2e.json"
    registry_file.write_text(json.dumps(registry))
    paragraphs = fixtures.pydoc_paragraphs()
    # a2 has enough documents for an interval (about 48 effective; the minimum is 30), a1 and beta do not
    docs = {("alpha", "a1"): paragraphs[:5], ("alpha", "a2"): paragraphs[5:85], ("beta", None): paragraphs[85:90]}
    fixtures.write_release(tmp_path / "data", docs, split="test")
    tokenizer = fixtures.train_tokenizer(tmp_path / "tokenizer")
    manifest_path = tmp_path / "tiny-e2e.test.manifest.json"  # beside the registry: validation finds it there
    proc = run_paloma(
        "release", "manifest", "--data", tmp_path / "data", "--split", "test", "--registry", registry_file,
        "--tokenizer", tmp_path / "tokenizer", "--output", manifest_path, "--no-progress",
    )  # fmt: skip
    assert proc.returncode == 0 and "tiny-e2e/test, 3 domains, 90 documents" in proc.stdout, proc.stderr
    for seed in (0, 1):
        model = tmp_path / f"model-{seed}"
        fixtures.build_model("gpt_neox", len(tokenizer), model, max_positions=64, seed=seed)
        tokenizer.save_pretrained(model)
        eval_args = ["eval", "--model", model, "--data", tmp_path / "data", "--registry", registry_file]
        eval_args += ["--max-length", "32", "--output", tmp_path / f"out-{seed}", "--bootstrap", "20", "--no-progress"]
        run_paloma(*eval_args, "--device", "cpu", check=True)
        run_paloma(
            "submit", tmp_path / f"out-{seed}", "--name", f"neox-{seed}", "--organisation", "Test Lab",
            "--training-tokens", "1000000", "--tokenizer", "tiny-bpe", "--training-data", "pydoc text",
            "--fixed-vocabulary", "--release", "tiny-e2e", "--registry", registry_file,
            "--submissions", tmp_path / "subs", check=True,
        )  # fmt: skip
    proc = run_paloma("submissions", "validate", tmp_path / "subs", "--registry", registry_file)
    assert proc.returncode == 0 and "2 submission(s) valid: 2 for tiny-e2e/test" in proc.stdout, proc.stderr
    assert "no release manifest" not in proc.stdout  # checked against the manifest, each on its own
    sub = json.loads((tmp_path / "subs" / "neox-0" / "submission.json").read_text())
    results = json.loads((tmp_path / "out-0" / "results.json").read_text())
    manifest = json.loads(manifest_path.read_text())
    # the manifest counts what the evaluator scored: documents, bytes, tokens, and the same data revision
    assert manifest["data_revision"] == results["protocol"]["data_revision"]
    assert manifest["fingerprints"]["paloma"] == results["protocol"]["fingerprint"]
    for source, entry in results["sources"].items():
        for domain, sums in entry["domains"].items():
            counted = manifest["domains"][source][domain]
            assert {k: counted[k] for k in ("documents", "bytes", "tokens", "chars", "words")} == {
                k: sums[k] for k in ("documents", "bytes", "tokens", "chars", "words")
            }
    assert sub["results"]["alpha"]["a2"]["nll_sum"] == results["sources"]["alpha"]["domains"]["a2"]["nll_sum"]
    assert sub["protocol"]["fingerprint"] == results["protocol"]["fingerprint"]
    assert sub["results"]["alpha"]["a2"]["ci"]["bpb"] == results["sources"]["alpha"]["domains"]["a2"]["ci"]["bpb"]
    assert results["sources"]["alpha"]["domains"]["a1"]["ci"] is None and "ci" not in sub["results"]["alpha"]["a1"]
    proc = run_paloma(
        "site", "build", "--submissions", tmp_path / "subs", "--output", tmp_path / "site", "--registry", registry_file
    )
    assert proc.returncode == 0, proc.stderr
    page = (tmp_path / "site" / "models" / "neox-0.html").read_text()
    assert "95% CI" in page and "tiny-e2e leaderboard (not Paloma)" in page
    # a submission that scored part of a domain is caught alone, against the manifest
    path = tmp_path / "subs" / "neox-1" / "submission.json"
    data = json.loads(path.read_text())
    data["results"]["alpha"]["a1"].update(documents=4)
    path.write_text(json.dumps(data))
    proc = run_paloma("submissions", "validate", tmp_path / "subs" / "neox-1", "--registry", registry_file)
    assert proc.returncode == 1 and "documents is 4, the tiny-e2e/test manifest has 5" in proc.stderr
