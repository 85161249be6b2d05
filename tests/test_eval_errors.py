"""Bad input: a one-line error naming the file and line (or option), exit code 2, nothing half-written."""

from __future__ import annotations

import gzip
import json

import pytest
from fixtures import write_release

from paloma.cli import main

L = "16"


def fail(capsys, *args) -> str:
    """Run the CLI in-process; assert it fails with exit 2 and one line on stderr; return that line."""
    code = main(["eval", *map(str, args), "--no-progress", "--no-cache"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    return err[0]


@pytest.fixture
def model(tiny):
    return tiny["models"]["llama"]


def write_lines(path, lines: list[str], compress: bool = True):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = ("\n".join(lines) + "\n").encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def test_corrupt_gzip(capsys, model, tmp_path):
    path = tmp_path / "d" / "c4_en" / "test" / "test-00000000.jsonl.gz"
    payload = gzip.compress(("\n".join(json.dumps({"text": f"doc {i} " * 50}) for i in range(200)) + "\n").encode())
    path.parent.mkdir(parents=True)
    path.write_bytes(payload[: len(payload) // 2])
    line = fail(capsys, "--model", model, "--data", tmp_path / "d", "--max-length", L, "--output", tmp_path / "o")
    assert str(path) in line and "cannot read" in line
    assert not (tmp_path / "o").exists()


def test_invalid_json_line_names_file_and_line(capsys, model, tmp_path):
    path = write_lines(tmp_path / "d" / "c4_en" / "test" / "test-00000000.jsonl.gz", ['{"text": "ok"}', "{oops"])
    line = fail(capsys, "--model", model, "--data", tmp_path / "d", "--max-length", L, "--output", tmp_path / "o")
    assert f"{path}:2" in line and "invalid JSON" in line


def test_missing_text_field(capsys, model, tmp_path):
    path = write_lines(tmp_path / "d" / "c4_en" / "test" / "t.jsonl.gz", ['{"text": "ok"}', '{"id": "x"}'])
    line = fail(capsys, "--model", model, "--data", tmp_path / "d", "--max-length", L, "--output", tmp_path / "o")
    assert f"{path}:2" in line and "missing field 'text'" in line


def test_non_string_text_field(capsys, model, tmp_path):
    path = write_lines(tmp_path / "d" / "c4_en" / "test" / "t.jsonl.gz", ['{"text": 42}'])
    line = fail(capsys, "--model", model, "--data", tmp_path / "d", "--max-length", L, "--output", tmp_path / "o")
    assert f"{path}:1" in line and "not a string" in line


def test_missing_data_folder(capsys, model, tmp_path):
    line = fail(capsys, "--model", model, "--data", tmp_path / "nowhere", "--output", tmp_path / "o")
    assert "nowhere" in line and "no such file" in line


def test_missing_model(capsys, tmp_path):
    data = write_release(tmp_path / "d", {("c4_en", None): ["hello"]})
    line = fail(capsys, "--model", tmp_path / "no-model", "--data", data, "--output", tmp_path / "o")
    assert "no-model" in line


def test_max_length_beyond_the_model(capsys, model, tmp_path):
    data = write_release(tmp_path / "d", {("c4_en", None): ["hello"]})
    line = fail(capsys, "--model", model, "--data", data, "--max-length", "4096", "--output", tmp_path / "o")
    assert "--max-length 4096" in line and "64 positions" in line


def test_max_length_default_is_pinned_to_2048_not_the_model_config(capsys, model, tmp_path):
    data = write_release(tmp_path / "d", {("c4_en", None): ["hello"]})
    line = fail(capsys, "--model", model, "--data", data, "--output", tmp_path / "o")
    assert "--max-length 2048" in line


def test_prefix_the_tokenizer_lacks(capsys, tiny, tmp_path):
    from transformers import AutoTokenizer

    folder = tmp_path / "no-bos"
    folder.mkdir()
    for path in tiny["models"]["llama"].iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.bos_token = None
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["bos_token_id"] = None
    (folder / "config.json").write_text(json.dumps(config))
    data = write_release(tmp_path / "d", {("c4_en", None): ["hello"]})
    line = fail(
        capsys, "--model", folder, "--data", data, "--prefix", "bos", "--max-length", L, "--output", tmp_path / "o"
    )
    assert "--prefix bos" in line and "no BOS token" in line
    line = fail(
        capsys, "--model", folder, "--data", data, "--prefix", "99999", "--max-length", L, "--output", tmp_path / "o"
    )
    assert "--prefix 99999" in line


def test_existing_output_needs_resume_or_overwrite(capsys, model, tmp_path):
    data = write_release(tmp_path / "d", {("c4_en", None): ["hello world"]})
    args = ["--model", model, "--data", data, "--max-length", L, "--output", tmp_path / "o"]
    assert main(["eval", *map(str, args), "--no-progress", "--no-cache"]) == 0
    capsys.readouterr()
    line = fail(capsys, *args)
    assert "--resume" in line and "--overwrite" in line


def test_resume_under_another_protocol_is_refused(capsys, model, tmp_path):
    data = write_release(tmp_path / "d", {("c4_en", None): ["hello world"]})
    args = ["--model", model, "--data", data, "--output", tmp_path / "o"]
    assert main(["eval", *map(str, args), "--max-length", L, "--no-progress", "--no-cache"]) == 0
    capsys.readouterr()
    line = fail(capsys, *args, "--max-length", "32", "--resume")
    assert "max_length: 16 → 32" in line


def test_a_malformed_old_olmo_checkpoint_is_one_line_naming_the_field(capsys, tmp_path):
    folder = tmp_path / "hf-olmo"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "hf_olmo", "max_sequence_length": 2048}))
    data = write_release(tmp_path / "d", {("c4_en", None): ["hello"]})
    for extra in ([], ["--trust-remote-code"]):
        code = main(["eval", "--model", str(folder), "--data", str(data), "--dry-run", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1
        assert "config.json" in err[0] and "d_model" in err[0]


def test_empty_documents_score_nothing_and_are_counted(model, tmp_path):
    data = write_release(tmp_path / "d", {("c4_en", None): ["", "hello world", ""]})
    assert main(["eval", "--model", str(model), "--data", str(data), "--max-length", L,
                 "--output", str(tmp_path / "o"), "--no-progress", "--no-cache"]) == 0  # fmt: skip
    results = json.loads((tmp_path / "o" / "results.json").read_text())
    domain = results["sources"]["c4_en"]["domains"]["c4_en"]
    assert domain["documents"] == 3 and domain["empty_documents"] == 2 and domain["bytes"] == len("hello world")


# ------------------------------------------------------------------ issue 19, Why 7: every input one line, first


def _jsonl(texts: list[str]) -> bytes:
    return ("\n".join(json.dumps({"text": t, "id": str(i)}) for i, t in enumerate(texts)) + "\n").encode()


def test_jsonl_zst_is_read_like_jsonl_gz(capsys, model, tmp_path):
    import zstandard

    texts = [f"document {i}: " + "the quick brown fox jumps over the lazy dog " * (i + 1) for i in range(12)]
    for name, payload in (("gz", gzip.compress(_jsonl(texts))), ("zst", zstandard.compress(_jsonl(texts)))):
        path = tmp_path / name / "c4_en" / "test" / f"test-00000000.jsonl.{name}"
        path.parent.mkdir(parents=True)
        path.write_bytes(payload)
        args = ["--model", model, "--data", tmp_path / name, "--max-length", L, "--output", tmp_path / f"o-{name}"]
        assert main(["eval", *map(str, args), "--no-progress", "--no-cache"]) == 0, capsys.readouterr().err
    gz, zst = (json.loads((tmp_path / f"o-{n}" / "results.json").read_text()) for n in ("gz", "zst"))
    assert zst["sources"] == gz["sources"] and zst["suite"]["documents"] == 12


def _corrupt(payload: bytes) -> bytes:
    """Flip bits in the middle of a compressed stream: the length is intact, the data is not."""
    data = bytearray(payload)
    for i in range(20, len(data) - 20, 5):
        data[i] ^= 0x55
    return bytes(data)


@pytest.mark.parametrize("kind", ["gz", "zst"])
def test_corrupt_not_truncated_compressed_data_is_one_line_naming_the_file(capsys, model, tmp_path, kind):
    import zstandard

    texts = [f"doc {i} " * 50 for i in range(200)]
    payload = gzip.compress(_jsonl(texts)) if kind == "gz" else zstandard.compress(_jsonl(texts))
    path = tmp_path / "d" / "c4_en" / "test" / f"test-00000000.jsonl.{kind}"
    path.parent.mkdir(parents=True)
    path.write_bytes(_corrupt(payload))
    line = fail(capsys, "--model", model, "--data", tmp_path / "d", "--max-length", L, "--output", tmp_path / "o")
    assert str(path) in line and f"corrupt {'gzip' if kind == 'gz' else 'zstd'} data" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name", ["test-00000000.jsonl.gz", "test-00000000.parquet"])
def test_a_git_lfs_pointer_says_git_lfs_pull(capsys, model, tmp_path, name):
    path = tmp_path / "clone" / "c4_en" / "test" / name
    path.parent.mkdir(parents=True)
    path.write_text(
        "version https://git-lfs.github.com/spec/v1\n"
        "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 1048576\n"
    )
    line = fail(capsys, "--model", model, "--data", tmp_path / "clone", "--max-length", L, "--output", tmp_path / "o")
    assert str(path) in line and "Git LFS pointer" in line and "git lfs pull" in line


@pytest.fixture(scope="module")
def small_vocabulary_model(tiny, tmp_path_factory):
    """A model of 300 embedding rows saved with the 384-entry tokenizer: ids 300–383 have no row."""
    from fixtures import build_model

    folder = tmp_path_factory.mktemp("vocab300") / "model"
    build_model("llama", 300, folder)
    tiny["tokenizer"].save_pretrained(folder)
    return folder


@pytest.mark.parametrize("dry_run", [False, True])
def test_token_ids_beyond_the_models_vocabulary_are_refused_before_any_forward(
    capsys, small_vocabulary_model, tiny, tmp_path, dry_run
):
    texts = ["Zürich, São Paulo, naïve café 🙂🚀 — the tokenizer's last merges " * 4]
    data = write_release(tmp_path / "d", {("c4_en", None): texts})
    ids = tiny["tokenizer"](texts[0], add_special_tokens=False)["input_ids"]
    assert max(ids) >= 300  # the case: ids the model has no embedding row for
    run = ["--dry-run"] if dry_run else ["--output", tmp_path / "o"]
    line = fail(capsys, "--model", small_vocabulary_model, "--data", data, "--max-length", L, *run)
    assert "c4_en/c4_en/c4_en-0" in line and "outside model" in line and "300 entries" in line
    assert not (tmp_path / "o").exists()  # no run.json, no records: nothing was loaded or written


@pytest.mark.parametrize(
    ("spelling", "ours"),
    [
        (["--model_args", "pretrained=EleutherAI/pythia-160m"], "--model-args K=V"),
        (["--output_path", "out"], "--output FOLDER"),
        (["--batch_size", "auto"], "--batch-tokens N"),
        (["--tasks", "paloma_c4_en,paloma_ptb"], "--data allenai/paloma --sources c4_en ptb"),
        (["--log_samples"], "OUTPUT/records/"),
    ],
)
def test_lm_eval_spellings_are_answered_with_our_options_name(capsys, model, tmp_path, spelling, ours):
    with pytest.raises(SystemExit) as exit_:  # argparse's error, before anything is read
        main(["eval", "--model", str(model), "--data", str(tmp_path), *spelling])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1, err
    line = err[0]
    assert f"{spelling[0]} is lm-evaluation-harness's option" in line and ours in line
