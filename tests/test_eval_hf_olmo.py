"""Legacy OLMo checkpoints (the released Paloma baselines' format) are scored natively, exactly as OLMo scores them.

The checkpoint is built with AI2's own `ai2-olmo` package (its `olmo.model.OLMo`, the model `hf_olmo` wraps),
every bias non-zero, and written in the released layout (`config.json` with `model_type: hf_olmo`,
`pytorch_model.bin` with `model.transformer.…` keys, a tokenizer whose class is `OLMoTokenizerFast`). The
reference is OLMo's own forward over lm-evaluation-harness's windows.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from fixtures import pydoc_paragraphs, write_release
from lm_eval.utils import get_rolling_token_windows

from paloma.cli import main
from paloma.eval.data import DataSpec
from paloma.eval.evaluate import EvalConfig, evaluate
from paloma.eval.records import load_records

olmo_config = pytest.importorskip("olmo.config", reason="ai2-olmo is installed by the README's test line")
L = 16


@pytest.fixture(scope="module")
def checkpoint(tiny, tmp_path_factory):
    """(folder, OLMo model in float64) of a tiny hf_olmo checkpoint with non-zero biases everywhere."""
    from hf_olmo.configuration_olmo import OLMoConfig
    from olmo.model import OLMo

    tokenizer = tiny["tokenizer"]
    config = olmo_config.ModelConfig(
        d_model=32, n_heads=4, n_layers=2, mlp_ratio=4, include_bias=True, layer_norm_type="default",
        layer_norm_with_affine=False, rope=True, vocab_size=len(tokenizer), embedding_size=384,
        max_sequence_length=64, weight_tying=False, init_device="cpu", flash_attention=False,
        eos_token_id=0, pad_token_id=1, rope_full_precision=False,
    )  # fmt: skip
    torch.manual_seed(0)
    model = OLMo(config, init_params=True)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0, 0.3 if p.dim() > 1 else 0.1)
            assert name.endswith("weight") or (p != 0).all()
    assert sum(name.endswith("bias") for name, _ in model.named_parameters()) == 2 * 4 + 1
    folder = tmp_path_factory.mktemp("hf-olmo") / "paloma-1b-baseline-tiny"
    OLMoConfig(**config.asdict()).save_pretrained(folder)
    torch.save({f"model.{k}": v for k, v in model.state_dict().items()}, folder / "pytorch_model.bin")
    tokenizer.save_pretrained(folder)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(
        json.dumps({**tokenizer_config, "tokenizer_class": "OLMoTokenizerFast"})
    )
    assert json.loads((folder / "config.json").read_text())["model_type"] == "hf_olmo"
    return folder, model.double().eval()


@pytest.fixture(scope="module")
def documents(tmp_path_factory):
    paragraphs = pydoc_paragraphs()
    texts = [paragraphs[3], " ".join(paragraphs[10:14]), "x", paragraphs[30][:40]]
    return texts, write_release(tmp_path_factory.mktemp("data"), {("c4_en", None): texts})


def olmo_document_nll(model, tokenizer, text: str) -> float:
    """OLMo's own forward over lm-evaluation-harness's windows, EOS prefix, float64 log-softmax."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    total = 0.0
    for inputs, targets in get_rolling_token_windows(ids, 0, L, context_len=1):
        with torch.no_grad():
            logp = model(torch.tensor([inputs])).logits[0].double().log_softmax(-1)
        first = len(inputs) - len(targets)
        total -= sum(logp[first + k, t].item() for k, t in enumerate(targets))
    return total


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PALOMA_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def run(model: str, data, output, **options) -> dict:
    config = EvalConfig(model=str(model), data=DataSpec(path=str(data)), output=output, max_length=L,
                        dtype="float64", cache_dir=None, progress=False, **options)  # fmt: skip
    return evaluate(config)


