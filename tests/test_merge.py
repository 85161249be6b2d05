"""Merged models: averaging is exact, a self-average is the model itself, and mismatches fail clearly."""

from __future__ import annotations

import json

import pytest
import torch
from tiny_llama import TEXT, tiny_llama, train_tokenizer
from transformers import AutoModelForCausalLM, AutoTokenizer

from paloma.analysis.merge import is_merge_recipe, load_merged, make_recipe, merge, vocab_hash
from paloma.errors import PalomaError


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    train_tokenizer(root / "tok")
    train_tokenizer(root / "tok-other", text=TEXT[::-1])  # same size, different merges and vocabulary
    return {
        "root": root,
        "a": tiny_llama(root / "a", root / "tok", seed=1),
        "b": tiny_llama(root / "b", root / "tok", seed=2),
        "wide": tiny_llama(root / "wide", root / "tok", seed=3, hidden=48),
        "other_vocab": tiny_llama(root / "other_vocab", root / "tok-other", seed=4),
    }


def _logits(model, tokenizer) -> torch.Tensor:
    """Logits of a batch of two 100-token stretches of real text."""
    ids = tokenizer(TEXT, return_tensors="pt").input_ids[0]
    batch = torch.stack([ids[:100], ids[100:200]])
    with torch.no_grad():
        return model(batch).logits


