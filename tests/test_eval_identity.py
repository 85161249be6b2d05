"""One identity per selection and per copy of the data; a suite whole or said to be a part; no secret written.

Each test is a case that once passed silently (issue 19, "Why" 1–4 and 6): a cached selection's tokens scored
against another selection's documents, `--resume` mixing two selections, a local clone and a hub snapshot of the
same bytes recorded as two datasets, a hub cache holding two sources scored as "the suite", and `--token hf_…`
written in clear into results.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from pathlib import Path

import pytest
from fixtures import pydoc_paragraphs, write_release

from paloma.cli import main

L = 16
TOKEN = "hf_" + "AbCdEfGhIjKlMnOpQrStUvWxYz01234567"  # the shape of a Hugging Face access token


def cli(capsys, *args, cache: bool = False) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["eval", *map(str, args), "--no-progress", *([] if cache else ["--no-cache"])])
    return code, capsys.readouterr().err.strip().splitlines()


def results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


@pytest.fixture
def model(tiny):
    return tiny["models"]["llama"]


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """Two sources of the registry, domains of 8–10 documents: a --limit of 3 draws differently per seed."""
    rng = random.Random(0)
    paragraphs = pydoc_paragraphs()
    corpus = {
        ("c4_en", None): rng.sample(paragraphs, 10),
        ("wikitext_103", None): rng.sample(paragraphs, 8),
    }
    return write_release(tmp_path_factory.mktemp("identity") / "release", corpus)


# ------------------------------------------------------------------------- Why 1: the cache keys the selection


def test_a_cached_selection_is_never_scored_against_another_selections_documents(capsys, model, release, tmp_path):
    common = ["--model", model, "--data", release, "--data-revision", "v1", "--limit", 3, "--max-length", L]
    cache = ["--cache-dir", tmp_path / "cache"]
    assert cli(capsys, *common, "--seed", 1, *cache, "--output", tmp_path / "s1", cache=True)[0] == 0
    assert cli(capsys, *common, "--seed", 2, *cache, "--output", tmp_path / "s2", cache=True)[0] == 0
    assert cli(capsys, *common, "--seed", 2, "--output", tmp_path / "fresh")[0] == 0
    cached, fresh, first = results(tmp_path / "s2"), results(tmp_path / "fresh"), results(tmp_path / "s1")
    assert cached["suite"]["macro_bpb"] == pytest.approx(fresh["suite"]["macro_bpb"], rel=1e-12)
    assert cached["suite"]["nll_sum"] == pytest.approx(fresh["suite"]["nll_sum"], rel=1e-12)
    assert first["data"]["selection"] != cached["data"]["selection"]
    assert first["protocol"]["run_fingerprint"] != cached["protocol"]["run_fingerprint"]
    # a seeded subset is part of the protocol (issue 20): two samples of the data are not comparable either
    assert (first["protocol"]["subset"], cached["protocol"]["subset"]) == (
        "max_documents_per_domain=3,seed=1",
        "max_documents_per_domain=3,seed=2",
    )
    assert first["protocol"]["fingerprint"] != cached["protocol"]["fingerprint"]


# ------------------------------------------------------------------------- Why 2: --resume keeps one selection


@pytest.mark.parametrize("finished", [True, False])
def test_resuming_with_another_selection_is_refused_naming_what_differs(capsys, model, release, tmp_path, finished):
    out = tmp_path / "o"
    common = ["--model", model, "--data", release, "--data-revision", "v1", "--limit", 3, "--max-length", L]
    common += ["--output", out]
    assert cli(capsys, *common, "--seed", 1)[0] == 0
    if not finished:
        (out / "results.json").unlink()  # what a run killed after its records leaves
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    code, err = cli(capsys, *common, "--seed", 2, "--resume")
    assert code == 2 and len(err) == 1, err
    assert "--resume" in err[0] and "seed: 1 → 2" in err[0] and "selection:" in err[0]
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


# ------------------------------------------------------------------------- Why 3: the data's identity is content


def _blob_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hub_cache(root: Path, release: Path, commits: dict[str, str], sources: list[str] | None = None) -> Path:
    """huggingface_hub's cache layout for allenai/paloma, as a download leaves it: snapshot files are links to
    blobs named by their etag (an LFS file's sha256; a small git file's sha1). `commits` maps each commit to
    its README text; the last one is `main`."""
    repo = root / "datasets--allenai--paloma"
    (repo / "blobs").mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    files = [p for p in sorted(release.rglob("*")) if p.is_file()]
    files = [p for p in files if sources is None or p.relative_to(release).parts[0] in sources]
    for commit, readme in commits.items():
        snapshot = repo / "snapshots" / commit
        for path in files:
            blob = repo / "blobs" / _blob_sha(path)
            shutil.copyfile(path, blob)
            _link(snapshot / path.relative_to(release), blob)
        readme_blob = repo / "blobs" / hashlib.sha1(readme.encode()).hexdigest()  # a git blob id, not LFS
        readme_blob.write_text(readme)
        _link(snapshot / "README.md", readme_blob)
        (repo / "refs" / "main").write_text(commit)
    return root


def _link(link: Path, blob: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(blob, link.parent))


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    """Point huggingface_hub at a cache under tmp_path, offline (as after `hf download` on another machine)."""
    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    return cache


COMMIT_1 = "1111111111111111111111111111111111111111"
COMMIT_2 = "2222222222222222222222222222222222222222"


def test_a_local_clone_and_a_hub_snapshot_of_the_same_files_are_one_dataset(
    capsys, model, release, tmp_path, offline_hub
):
    clone = tmp_path / "clone"
    shutil.copytree(release, clone)
    (clone / "README.md").write_text("a clone's own README\n")
    hub_cache(offline_hub, release, {COMMIT_1: "README\n"})
    common = ["--model", model, "--max-length", L]
    assert cli(capsys, *common, "--data", clone, "--output", tmp_path / "local")[0] == 0
    assert cli(capsys, *common, "--data", "allenai/paloma", "--sources", "*", "--output", tmp_path / "hub")[0] == 0
    local, hub = results(tmp_path / "local"), results(tmp_path / "hub")
    assert local["protocol"]["data_revision"] == hub["protocol"]["data_revision"]
    assert local["protocol"]["fingerprint"] == hub["protocol"]["fingerprint"]
    assert local["data"]["selection"] == hub["data"]["selection"]
    assert hub["data"]["hub_commit"] == COMMIT_1 and local["data"]["hub_commit"] is None
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "local"), str(tmp_path / "hub"), "--bootstrap", "0"]) == 0
    assert "not comparable" not in capsys.readouterr().err


def test_a_commit_that_only_edits_the_readme_changes_nothing(capsys, model, release, tmp_path, offline_hub):
    hub_cache(offline_hub, release, {COMMIT_1: "README\n", COMMIT_2: "README, typo fixed\n"})
    common = ["--model", model, "--max-length", L, "--data", "allenai/paloma", "--sources", "*"]
    code, err = cli(capsys, *common, "--data-revision", COMMIT_1, "--output", tmp_path / "one")
    assert code == 0, err
    assert cli(capsys, *common, "--data-revision", COMMIT_2, "--output", tmp_path / "two")[0] == 0
    one, two = results(tmp_path / "one"), results(tmp_path / "two")
    assert (one["data"]["hub_commit"], two["data"]["hub_commit"]) == (COMMIT_1, COMMIT_2)
    assert one["protocol"]["data_revision"] == two["protocol"]["data_revision"]
    assert one["protocol"]["fingerprint"] == two["protocol"]["fingerprint"]


def test_the_data_revision_follows_the_bytes_of_the_data_files(release, tmp_path):
    from paloma.eval.data import DataSpec, data_revision, resolve_data

    def revision(folder: Path) -> str:
        return data_revision(resolve_data(DataSpec(path=str(folder))))

    copy = tmp_path / "copy"
    shutil.copytree(release, copy)
    assert revision(copy) == revision(release)
    (copy / "c4_en" / "test" / "notes.txt").write_text("not a data file\n")
    assert revision(copy) == revision(release)
    shutil.copytree(copy / "c4_en" / "test", copy / "c4_en" / "val")  # another split is other data
    assert revision(copy) == revision(release)
    data_file = next((copy / "wikitext_103" / "test").glob("*.jsonl.gz"))
    data_file.write_bytes(data_file.read_bytes()[:-8] + bytes(8))
    assert revision(copy) != revision(release)


# ------------------------------------------------------------------------- Why 4: a suite is whole or says so


def test_a_hub_cache_lacking_public_sources_is_an_error_naming_them(capsys, model, release, tmp_path, offline_hub):
    hub_cache(offline_hub, release, {COMMIT_1: "README\n"})  # c4_en and wikitext_103 only
    code, err = cli(capsys, "--model", model, "--data", "allenai/paloma", "--max-length", L, "--output", tmp_path / "o")
    assert code == 2 and len(err) == 1, err
    assert "lacks 14 of the 16 public sources" in err[0] and "mc4" in err[0] and "--sources" in err[0]
    assert not (tmp_path / "o").exists()


def test_a_part_chosen_with_sources_is_never_reported_as_the_suite(capsys, model, release, tmp_path, offline_hub):
    hub_cache(offline_hub, release, {COMMIT_1: "README\n"})
    capsys.readouterr()
    code = main(["eval", "--model", str(model), "--data", "allenai/paloma", "--sources", "c4_en", "wikitext_103",
                 "--max-length", str(L), "--output", str(tmp_path / "o"), "--no-progress", "--no-cache"])  # fmt: skip
    assert code == 0
    suite_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("suite:"))
    assert "a part of the suite, not the whole" in suite_line
    assert results(tmp_path / "o")["suite"]["whole"] is False


# ------------------------------------------------------------------------- Why 6: no secret is ever written


def test_a_token_never_reaches_a_file(capsys, model, release, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.argv", ["paloma", "eval", "--token", TOKEN, "--hub-token=" + TOKEN])
    out, cache = tmp_path / "o", tmp_path / "cache"
    code, _ = cli(capsys, "--model", model, "--data", release, "--max-length", L, "--output", out, "--token", TOKEN,
                  "--cache-dir", cache, "--bootstrap", 20, cache=True)  # fmt: skip
    assert code == 0
    assert main(["aggregate", str(out)]) == 0
    written = [p for root in (out, cache) for p in root.rglob("*") if p.is_file()]
    assert {"results.json", "run.json", "domains.csv"} <= {p.name for p in written}
    for path in written:
        assert TOKEN.encode() not in path.read_bytes(), path
    command = results(out)["provenance"]["command"]
    assert command == ["paloma", "eval", "--token", "<redacted>", "--hub-token=<redacted>"]


def test_recorded_command_lines_lose_every_secret_form():
    from paloma.io import redact_command

    argv = ["x", "--token", "plain-secret", "--token=s2", "--hf_token", "s3", "--token-stats", "--batch-tokens", "8",
            f"--model-args=token={TOKEN}"]  # fmt: skip
    hidden = "<redacted>"
    assert redact_command(argv) == ["x", "--token", hidden, "--token=" + hidden, "--hf_token", hidden, "--token-stats",
                                    "--batch-tokens", "8", "--model-args=token=" + hidden]  # fmt: skip


def test_a_manifest_of_the_hub_snapshot_matches_an_evaluation_of_a_local_clone(
    capsys, model, release, tmp_path, offline_hub
):
    from paloma.registry import load_registry
    from paloma.submissions.manifest import build_manifest

    hub_cache(offline_hub, release, {COMMIT_1: "README\n"})
    manifest = build_manifest("allenai/paloma", "test", load_registry("paloma"), progress=False)
    assert cli(capsys, "--model", model, "--data", release, "--max-length", L, "--output", tmp_path / "local")[0] == 0
    local = results(tmp_path / "local")["protocol"]
    assert manifest["data_revision"] == local["data_revision"]
    assert manifest["fingerprints"]["paloma"] != local["fingerprint"]  # L = 16 here, the preset's is 2048
    assert manifest["fingerprints"]["paloma"] == results_fingerprint_at(local, max_length=2048)


def results_fingerprint_at(protocol: dict, **changes) -> str:
    from paloma.protocol import fingerprint_of

    return fingerprint_of({**protocol, **changes})