def test_nll_equals_olmos_own_forward_without_remote_code(tiny, checkpoint, documents, cache, tmp_path):
    folder, model = checkpoint
    texts, data = documents
    results = run(folder, data, tmp_path / "out")
    records = {r["id"]: r for r in load_records(tmp_path / "out")}
    for i, text in enumerate(texts):
        expected = olmo_document_nll(model, tiny["tokenizer"], text)
        assert records[f"c4_en-{i}"]["nll_sum"] == pytest.approx(expected, rel=1e-6)
    assert results["model"]["converted_from"] == "hf_olmo"
    assert results["protocol"]["model_revision"].startswith("hf_olmo:")
    assert len(list((cache / "converted").iterdir())) == 1  # converted once, into the cache


def test_trust_remote_code_works_the_same_way(checkpoint, documents, cache, tmp_path):
    folder, _ = checkpoint
    _, data = documents
    plain = run(folder, data, tmp_path / "plain")
    trusted = run(folder, data, tmp_path / "trusted", trust_remote_code=True)
    assert trusted["suite"]["nll_sum"] == pytest.approx(plain["suite"]["nll_sum"], rel=1e-12)
    assert trusted["protocol"]["run_fingerprint"] == plain["protocol"]["run_fingerprint"]


def test_paloma_convert_writes_a_standard_model(tiny, checkpoint, documents, cache, tmp_path, capsys):
    from transformers import AutoModelForCausalLM

    folder, model = checkpoint
    texts, data = documents
    assert main(["convert", "hf-olmo", str(folder), str(tmp_path / "converted")]) == 0
    converted = AutoModelForCausalLM.from_pretrained(tmp_path / "converted", dtype=torch.float64).eval()
    ids = torch.tensor([[0, *tiny["tokenizer"](texts[0], add_special_tokens=False)["input_ids"][: L - 1]]])
    with torch.no_grad():
        ours, theirs = converted(ids).logits, model(ids).logits
    # transformers computes RoPE angles in float32 even in a float64 model: agreement to ~1e-5, not 1e-15
    assert torch.allclose(ours, theirs, rtol=1e-5, atol=1e-4)
    again = run(tmp_path / "converted", data, tmp_path / "out")
    direct = run(folder, data, tmp_path / "direct")
    assert again["suite"]["nll_sum"] == pytest.approx(direct["suite"]["nll_sum"], rel=1e-12)
    assert main(["convert", "hf-olmo", str(folder), str(tmp_path / "converted")]) == 2  # never over a model
    assert "not empty" in capsys.readouterr().err


def test_a_hub_id_is_converted_from_the_hub_cache(checkpoint, documents, cache, tmp_path, monkeypatch):
    """`--model allenai/paloma-1b-baseline-…` goes through huggingface_hub; a local hub cache stands in."""
    folder, _ = checkpoint
    _, data = documents
    commit = "89abcdef0123456789abcdef0123456789abcdef"
    repo = tmp_path / "hub" / "models--allenai--paloma-1b-baseline-tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    from_hub = run("allenai/paloma-1b-baseline-tiny", data, tmp_path / "hub-out")
    local = run(folder, data, tmp_path / "local")
    assert from_hub["suite"]["nll_sum"] == pytest.approx(local["suite"]["nll_sum"], rel=1e-12)
    assert from_hub["model"]["converted_from"] == "hf_olmo"


def test_an_unsupported_olmo_setting_is_refused_naming_it(checkpoint, documents, cache, tmp_path, capsys):
    folder, _ = checkpoint
    _, data = documents
    altered = tmp_path / "alibi"
    shutil.copytree(folder, altered)
    config = json.loads((altered / "config.json").read_text())
    (altered / "config.json").write_text(json.dumps({**config, "alibi": True, "rope": False}))
    code = main(["eval", "--model", str(altered), "--data", str(data), "--output", str(tmp_path / "o"),
                 "--max-length", str(L), "--no-progress", "--no-cache"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "alibi" in err[0]
    assert not (tmp_path / "o").exists()
