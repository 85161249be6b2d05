"""What is read is what is recorded: the split, the selection, the model's identity and the text's bytes.

Each test here is a case that once passed silently (issue 11, "Why" 6–8): a source folder read as generic data,
`--split val` scoring test documents, a resume merging two checkpoints that differ in one late layer, a typo in
one of several globs ignored, invalid UTF-8 reported at the wrong line, a lone surrogate ending in a tokenizer
traceback, the lm-eval-harness preset pinning L instead of taking the model's own.
"""

from __future__ import annotations

import gzip
import json
import shutil

import pytest
import torch
from fixtures import pydoc_paragraphs, write_release

from paloma.cli import main
from paloma.eval.data import DataSpec
from paloma.eval.evaluate import EvalConfig, evaluate
from paloma.eval.records import load_records, record_files

L = 16


def cli(capsys, *args) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(["eval", *map(str, args), "--no-progress", "--no-cache"])
    return code, capsys.readouterr().err.strip().splitlines()


def fails(capsys, *args) -> str:
    code, err = cli(capsys, *args)
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.fixture
def model(tiny):
    return tiny["models"]["llama"]


@pytest.fixture
def release(tmp_path):
    paragraphs = pydoc_paragraphs()
    for split, texts in (("val", paragraphs[:3]), ("test", paragraphs[3:8])):
        write_release(tmp_path / "release", {("c4_en", None): texts, ("m2d2", "Physics"): texts[:2]}, split=split)
    return tmp_path / "release"


# ------------------------------------------------------------------------------- Why 6: the split is what it says


def test_a_source_folder_is_not_read_as_generic_data(capsys, model, release, tmp_path):
    line = fails(capsys, "--model", model, "--data", release / "c4_en", "--output", tmp_path / "o", "--max-length", L)
    assert "looks like one source's folder" in line and "--layout generic" in line
    assert not (tmp_path / "o").exists()


def test_asking_for_a_split_the_data_lacks_is_an_error_not_the_other_split(capsys, model, release, tmp_path):
    shutil.rmtree(release / "c4_en" / "val")
    shutil.rmtree(release / "m2d2" / "val")
    line = fails(capsys, "--model", model, "--data", release, "--split", "val", "--output", tmp_path / "o")
    assert "no <source>/val/ folder" in line and "test" in line


@pytest.mark.parametrize("split", ["val", "test"])
def test_the_recorded_split_is_the_split_read(model, release, tmp_path, split):
    config = EvalConfig(model=str(model), data=DataSpec(path=str(release), split=split), output=tmp_path / "o",
                        max_length=L, cache_dir=None, progress=False)  # fmt: skip
    results = evaluate(config)
    assert results["protocol"]["split"] == results["data"]["split"] == split
    assert results["sources"]["c4_en"]["documents"] == (3 if split == "val" else 5)


def test_the_generic_reader_is_asked_for_and_records_no_split(model, release, tmp_path):
    config = EvalConfig(model=str(model), data=DataSpec(path=str(release / "c4_en"), layout="generic",
                        default_source="mine"), output=tmp_path / "o", max_length=L, cache_dir=None,
                        progress=False, registry="none")  # fmt: skip
    results = evaluate(config)
    assert results["data"]["layout"] == "generic" and results["protocol"]["split"] is None
    assert results["sources"]["mine"]["documents"] == 3 + 5  # both folders, read as what they are: files


# ------------------------------------------------------------------------------- Why 7: resume identity, globs, text


