"""`paloma.Evaluator`: a model in memory scored exactly as `paloma eval` scores it saved.

- a live model equals `paloma eval` on the same weights saved, per domain (tokens, bytes, NLL sum), in float64,
  and both equal a naive computation (every window through the full log-softmax);
- a deterministic subset (documents or tokens per domain, seeded) equals `paloma eval` with the same options
  and is part of the protocol's fingerprint;
- the model's training mode is restored, no gradient is built, an enclosing autocast is not inherited, and
  the dtype scored in is the model's own and recorded;
- a plain `nn.Module` (the baselines `Transformer`) goes through `ModelAdapter`, by logits or by hidden states
  and its output layer, with the numbers of its transformers export.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from fixtures import pydoc_paragraphs, write_release
from transformers import AutoModelForCausalLM

from paloma import Evaluator, ModelAdapter
from paloma.cli import main
from paloma.errors import PalomaError

L = 16


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    p = pydoc_paragraphs()
    documents = {("c4_en", None): p[:14], ("m2d2_s2orc", "math"): p[14:22], ("m2d2_s2orc", "cs"): [*p[22:30], ""]}
    return write_release(tmp_path_factory.mktemp("data"), documents)


@pytest.fixture(scope="module")
def llama(tiny):
    return AutoModelForCausalLM.from_pretrained(tiny["models"]["llama"], dtype=torch.float64)


def cli(tiny, data, output, *options) -> dict:
    code = main(["eval", "--model", str(tiny["models"]["llama"]), "--data", str(data), "--max-length", str(L),
                 "--dtype", "float64", "--registry", "none", "--output", str(output), "--no-progress", "--no-cache",
                 *map(str, options)])  # fmt: skip
    assert code == 0
    return json.loads((output / "results.json").read_text())


def per_domain(results: dict) -> dict:
    return {
        (source, domain): (m["documents"], m["tokens"], m["bytes"], m["nll_sum"])
        for source, entry in results["sources"].items()
        for domain, m in entry["domains"].items()
    }


def naive_nll(model, ids: list[int], prefix: int) -> float:
    """−Σ ln p over a document, window by window (disjoint, the last right-aligned), full log-softmax."""
    seq, total, done = torch.tensor([prefix, *ids]), 0.0, 0
    while done < len(ids):
        end = min(done + L, len(ids))
        start = max(0, end - L)
        logp = torch.log_softmax(model(seq[start:end][None]).logits[0].double(), -1)
        picked = logp.gather(1, seq[start + 1 : end + 1, None])[:, 0]
        total -= float(picked[-(end - done) :].sum())
        done = end
    return total


def test_a_live_model_equals_paloma_eval_on_it_saved_per_domain(tiny, data, llama, tmp_path):
    evaluator = Evaluator(data, tiny["models"]["llama"], max_length=L, registry="none", cache_dir=None)
    live = evaluator.evaluate(llama)
    saved = cli(tiny, data, tmp_path / "eval")
    assert per_domain(live) == per_domain(saved)  # float64, the same plan and loop: equal, not close
    assert live["suite"] == saved["suite"]
    assert live["protocol"]["fingerprint"] == saved["protocol"]["fingerprint"]
    assert live["protocol"]["dtype"] == "float64" and live["model"]["in_memory"]


def test_the_numbers_equal_a_naive_computation(tiny, data, llama):
    tokenizer = tiny["tokenizer"]
    results = Evaluator(data, tokenizer, max_length=L, registry="none", cache_dir=None).evaluate(llama)
    from paloma.eval.data import DataSpec, iter_split_documents

    expected: dict = {}
    with torch.no_grad():
        for doc in iter_split_documents(DataSpec(path=str(data))):
            ids = tokenizer.encode(doc.text, add_special_tokens=False)
            tokens, nll = expected.get((doc.source, doc.domain), (0, 0.0))
            nll += naive_nll(llama, ids, tokenizer.eos_token_id)
            expected[(doc.source, doc.domain)] = (tokens + len(ids), nll)
    got = {key: (value[1], value[3]) for key, value in per_domain(results).items()}
    assert got.keys() == expected.keys()
    for key, (tokens, nll) in expected.items():
        assert got[key][0] == tokens
        assert got[key][1] == pytest.approx(nll, rel=1e-12)


@pytest.mark.parametrize(
    ("option", "value"), [("max_documents_per_domain", 3), ("max_tokens_per_domain", 120)], ids=["documents", "tokens"]
)
def test_a_subset_equals_paloma_eval_with_the_same_options(tiny, data, llama, tmp_path, option, value):
    evaluator = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None, seed=7,
                          **{option: value})  # fmt: skip
    live = evaluator.evaluate(llama)
    saved = cli(tiny, data, tmp_path / "eval", f"--{option.replace('_', '-')}", value, "--seed", 7)
    assert per_domain(live) == per_domain(saved)
    assert live["protocol"]["subset"] == saved["protocol"]["subset"] == f"{option}={value},seed=7"
    everything = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None)
    assert everything.protocol.fingerprint() != evaluator.protocol.fingerprint()  # not comparable to the full set
    assert len(evaluator) < len(everything)


def test_a_subsets_numbers_are_no_submission(tiny, data):
    from paloma.submissions.protocol_check import protocol_differences

    evaluator = Evaluator(data, tiny["tokenizer"], registry="none", cache_dir=None, max_documents_per_domain=2)
    problems = protocol_differences(evaluator.protocol.to_dict())
    assert any("protocol.subset is 'max_documents_per_domain=2,seed=1234'" in p for p in problems)


def test_the_token_subset_keeps_whole_documents_within_the_cap(tiny, data):
    cap = 120
    evaluator = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None,
                          max_tokens_per_domain=cap)  # fmt: skip
    full = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None)
    index, lengths = evaluator.documents.index, evaluator.documents.tokens.lengths()
    for number in set(index.domain.tolist()):
        members = index.domain == number
        assert lengths[members].sum() <= cap or members.sum() == 1
    whole = {bytes(d) for d in full.documents.index.digest}
    assert {bytes(d) for d in index.digest} <= whole  # whole documents of the data, unchanged


def test_the_subset_is_the_same_whatever_else_is_selected(tiny, data):
    both = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None,
                     max_tokens_per_domain=100, seed=3)  # fmt: skip
    one = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None,
                    max_tokens_per_domain=100, seed=3, sources=["c4_en"])  # fmt: skip

    def c4(evaluator):
        index = evaluator.documents.index
        return {index.key(i) for i in range(len(index)) if index.source_domain(i)[0] == "c4_en"}

    assert c4(both) == c4(one)


def test_training_mode_is_restored_and_no_gradient_is_built(tiny, data, llama):
    evaluator = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None)
    reference = evaluator.evaluate(llama)
    llama.train()
    try:
        again = evaluator.evaluate(llama)
        assert llama.training and all(m.training for m in llama.modules())
    finally:
        llama.eval()
    assert per_domain(again) == per_domain(reference)  # dropout was off while scoring
    assert all(p.grad is None for p in llama.parameters())


def test_an_enclosing_autocast_is_not_inherited(tiny, data, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny["models"]["llama"])  # float32, as most training runs
    evaluator = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None)
    plain = evaluator.evaluate(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = evaluator.evaluate(model)
    assert per_domain(inside) == per_domain(plain)
    assert inside["protocol"]["dtype"] == "float32"


def test_a_dtype_asked_for_must_be_the_models(tiny, data, llama):
    evaluator = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None, dtype="bfloat16")
    with pytest.raises(PalomaError, match="parameters are float64"):
        evaluator.evaluate(llama)


def test_a_preset_that_needs_the_models_length_asks_for_max_length(tiny, data):
    with pytest.raises(PalomaError, match="maximum length"):
        Evaluator(data, tiny["tokenizer"], preset="lm-eval-harness", registry="none", cache_dir=None)


def test_scalars_are_flat_per_source_and_suite(tiny, data, llama):
    results = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None).evaluate(llama)
    scalars = results.scalars(prefix="eval/paloma")
    assert set(scalars) == {f"eval/paloma/{s}/{m}" for s in ("c4_en", "m2d2_s2orc", "suite") for m in ("bpb", "ppl")}
    math_ = results["sources"]["m2d2_s2orc"]["domains"]["math"]
    cs = results["sources"]["m2d2_s2orc"]["domains"]["cs"]
    assert scalars["eval/paloma/m2d2_s2orc/bpb"] == pytest.approx((math_["bpb"] + cs["bpb"]) / 2, rel=1e-15)
    assert math_["bpb"] == pytest.approx(math_["nll_sum"] / math_["bytes"] / math.log(2), rel=1e-15)
    assert results.scalars(domains=True)["paloma/m2d2_s2orc/cs/bpb"] == cs["bpb"]


def test_a_plain_module_through_the_adapter_scores_as_its_transformers_export(tiny, data, tmp_path):
    from paloma.eval.olmo import write_transformers
    from paloma_baselines.config import load_config
    from paloma_baselines.model import Transformer

    tokenizer = tiny["tokenizer"]
    overrides = ["model.d_model=32", "model.n_layers=2", "model.n_heads=4", f"model.vocab_size={len(tokenizer)}",
                 f"model.eos_token_id={tokenizer.eos_token_id}"]  # fmt: skip
    torch.manual_seed(0)
    model = Transformer(load_config("tiny", overrides).model)
    write_transformers(model.state_dict(), model.config, tmp_path / "export", tokenizer)
    model = model.double()
    evaluator = Evaluator(data, tokenizer, max_length=L, registry="none", cache_dir=None)
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "export", dtype=torch.float64)
    exported = per_domain(evaluator.evaluate(hf))
    by_logits = per_domain(evaluator.evaluate(model))  # a plain module: its forward gives the logits
    by_hidden = per_domain(evaluator.evaluate(ModelAdapter(model, hidden_states=model.final_hidden,
                                                           output_layer=model.transformer.ff_out)))  # fmt: skip
    for key, (docs, tokens, n_bytes, nll) in exported.items():
        assert by_hidden[key][3] == pytest.approx(by_logits[key][3], rel=1e-12)
        for other in (by_logits, by_hidden):
            assert other[key][:3] == (docs, tokens, n_bytes)
            # the two implementations differ in float32 details (rotary tables): equal to ~1e-9, not bitwise
            assert other[key][3] == pytest.approx(nll, rel=1e-7)


@pytest.mark.parametrize("mode", ["plain", "ddp", "fsdp"])
def test_every_rank_returns_the_results_of_one_process(tiny, data, llama, tmp_path, mode):
    """2 gloo processes on CPU: each scores its share, sums are reduced; FSDP2 ranks run equal forwards."""
    import os
    import subprocess
    import sys

    from conftest import REPO_ROOT

    batch_tokens = L  # a window a batch: the two shares differ in how many batches they hold
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "baselines")]),
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--standalone",
               str(REPO_ROOT / "tests" / "evaluator_ranks.py"), str(tiny["models"]["llama"]), str(data), str(tmp_path),
               mode, str(batch_tokens)]  # fmt: skip
    subprocess.run(command, check=True, timeout=300, env=env, capture_output=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["results"] == ranks[1]["results"]  # every rank: the same results, bit for bit
    assert all(r["training"] for r in ranks)  # the mode each rank's model was in is restored
    one = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None, batch_tokens=batch_tokens)
    alone = per_domain(one.evaluate(llama))
    shared = per_domain(ranks[0]["results"])
    assert shared.keys() == alone.keys()
    for key, (docs, tokens, n_bytes, nll) in alone.items():
        assert tuple(shared[key][:3]) == (docs, tokens, n_bytes)
        # other batch neighbours, other padding widths: float64 sums equal to the last bits
        assert shared[key][3] == pytest.approx(nll, rel=1e-12)
    if mode == "fsdp":
        assert ranks[0]["batches"] != ranks[1]["batches"]  # unequal shares: the padding forwards were needed


def test_a_compiled_model_is_scored_through_its_original_module(tiny, data, llama):
    """The evaluator's batch shapes vary: a compiled model would recompile for them, so `_orig_mod` is scored."""
    from torch._dynamo.utils import counters

    evaluator = Evaluator(data, tiny["tokenizer"], max_length=L, registry="none", cache_dir=None)
    counters.clear()
    compiled = per_domain(evaluator.evaluate(torch.compile(llama, backend="eager")))
    assert not counters["stats"]["calls_captured"]  # nothing was traced or compiled
    assert compiled == per_domain(evaluator.evaluate(llama))
