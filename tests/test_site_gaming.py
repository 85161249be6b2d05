"""Gaming the leaderboard as a stranger would, and the rules that stop it (issue 21's "Why" list).

Beside tests/test_site_hostile.py: those cases are refused one by one against a release with a manifest; these
need several submissions (copies, sybils, a crowd of another split), a release without a manifest (Paloma's
own, today), or the inputs of `paloma submit` (YAML, hub weights).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, paloma_env, run_paloma
from leaderboard_factory import (
    eval_output,
    metadata,
    write_tiny_manifest,
    write_tiny_registry,
)
from test_site_hostile import refresh_aggregates

from paloma.demo.pipeline import SUMMARY_HEADERS, summary_rows
from paloma.errors import PalomaError
from paloma.registry import load_registry_file
from paloma.site.builder import build
from paloma.site.entries import make_entry
from paloma.submissions.schema import Submission
from paloma.submissions.submit import build_submission, read_metadata, submit
from paloma.submissions.validate import validate

PALOMA = REPO_ROOT / "domains" / "paloma.json"


def make(root: Path, registry_file: Path, name: str, **eval_kwargs) -> Path:
    out = eval_output(root / "evals" / name, registry_file, model=name, **eval_kwargs)
    return submit(out, metadata(name), root / "subs", registry_file).parent


def edit(folder: Path, change) -> None:
    path = folder / "submission.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def problems(folder: Path, registry_file: Path | None) -> list[str]:
    return [str(p) for p in validate([folder], registry_file).problems]


@pytest.fixture(scope="module")
def honest(tmp_path_factory) -> dict:
    """One honest submission to the tiny release (which has a val manifest)."""
    root = tmp_path_factory.mktemp("gaming")
    registry_file = write_tiny_registry(root)
    write_tiny_manifest(root, registry_file, "val")
    folder = make(root, registry_file, "honest-300m")
    return {"root": root, "registry_file": registry_file, "folder": folder}


def _copy_as(honest: dict, subs: Path, name: str, change) -> Path:
    shutil.copytree(honest["folder"], subs / "honest-300m", dirs_exist_ok=True)
    target = subs / name
    shutil.copytree(honest["folder"], target)

    def rename(data):
        data["name"] = name
        change(data)

    edit(target, rename)
    return target


# ---- 1. copies take ranks ----------------------------------------------------------------------------------


def test_a_renamed_copy_of_another_labs_results_is_refused(honest, tmp_path):
    def copycat(data):
        data["model"].update(display_name="Copycat 300M", organisation="Copy Lab", model_id="copy/copycat-300m")
        data["submitted"] = "2030-01-01"  # after the original (without git history the date orders them)

    _copy_as(honest, tmp_path, "copycat-300m", copycat)
    found = problems(tmp_path, honest["registry_file"])
    assert len(found) == 1, found
    assert "copycat-300m/submission.json: results: its per-domain sums are those of" in found[0]
    assert "honest-300m/submission.json (one entry per model" in found[0]
    # In a pull request (or `paloma submit`) the merged entry is the earlier one whatever date the newcomer claims.
    from paloma.submissions.validate import check_consistency

    edit(tmp_path / "copycat-300m", lambda d: d.update(submitted="2020-01-01"))
    report = validate([tmp_path], honest["registry_file"])
    merged = [x.path for x in report.submissions if x.submission.name == "honest-300m"]
    (later,) = check_consistency(report.submissions, established=merged)
    assert "copycat-300m" in later.where


def test_near_identical_sums_are_one_model(honest, tmp_path):
    def nudge(data):
        data["model"].update(display_name="Nudged", model_id="org/nudged")
        for domains in data["results"].values():
            for sums in domains.values():
                sums["nll_sum"] *= 1 + 5e-10
                sums.pop("ci", None)
        refresh_aggregates(data, honest["registry_file"])

    _copy_as(honest, tmp_path, "nudged", nudge)
    (found,) = problems(tmp_path, honest["registry_file"])
    assert "nudged/submission.json: results: its per-domain sums are those of" in found
    beta = json.loads((tmp_path / "nudged" / "submission.json").read_text())["results"]["beta"]["beta"]
    edit(tmp_path / "nudged", lambda d: d["results"]["beta"]["beta"].update(nll_sum=beta["nll_sum"] * 1.001))
    assert not [p for p in problems(tmp_path, honest["registry_file"]) if "per-domain sums" in p]


def test_the_same_model_again_as_a_second_revision_is_refused(honest, tmp_path):
    _copy_as(honest, tmp_path, "second-revision", lambda d: d["model"].update(display_name="Again", revision="v2"))
    (found,) = problems(tmp_path, honest["registry_file"])
    assert "second-revision/submission.json: results: its per-domain sums are those of" in found


def test_the_same_model_id_revision_and_dtype_is_one_entry(honest, tmp_path):
    shutil.copytree(honest["folder"], tmp_path / "honest-300m")
    out = eval_output(tmp_path / "eval", honest["registry_file"], model="honest-300m", quality=0.97)
    submit(out, metadata("rerun", display_name="Rerun"), tmp_path / "other", honest["registry_file"])
    shutil.move(tmp_path / "other" / "rerun", tmp_path / "rerun")
    (found,) = problems(tmp_path, honest["registry_file"])
    assert "rerun/submission.json: model.model_id: model 'org/honest-300m' revision 'main' (float32)" in found
    assert "was submitted already by" in found and "honest-300m/submission.json" in found


# ---- 2. implausible costs ----------------------------------------------------------------------------------


def test_a_900m_models_numbers_with_a_made_up_size_are_refused(honest, tmp_path):
    shutil.copytree(honest["folder"], tmp_path / "honest-300m")
    edit(tmp_path / "honest-300m", lambda d: d["model"].update(parameters=1000, non_embedding_parameters=1,
                                                               training_tokens=1))  # fmt: skip
    found = problems(tmp_path, honest["registry_file"])
    assert any("model.non_embedding_parameters: Input should be greater than or equal to 3072" in p for p in found)


def test_claimed_size_must_hold_the_fixed_vocabularys_embedding(tmp_path):
    """Paloma's fixed vocabulary has 50280 tokens: an embedding under 50280 × 16 weights cannot hold it."""
    out = eval_output(tmp_path / "eval", PALOMA, model="small", split="test")
    folder = submit(out, metadata("small"), tmp_path / "subs").parent
    edit(folder, lambda d: d["model"].update(parameters=4_000_000, non_embedding_parameters=3_500_000))
    (found,) = problems(tmp_path / "subs", None)
    assert found.endswith(
        "model.parameters: parameters − non_embedding_parameters is 500000, but the fixed vocabulary of 50280 "
        "tokens needs at least 804480 embedding weights (16 per token)"
    )


