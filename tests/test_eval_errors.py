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