def _checkpoint(folder, tokenizer, norm_scale: float):
    """A 2.6 MB Llama whose final norm weight (stored last in the file, far beyond its first MiB) is scaled."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=64, tie_word_embeddings=False)  # fmt: skip
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.norm.weight.mul_(norm_scale)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder / "model.safetensors"


def test_resume_refuses_a_checkpoint_that_differs_in_one_late_layer(capsys, tiny, release, tmp_path):
    first = _checkpoint(tmp_path / "first", tiny["tokenizer"], 1.0)
    second = _checkpoint(tmp_path / "second", tiny["tokenizer"], 1.5)
    assert first.stat().st_size == second.stat().st_size > 2 * 2**20
    with open(first, "rb") as a, open(second, "rb") as b:
        assert a.read(2**20) == b.read(2**20)  # what a hash of names, sizes and first MiBs would see
    common = ["--data", release, "--max-length", L, "--output", tmp_path / "o"]
    assert cli(capsys, "--model", first.parent, *common)[0] == 0
    line = fails(capsys, "--model", second.parent, *common, "--resume")
    assert "model_revision" in line


def test_model_revision_covers_the_whole_file_and_is_cached(tmp_path, monkeypatch):
    from paloma.eval.model import content_hash

    monkeypatch.setenv("PALOMA_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "m"
    folder.mkdir()
    payload = bytearray(3 * 2**20)
    (folder / "model.safetensors").write_bytes(payload)
    before = content_hash(folder)
    assert len(list((tmp_path / "cache" / "file-hashes").iterdir())) == 1  # hashed once, cached by size and mtime
    assert content_hash(folder) == before
    payload[-1] = 1  # one byte near the end: same name and size, same first MiB
    (folder / "model.safetensors").write_bytes(payload)
    assert content_hash(folder) != before


def test_resume_of_a_finished_run_says_nothing_is_left_and_rewrites_results(capsys, model, release, tmp_path):
    common = ["--model", model, "--data", release, "--max-length", L, "--output", tmp_path / "o"]
    assert cli(capsys, *common)[0] == 0
    first = json.loads((tmp_path / "o" / "results.json").read_text())
    files = record_files(tmp_path / "o")
    code, err = cli(capsys, *common, "--resume", "--bootstrap", "20")
    assert code == 0 and any("nothing left to score" in line for line in err), err
    again = json.loads((tmp_path / "o" / "results.json").read_text())
    assert record_files(tmp_path / "o") == files  # no empty attempt file
    assert again["suite"]["nll_sum"] == pytest.approx(first["suite"]["nll_sum"])
    assert "ci" in again["sources"]["c4_en"] and again["speed"] == first["speed"]


@pytest.mark.parametrize(
    "option, globs, wrong", [("--sources", ["c4_en", "m2d3*"], "m2d3*"), ("--domains", ["c4_en", "Phisics"], "Phisics")]
)
def test_every_glob_must_match_something(capsys, model, release, tmp_path, option, globs, wrong):
    line = fails(capsys, "--model", model, "--data", release, option, *globs, "--output", tmp_path / "o")
    assert f"{option} {wrong!r} matches none" in line


def test_invalid_utf8_is_reported_at_its_own_line(capsys, model, tmp_path):
    path = tmp_path / "d" / "c4_en" / "test" / "test-00000000.jsonl.gz"
    path.parent.mkdir(parents=True)
    good = [json.dumps({"text": f"document {i} " * 20, "id": str(i)}).encode() for i in range(1499)]
    bad = b'{"text": "caf\xe9 au lait", "id": "1500"}'  # Latin-1, not UTF-8
    path.write_bytes(gzip.compress(b"\n".join([*good, bad, *good[:300]]) + b"\n"))
    line = fails(capsys, "--model", model, "--data", tmp_path / "d", "--output", tmp_path / "o", "--max-length", L)
    assert f"{path}:1500:" in line and "invalid UTF-8" in line


def test_a_lone_surrogate_is_reported_with_file_and_line(capsys, model, tmp_path):
    path = tmp_path / "d" / "c4_en" / "test" / "test-00000000.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"text": "fine", "id": "1"}\n{"text": "also fine", "id": "2"}\n{"text": "bad \\ud800 here"}\n')
    line = fails(capsys, "--model", model, "--data", tmp_path / "d", "--output", tmp_path / "o", "--max-length", L)
    assert f"{path}:3" in line and "lone surrogate" in line and "U+D800" in line


# ------------------------------------------------------------------------------- Why 8: presets that reproduce


def test_lm_eval_harness_preset_takes_the_models_length_as_lm_evaluation_harness_does(tiny, tmp_path):
    """HFLM at its own default length (none given) against the preset without --max-length."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model_dir = tiny["models"]["llama"]  # max_position_embeddings 64
    paragraphs = pydoc_paragraphs()
    texts = [" ".join(paragraphs[i : i + 3]) for i in range(0, 12, 3)]
    data = write_release(tmp_path / "d", {("c4_en", None): texts})
    config = EvalConfig(model=str(model_dir), data=DataSpec(path=str(data)), output=tmp_path / "o",
                        preset="lm-eval-harness", dtype="float64", cache_dir=None, progress=False)  # fmt: skip
    results = evaluate(config)
    assert results["protocol"]["max_length"] == 64 and results["protocol"]["max_length_source"] == "model"
    harness = HFLM(pretrained=str(model_dir), batch_size=2, device="cpu", dtype="float64")
    assert harness.max_length == 64
    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    theirs = harness.loglikelihood_rolling(requests, disable_tqdm=True)
    ours = {r["id"]: r for r in load_records(tmp_path / "o")}
    for i, loglik in enumerate(theirs):
        assert ours[f"c4_en-{i}"]["tokens"] > 64  # several windows each
        assert ours[f"c4_en-{i}"]["nll_sum"] == pytest.approx(-loglik, rel=1e-6)