def test_training_tokens_must_be_a_training_budget(honest, tmp_path):
    shutil.copytree(honest["folder"], tmp_path / "honest-300m")
    edit(tmp_path / "honest-300m", lambda d: d["model"].update(training_tokens=1))
    (found,) = problems(tmp_path, honest["registry_file"])
    assert "training_tokens 1 is fewer than one per 1000 parameters (120000000)" in found


def test_parameters_counted_from_safetensors_weights_are_shown_as_read(honest, tmp_path):
    """`paloma submit --parameters-from FOLDER` recounts the weights' headers; the count is then not "declared"."""
    import torch
    from safetensors.torch import save_file

    out = eval_output(tmp_path / "eval", honest["registry_file"], model="counted", quality=0.77,
                      parameters=400_000, non_embedding_parameters=200_000)  # fmt: skip
    weights = tmp_path / "weights"
    weights.mkdir()
    save_file({"embed": torch.zeros(100, 64), "block": torch.zeros(300, 400)}, weights / "model-1.safetensors")
    save_file({"head": torch.zeros(64, 100)}, weights / "model-2.safetensors")
    args = ["submit", out, "--name", "counted", "--display-name", "Counted", "--organisation", "Lab",
            "--training-data", "web", "--training-tokens", "2000000000", "--fixed-vocabulary",
            "--parameters-from", weights, "--submissions", tmp_path / "subs",
            "--registry", honest["registry_file"]]  # fmt: skip
    proc = run_paloma(*args)
    assert proc.returncode == 2 and "non_embedding_parameters exceeds parameters" in proc.stderr  # 200k > 132.8k
    save_file({"embed": torch.zeros(100, 64), "block": torch.zeros(600, 400)}, weights / "model-1.safetensors")
    proc = run_paloma(*args)
    assert proc.returncode == 0, proc.stderr
    model = json.loads((tmp_path / "subs" / "counted" / "submission.json").read_text())["model"]
    assert model["parameters"] == 100 * 64 + 600 * 400 + 64 * 100
    assert model["parameters_source"] == str(weights)
    build(tmp_path / "subs", tmp_path / "site", registry_file=honest["registry_file"], progress=False)
    html = (tmp_path / "site" / "models" / "counted.html").read_text()
    assert "counted by <code>paloma submit</code> from the safetensors weights" in html