def test_the_average_of_a_model_with_itself_is_the_model(zoo, tmp_path):
    original = AutoModelForCausalLM.from_pretrained(zoo["a"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(zoo["a"])
    merged_dir = merge(make_recipe([zoo["a"], zoo["a"]], [0.5, 0.5]), tmp_path / "self")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert torch.equal(_logits(merged, tokenizer), _logits(original, tokenizer))


def test_half_half_merge_equals_the_hand_averaged_state_dict(zoo, tmp_path):
    out = merge(make_recipe([zoo["a"], zoo["b"]], [1, 1]), tmp_path / "ab")
    sd_a = AutoModelForCausalLM.from_pretrained(zoo["a"]).state_dict()
    sd_b = AutoModelForCausalLM.from_pretrained(zoo["b"]).state_dict()
    merged = AutoModelForCausalLM.from_pretrained(out).state_dict()
    assert set(merged) == set(sd_a)
    for name, tensor in merged.items():
        assert torch.equal(tensor, (sd_a[name] + sd_b[name]) / 2), name
    assert not torch.equal(sd_a["model.layers.0.mlp.up_proj.weight"], sd_b["model.layers.0.mlp.up_proj.weight"])
    info = json.loads((out / "merge.json").read_text())
    assert [m["weight"] for m in info["models"]] == [0.5, 0.5]
    assert info["vocab_hash"] == vocab_hash(AutoTokenizer.from_pretrained(out))
    assert (out / "model.safetensors").is_file()


def test_a_recipe_file_loads_the_same_weighted_average_in_memory(zoo, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"models:\n  - path: {zoo['a']}\n    weight: 3\n  - path: {zoo['b']}\n    weight: 1\n")
    assert is_merge_recipe(recipe) and not is_merge_recipe(zoo["a"])
    model, tokenizer = load_merged(recipe)
    sd_a = AutoModelForCausalLM.from_pretrained(zoo["a"]).state_dict()
    sd_b = AutoModelForCausalLM.from_pretrained(zoo["b"]).state_dict()
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, 0.75 * sd_a[name] + 0.25 * sd_b[name], rtol=0, atol=1e-7)
    assert vocab_hash(tokenizer) == vocab_hash(AutoTokenizer.from_pretrained(zoo["a"]))


def test_relative_recipe_paths_resolve_against_the_recipe_folder(zoo):
    recipe = zoo["root"] / "relative.json"
    recipe.write_text(json.dumps({"models": [{"path": "a"}, {"path": "b"}]}))
    model, _ = load_merged(recipe)
    assert model.config.hidden_size == 32


def test_mismatched_architectures_and_vocabularies_fail_clearly(zoo, tmp_path):
    with pytest.raises(PalomaError, match=r"different architectures \(.*hidden_size: 32 vs 48"):
        merge(make_recipe([zoo["a"], zoo["wide"]]), tmp_path / "x")
    with pytest.raises(PalomaError, match="different tokenizer vocabularies"):
        merge(make_recipe([zoo["a"], zoo["other_vocab"]]), tmp_path / "y")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not list(tmp_path.iterdir())  # no staging folder left behind


def test_a_different_model_type_is_named_as_such_before_any_weights_load(zoo, tmp_path, paloma_cli):
    """The bug: a merge of a Llama and a GPT-2 named `activation_function`, `add_cross_attention`, … (the
    first fields, alphabetically, that differ as a consequence) after the progress lines of loading both."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(zoo["a"])
    gpt2 = tmp_path / "gpt2"
    GPT2LMHeadModel(
        GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2, bos_token_id=0, eos_token_id=0)
    ).save_pretrained(gpt2)
    tokenizer.save_pretrained(gpt2)
    proc = paloma_cli("merge", zoo["a"], gpt2, "--output", tmp_path / "out")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        f"paloma merge: error: cannot merge {gpt2} into {zoo['a']}: different architectures "
        "(model_type: 'llama' vs 'gpt2')\n"
    )
    assert not (tmp_path / "out").exists()


def test_bad_weights_and_recipes_are_refused(tmp_path):
    with pytest.raises(PalomaError, match="2 weights for 3 models"):
        make_recipe(["a", "b", "c"], [1, 2])
    with pytest.raises(PalomaError, match="non-negative"):
        make_recipe(["a", "b"], [1, -1])
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  - weight: 1\n")
    with pytest.raises(PalomaError, match=r"bad.yaml: models\[0\] lacks the field 'path'"):
        load_merged(bad)


def test_cli_writes_a_merge_and_refuses_an_occupied_output(zoo, tmp_path, paloma_cli):
    out = tmp_path / "cli-merge"
    proc = paloma_cli("merge", zoo["a"], zoo["b"], "--weights", "1", "3", "--output", out, check=True)
    assert "× 0.25" in proc.stdout and "× 0.75" in proc.stdout
    assert json.loads((out / "merge.json").read_text())["models"][1]["weight"] == 0.75
    again = paloma_cli("merge", zoo["a"], zoo["b"], "--output", out)
    assert again.returncode == 2
    assert again.stderr.strip() == f"paloma merge: error: {out}: exists and is not empty; choose a new folder"


def _variant(source, folder, **config):
    """A copy of a model folder with some config fields changed (and the weights cast, with `dtype`)."""
    dtype = config.pop("dtype", None)
    model = AutoModelForCausalLM.from_pretrained(source)
    if dtype is not None:
        model = model.to(dtype)
    for key, value in config.items():
        setattr(model.config, key, value)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def test_float64_parameters_are_averaged_in_float64(zoo, tmp_path):
    a = _variant(zoo["a"], tmp_path / "a64", dtype=torch.float64)
    b = _variant(zoo["b"], tmp_path / "b64", dtype=torch.float64)
    model, _ = load_merged(_recipe(tmp_path, [(a, 0.3), (b, 0.7)]))
    sd_a = AutoModelForCausalLM.from_pretrained(a, dtype=torch.float64).state_dict()
    sd_b = AutoModelForCausalLM.from_pretrained(b, dtype=torch.float64).state_dict()
    for name, tensor in model.state_dict().items():
        assert tensor.dtype == torch.float64, name
        expected = sd_a[name] * 0.3 + sd_b[name] * 0.7
        # float32 accumulation would be off by about 1e-8 relative; float64 agrees to rounding
        torch.testing.assert_close(tensor, expected, rtol=1e-15, atol=1e-15)


def _recipe(tmp_path, models) -> object:
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({"models": [{"path": str(p), "weight": w} for p, w in models]}))
    return path


def test_config_fields_that_do_not_change_the_weights_may_differ(zoo, tmp_path):
    no_cache = _variant(zoo["b"], tmp_path / "b-no-cache", use_cache=False, output_hidden_states=True)
    out = merge(make_recipe([zoo["a"], no_cache]), tmp_path / "merged")
    assert AutoModelForCausalLM.from_pretrained(out).config.use_cache is True  # the first model's value


def test_a_missing_model_folder_is_named_before_anything_is_loaded(zoo, tmp_path, paloma_cli):
    with pytest.raises(PalomaError, match=r"^/nonexistent/ckpt: no such model folder$"):
        merge(make_recipe([zoo["a"], "/nonexistent/ckpt"]), tmp_path / "x")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PalomaError, match=r"empty: not a transformers model folder \(no config\.json\)"):
        merge(make_recipe([zoo["a"], tmp_path / "empty"]), tmp_path / "y")
    proc = paloma_cli("merge", zoo["a"], "./missing/ckpt", "--output", tmp_path / "z")
    assert proc.returncode == 2
    assert proc.stderr.strip() == "paloma merge: error: ./missing/ckpt: no such model folder"
    assert "Repo id" not in proc.stderr and not (tmp_path / "z").exists()
