"""Model options and lean forwards: sharded/offloaded, adapted and other-headed models give exact numbers.

- `--model-args device_map=…` with disk offload (accelerate) scores the same numbers as the model in one piece;
- `--peft` applies an adapter: the same numbers as the adapter merged into the weights;
- heads that post-process logits (Gemma-2's soft-capping) go through the model's own forward with only the
  scored positions' logits kept, and still equal the naive full computation;
- no forward builds a KV cache.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from fixtures import pydoc_paragraphs, write_release
from lm_eval.utils import get_rolling_token_windows
from transformers import AutoModelForCausalLM

from paloma.cli import main
from paloma.eval.data import DataSpec
from paloma.eval.evaluate import EvalConfig, evaluate
from paloma.eval.records import load_records

L = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    paragraphs = pydoc_paragraphs()
    texts = [paragraphs[5], " ".join(paragraphs[20:23]), "x", "", paragraphs[50][:60]]
    return texts, write_release(tmp_path_factory.mktemp("data"), {("c4_en", None): texts})


def run(model, data_dir, output, **options) -> dict:
    config = EvalConfig(model=str(model), data=DataSpec(path=str(data_dir)), output=output, max_length=L,
                        dtype=options.pop("dtype", "float64"), cache_dir=None, progress=False,
                        batch_tokens=options.pop("batch_tokens", 3 * L), **options)  # fmt: skip
    return evaluate(config)


def nll_by_id(output) -> dict[str, float]:
    return {r["id"]: r["nll_sum"] for r in load_records(output)}


def assert_same(a: dict, b: dict, rel: float = 1e-10) -> None:
    assert a.keys() == b.keys()
    for key, value in a.items():
        assert b[key] == pytest.approx(value, rel=rel, abs=1e-12), key


def test_a_model_offloaded_to_disk_scores_the_same_numbers(tiny, data, tmp_path):
    model = tiny["models"]["llama"]
    _, data_dir = data
    whole = run(model, data_dir, tmp_path / "whole")
    device_map = {"model.embed_tokens": "cpu", "model.rotary_emb": "cpu", "model.layers.0": "cpu",
                  "model.layers.1": "disk", "model.norm": "cpu", "lm_head": "disk"}  # fmt: skip
    args = {"device_map": device_map, "offload_folder": str(tmp_path / "offload")}
    offloaded = run(model, data_dir, tmp_path / "offloaded", model_args=args)
    assert offloaded["model"]["device_map"]["lm_head"] == "disk"  # weights really were offloaded
    assert_same(nll_by_id(tmp_path / "whole"), nll_by_id(tmp_path / "offloaded"))
    assert offloaded["protocol"]["run_fingerprint"] == whole["protocol"]["run_fingerprint"]  # placement only


def test_model_args_from_the_command_line_reach_from_pretrained(tiny, data, tmp_path):
    model = tiny["models"]["llama"]
    _, data_dir = data
    common = ["eval", "--model", str(model), "--data", str(data_dir), "--max-length", str(L), "--dtype", "float64",
              "--no-progress", "--no-cache"]  # fmt: skip
    assert main([*common, "--output", str(tmp_path / "sdpa"), "--model-args", "attn_implementation=sdpa"]) == 0
    args = 'device_map={"": "cpu"},attn_implementation=eager'
    assert main([*common, "--output", str(tmp_path / "eager"), "--model-args", args]) == 0
    # eager attention takes its softmax in float32 even in a float64 model: equal to float32 precision
    assert_same(nll_by_id(tmp_path / "sdpa"), nll_by_id(tmp_path / "eager"), rel=1e-6)
    run_json = json.loads((tmp_path / "eager" / "run.json").read_text())
    assert "+args:" in run_json["protocol"]["model_revision"]  # an option that may change numbers is recorded


def test_a_peft_adapter_scores_as_its_merged_weights(tiny, data, tmp_path):
    peft = pytest.importorskip("peft")
    model_dir = tiny["models"]["llama"]
    _, data_dir = data
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
    lora = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    adapted = peft.get_peft_model(base, lora)
    adapted.save_pretrained(tmp_path / "adapter")
    merged = adapted.merge_and_unload()
    merged.save_pretrained(tmp_path / "merged")
    tiny["tokenizer"].save_pretrained(tmp_path / "merged")
    with_adapter = run(model_dir, data_dir, tmp_path / "with-adapter", peft=str(tmp_path / "adapter"))
    run(tmp_path / "merged", data_dir, tmp_path / "from-merged")
    plain = run(model_dir, data_dir, tmp_path / "plain")
    assert_same(nll_by_id(tmp_path / "from-merged"), nll_by_id(tmp_path / "with-adapter"), rel=1e-9)
    assert with_adapter["suite"]["nll_sum"] != pytest.approx(plain["suite"]["nll_sum"], rel=1e-6)  # it did apply
    assert "+peft:" in with_adapter["protocol"]["model_revision"]


@pytest.fixture(scope="module")
def softcapped(tiny, tmp_path_factory):
    """A tiny Gemma-2: soft-capped logits, so not a plain head."""
    from transformers import Gemma2Config, Gemma2ForCausalLM

    config = Gemma2Config(
        vocab_size=len(tiny["tokenizer"]), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, head_dim=8, max_position_embeddings=64,
        final_logit_softcapping=5.0, attn_logit_softcapping=None, sliding_window=64, query_pre_attn_scalar=8,
        eos_token_id=0, pad_token_id=1, bos_token_id=2,
    )  # fmt: skip
    torch.manual_seed(0)
    model = Gemma2ForCausalLM(config)
    folder = tmp_path_factory.mktemp("gemma2")
    model.save_pretrained(folder)
    tiny["tokenizer"].save_pretrained(folder)
    return folder


def test_a_soft_capped_head_keeps_only_scored_logits_and_equals_the_naive_computation(tiny, softcapped, data,
                                                                                     tmp_path):  # fmt: skip
    from paloma.eval.scoring import Scorer, make_batch, uses_plain_head

    texts, data_dir = data
    model = AutoModelForCausalLM.from_pretrained(softcapped, dtype=torch.float64).eval()
    assert not uses_plain_head(model)
    run(softcapped, data_dir, tmp_path / "out")
    records = nll_by_id(tmp_path / "out")
    tokenizer = tiny["tokenizer"]
    for i, text in enumerate(texts):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        expected = 0.0
        for inputs, targets in get_rolling_token_windows(ids, 0, L, context_len=1):
            with torch.no_grad():
                logp = model(torch.tensor([inputs])).logits[0].double().log_softmax(-1)
            expected -= sum(logp[len(inputs) - len(targets) + k, t].item() for k, t in enumerate(targets))
        assert records[f"c4_en-{i}"] == pytest.approx(expected, rel=1e-9, abs=1e-12)

    seen = []
    model.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs), with_kwargs=True)
    sequence = torch.arange(3, 3 + L + 1).numpy()
    Scorer(model, "cpu").nll(make_batch([(0, sequence, 2), (1, sequence, L)]))  # one row scores 2 of its L
    (kwargs,) = seen
    assert kwargs["use_cache"] is False
    assert kwargs["logits_to_keep"].tolist() == list(range(L))  # the union over rows, not [rows, L, vocab] twice
    seen.clear()
    Scorer(model, "cpu").nll(make_batch([(0, sequence, 2)]))
    assert seen[0]["logits_to_keep"].tolist() == [L - 2, L - 1]  # a right-aligned window keeps two rows


def test_plain_heads_run_the_base_model_without_a_cache(tiny):
    from paloma.eval.scoring import Scorer, make_batch

    model = AutoModelForCausalLM.from_pretrained(tiny["models"]["llama"]).eval()
    seen = []
    model.model.register_forward_pre_hook(lambda _, args, kwargs: seen.append(kwargs), with_kwargs=True)
    Scorer(model, "cpu").nll(make_batch([(0, torch.arange(3, 20).numpy(), 4)]))
    assert seen and all(kwargs["use_cache"] is False for kwargs in seen)


def test_a_non_finite_nll_stops_the_run_naming_the_document(tiny, data, tmp_path, capsys):
    """Why 5: a NaN used to be written to results and printed as `nan`, exit 0."""
    _, data_dir = data
    broken = tmp_path / "broken"
    model = AutoModelForCausalLM.from_pretrained(tiny["models"]["llama"])
    with torch.no_grad():
        model.lm_head.weight[5] = math.inf  # token 5's logit is infinite wherever it is computed
    model.save_pretrained(broken)
    tiny["tokenizer"].save_pretrained(broken)
    capsys.readouterr()
    code = main(["eval", "--model", str(broken), "--data", str(data_dir), "--max-length", str(L), "--dtype",
                 "float32", "--output", str(tmp_path / "o"), "--no-progress", "--no-cache"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "c4_en/c4_en/c4_en-" in err[0] and "--dtype" in err[0] and "--resume" in err[0]
    assert not (tmp_path / "o" / "results.json").exists()
    for record in load_records(tmp_path / "o"):
        assert math.isfinite(record["nll_sum"])


def test_quantization_without_its_package_is_refused_before_loading(tiny, data, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is not None:
        pytest.skip("bitsandbytes is installed here")
    _, data_dir = data
    code = main(["eval", "--model", str(tiny["models"]["llama"]), "--data", str(data_dir), "--output",
                 str(tmp_path / "o"), "--model-args", "load_in_4bit=true"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "bitsandbytes" in err[0]
    assert not (tmp_path / "o").exists()


def test_a_batch_that_runs_out_of_memory_is_scored_in_halves_with_the_same_numbers(tiny, data, tmp_path,
                                                                                  monkeypatch):  # fmt: skip
    """The device's out-of-memory error is simulated for batches of more than two rows (no GPU here)."""
    from paloma.eval.scoring import Scorer

    _, data_dir = data
    whole = run(tiny["models"]["llama"], data_dir, tmp_path / "whole", batch_tokens=8 * L)
    real = Scorer.nll

    def small_batches_only(self, batch):
        if batch.input_ids.shape[0] > 2:
            raise torch.OutOfMemoryError("simulated")
        return real(self, batch)

    monkeypatch.setattr(Scorer, "nll", small_batches_only)
    split = run(tiny["models"]["llama"], data_dir, tmp_path / "split", batch_tokens=8 * L)
    assert split["speed"]["oom_splits"] > 0 and whole["speed"]["oom_splits"] == 0
    assert_same(nll_by_id(tmp_path / "whole"), nll_by_id(tmp_path / "split"))