def test_parameters_of_a_hub_model_are_counted_from_the_local_hub_cache(tmp_path):
    """A hub id is resolved offline from the hub cache (the layout huggingface_hub writes); a model absent from
    it, offline, is one line. Run in a fresh process: huggingface_hub reads its cache and offline settings once."""
    import subprocess
    import sys

    import torch
    from safetensors.torch import save_file

    cache = tmp_path / "hub"
    snapshot = cache / "models--org--counted" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    save_file({"w": torch.zeros(7, 11), "b": torch.zeros(3)}, snapshot / "model.safetensors")
    (cache / "models--org--counted" / "refs").mkdir()
    (cache / "models--org--counted" / "refs" / "main").write_text("a" * 40)
    probe = (
        "from paloma.submissions.submit import parameters_from_weights as p\n"
        "from paloma.errors import PalomaError\n"
        "print(p('org/counted'))\n"
        "try:\n    p('org/absent')\nexcept PalomaError as e:\n    print(e)\n"
    )
    env = paloma_env(HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    counted, absent = out.splitlines()
    assert counted == "80"
    assert absent.startswith("--parameters-from org/absent: cannot read its safetensors metadata (")


# ---- 3. the split is pinned, never chosen by majority -------------------------------------------------------


def test_a_crowd_of_the_other_split_is_refused_not_counted(tmp_path):
    (tmp_path / "plain").mkdir()
    registry = {**json.loads(write_tiny_registry(tmp_path / "plain").read_text()), "split": "val"}
    registry_file = tmp_path / "tiny.json"
    registry_file.write_text(json.dumps(registry))
    for i in range(3):
        make(tmp_path, registry_file, f"val-{i}", quality=1 - i / 10)
    for i in range(4):
        out = eval_output(tmp_path / "evals" / f"test-{i}", registry_file, model=f"test-{i}", split="test")
        data = json.loads((out / "results.json").read_text())
        folder = tmp_path / "subs" / f"test-{i}"
        sub = Submission.model_validate(build_submission(data, metadata(f"test-{i}"), None))
        folder.mkdir(parents=True)
        (folder / "submission.json").write_text(json.dumps(sub.to_json_dict()))
    found = problems(tmp_path / "subs", registry_file)
    assert len(found) == 4 and all("benchmark.split: release 'tiny' ranks the val split; this submission is of test"
                                   in p for p in found)  # fmt: skip
    for i in range(4):
        shutil.rmtree(tmp_path / "subs" / f"test-{i}")
    summary = build(tmp_path / "subs", tmp_path / "site", registry_file=registry_file, progress=False)
    assert (summary.split, summary.submissions) == ("val", 3)
    with pytest.raises(PalomaError, match="--split test: release 'tiny' ranks the val split"):
        build(tmp_path / "subs", tmp_path / "site", split="test", registry_file=registry_file, progress=False)


def test_paloma_and_the_demo_pin_their_split():
    assert load_registry_file(PALOMA).split == "test"
    from paloma.demo.suite import registry_dict  # noqa: F401

    text = (REPO_ROOT / "paloma" / "demo" / "suite.py").read_text()
    assert '"split": "test"' in text


def test_without_a_pin_both_splits_need_a_choice(honest, tmp_path):
    shutil.copytree(honest["folder"], tmp_path / "subs" / "honest-300m")
    out = eval_output(tmp_path / "e", honest["registry_file"], model="t", split="test")
    submit(out, metadata("tested"), tmp_path / "subs", honest["registry_file"])
    with pytest.raises(PalomaError, match="submissions of both splits of release 'tiny', which pins none"):
        build(tmp_path / "subs", tmp_path / "site", registry_file=honest["registry_file"], progress=False)


# ---- 4. a release without a manifest: nothing passes as verified --------------------------------------------


def test_without_a_manifest_every_submission_is_data_unverified(tmp_path):
    """Paloma itself has no committed manifest: validation says what to run, the site marks every entry, and a
    hand-written decontamination report that names every source does not earn the checked badge."""
    out = eval_output(tmp_path / "eval", PALOMA, model="only", split="test")
    folder = submit(out, metadata("only"), tmp_path / "subs").parent
    sources = sorted(s.name for s in load_registry_file(PALOMA).public() if not s.is_code)
    forged = {"index": {"checksum": "blake2b-256:" + "a" * 64, "data": {"sources": sources, "splits": ["val", "test"]}},
              "totals": {"documents": 10, "removed_documents": 1}, "dry_run": False}  # fmt: skip
    (folder / "decon-report.json").write_text(json.dumps(forged))
    edit(folder, lambda d: d["guidelines"].update(decontamination={"met": True, "index_checksum": "blake2b-256:" +
                                                  "a" * 64, "report": "decon-report.json"}))  # fmt: skip
    report = validate([tmp_path / "subs"])
    assert report.problems == []
    (loaded,) = report.submissions
    assert loaded.data_verified is False and loaded.decon_evidence == "unverified"
    (note,) = report.notes
    assert "every such submission is shown as 'data unverified'" in note
    assert note.endswith(
        "paloma release manifest --data allenai/paloma --split test --registry paloma "
        "--tokenizer FIXED_VOCABULARY_TOKENIZER --output domains/paloma.test.manifest.json"
    )
    build(tmp_path / "subs", tmp_path / "site", progress=False)
    (row,) = json.loads((tmp_path / "site" / "data" / "leaderboard.json").read_text())["rows"]
    assert row["verified"] is False and row["evidence"] == "unverified" and row["declared"] is True
    for page in ("models/only.html", "index.html", "pareto.html"):
        assert (
            "<strong>Data unverified:</strong> release paloma has no committed manifest"
            in (tmp_path / "site" / page).read_text()
        )
    assert "Data unverified</span>" in (tmp_path / "site" / "models" / "only.html").read_text()  # its badge


def test_with_a_manifest_the_entry_is_verified(honest, tmp_path):
    (loaded,) = validate([honest["folder"]], honest["registry_file"]).submissions
    assert loaded.data_verified is True
    build(honest["folder"].parent, tmp_path / "site", registry_file=honest["registry_file"], progress=False)
    assert "Data unverified" not in (tmp_path / "site" / "index.html").read_text()


# ---- 6. duplicate JSON keys --------------------------------------------------------------------------------


def test_duplicate_json_keys_are_refused(honest, tmp_path):
    shutil.copytree(honest["folder"], tmp_path / "honest-300m")
    path = tmp_path / "honest-300m" / "submission.json"
    text = path.read_text()
    assert text.count('"parameters": 120000000') == 1
    path.write_text(text.replace('"parameters": 120000000', '"parameters": 7000000000, "parameters": 120000000'))
    (found,) = problems(tmp_path, honest["registry_file"])
    assert found.endswith("submission.json: the key 'parameters' appears twice in one object (readers disagree on "
                          "which wins)")  # fmt: skip


# ---- 8. others cannot fail an honest entry ------------------------------------------------------------------


def test_sybils_cannot_make_honest_submissions_fail(tmp_path):
    """3 honest submissions and 4 that agree on other byte counts, for a release without a manifest."""
    registry_file = write_tiny_registry(tmp_path)
    for i in range(3):
        make(tmp_path, registry_file, f"honest-{i}", quality=1 - i / 10)
    for i in range(4):
        folder = make(tmp_path, registry_file, f"sybil-{i}", quality=0.5 + i / 10)
        edit(folder, lambda d: d["results"]["beta"]["beta"].update(bytes=d["results"]["beta"]["beta"]["bytes"] + 1))
    found = problems(tmp_path / "subs", registry_file)
    assert not [p for p in found if "honest-" in p], found


# ---- 9. URLs and YAML --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expect"),
    [
        ("http://example.org/w", "is not an https URL"),
        ("https://paypal.com@evil.example/", "has a user name before its host"),
        ("https://pаypal.com/", "has a non-ASCII host: write it in punycode (xn--pypal-4ve.com)"),
        ("https://exa\u202emple.org/", "holds an invisible formatting character"),
        ("https://example.org/\u200bx", "holds an invisible formatting character"),
    ],
)
def test_links_must_be_https_plain_ascii_hosts_and_visible(honest, tmp_path, url, expect):
    shutil.copytree(honest["folder"], tmp_path / "honest-300m")
    edit(tmp_path / "honest-300m", lambda d: d["model"].update(links=[{"label": "weights", "url": url}]))
    (found,) = problems(tmp_path, honest["registry_file"])
    assert "model.links.0.url" in found and expect in found


def test_a_punycode_host_is_accepted_as_written(honest, tmp_path):
    shutil.copytree(honest["folder"], tmp_path / "honest-300m")
    link = {"label": "weights", "url": "https://xn--pypal-4ve.com/"}
    edit(tmp_path / "honest-300m", lambda d: d["model"].update(links=[link]))
    assert problems(tmp_path, honest["registry_file"]) == []


def test_yaml_with_aliases_is_refused_at_once(tmp_path):
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 12):
        bomb.append(f"{chr(97 + i)}: &{chr(97 + i)} [" + ", ".join([f"*{chr(96 + i)}"] * 9) + "]")
    path = tmp_path / "meta.yaml"
    path.write_text("\n".join(bomb) + "\nname: x\n")
    started = time.process_time()
    with pytest.raises(PalomaError, match=r"meta.yaml:1: YAML an anchor \(a\): write metadata plainly"):
        read_metadata(path)
    assert time.process_time() - started < 5  # linear scan: nothing expanded (was > 120 s)
    path.write_text("name: x\nother: *y\n")
    with pytest.raises(PalomaError, match=r"meta.yaml:2: YAML an alias \(y\)"):
        read_metadata(path)


# ---- 11. the demo's summary shows what the site shows --------------------------------------------------------


def test_demo_summary_shows_the_sites_macro_bpb(honest):
    registry = load_registry_file(honest["registry_file"])
    results = json.loads((honest["root"] / "evals" / "honest-300m" / "results.json").read_text())
    (row,) = summary_rows({"honest-300m": results})
    bpb = row[SUMMARY_HEADERS.index("macro bpb")]
    (loaded,) = validate([honest["folder"]], honest["registry_file"]).submissions
    entry = make_entry(loaded.submission, loaded.path, registry)
    assert bpb == pytest.approx(entry.fit("bpb"), rel=1e-12)
    assert bpb != pytest.approx(results["suite"]["micro_bpb"], rel=1e-6)


# ---- 10. a written process ---------------------------------------------------------------------------------


def test_the_process_is_written_and_linked_from_the_readme_and_every_page(honest, tmp_path):
    page = (REPO_ROOT / "docs" / "maintainers.md").read_text()
    for part in ("## Accepting a submission", "## Correcting an entry", "## Withdrawing an entry",
                 "## Contesting an entry", "--parameters-from", "paloma release manifest"):  # fmt: skip
        assert part in page
    template = (REPO_ROOT / ".github" / "pull_request_template.md").read_text()
    assert "docs/maintainers.md" in template and "adds only `submissions/<name>/`" in template
    readme = (REPO_ROOT / "README.md").read_text()
    assert "(docs/maintainers.md)" in readme and "(.github/pull_request_template.md)" in readme
    build(honest["folder"].parent, tmp_path / "site", registry_file=honest["registry_file"], progress=False)
    for html in [*tmp_path.glob("site/*.html"), *tmp_path.glob("site/*/*.html")]:
        text = html.read_text()
        assert 'maintainers.html">How entries are accepted, corrected, withdrawn and contested</a>' in text, html
    shown = (tmp_path / "site" / "maintainers.html").read_text()
    assert "<h2>Withdrawing an entry</h2>" in shown and "<h2>Contesting an entry</h2>" in shown
