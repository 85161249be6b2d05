"""`paloma eval` end to end on tiny real models: exact numbers, every token once, any batching, any order."""

from __future__ import annotations

import gzip
import json
import math
import random
from pathlib import Path

import pytest
import torch
from fixtures import NON_ASCII, pydoc_paragraphs, write_release
from lm_eval.utils import get_rolling_token_windows
from transformers import AutoModelForCausalLM, AutoTokenizer

from paloma.eval.data import DataSpec
from paloma.eval.evaluate import EvalConfig, evaluate, reaggregate
from paloma.eval.records import load_records

L = 16


def text_with_exactly(tokenizer, n_tokens: int, source_text: str) -> str:
    """A prefix of `source_text` that tokenizes to exactly n_tokens tokens."""
    ids = tokenizer(source_text, add_special_tokens=False)["input_ids"]
    for k in range(n_tokens, len(ids)):
        text = tokenizer.decode(ids[:k])
        if len(tokenizer(text, add_special_tokens=False)["input_ids"]) == n_tokens:
            return text
    raise AssertionError("no prefix with that many tokens")


@pytest.fixture(scope="module")
def corpus(tiny):
    """Documents of many lengths: short, exactly L and L+1 tokens, several windows long, empty, non-ASCII."""
    tokenizer = tiny["tokenizer"]
    paragraphs = pydoc_paragraphs()
    long_text = " ".join(paragraphs[100:110])
    return {
        ("c4_en", None): paragraphs[:12],
        ("redpajama", "arxiv"): [
            text_with_exactly(tokenizer, L, long_text),
            text_with_exactly(tokenizer, L + 1, long_text),
            text_with_exactly(tokenizer, 2 * L, long_text),
            text_with_exactly(tokenizer, 2 * L + 1, long_text),
            "",
            "x",
            " ".join(paragraphs[200:203]),
        ],
        ("redpajama", "books"): paragraphs[40:50],
        ("dolma-v1_5", "wiki"): NON_ASCII,
    }


@pytest.fixture(scope="module")
def release(tmp_path_factory, corpus):
    return write_release(tmp_path_factory.mktemp("release"), corpus)


def evaluate_folder(model: Path, data: Path, output: Path | None = None, **options) -> dict:
    spec_options = {k: options.pop(k) for k in ("sources", "domains", "limit", "seed", "split") if k in options}
    config = EvalConfig(
        model=str(model),
        data=DataSpec(path=str(data), **spec_options),
        output=output,
        max_length=options.pop("max_length", L),
        cache_dir=options.pop("cache_dir", None),
        progress=False,
        **options,
    )
    return evaluate(config)


def naive_document_nll(model, tokenizer, text: str, prefix_id: int) -> tuple[float, int]:
    """Independent reference: lm-evaluation-harness's windows, one float64 forward per window, full
    log-softmax, summing the scored targets."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    total = 0.0
    for inputs, targets in get_rolling_token_windows(ids, prefix_id, L, context_len=1):
        with torch.no_grad():
            logp = model(torch.tensor([inputs])).logits[0].double().log_softmax(-1)
        first = len(inputs) - len(targets)
        total -= sum(logp[first + k, t].item() for k, t in enumerate(targets))
    return total, len(ids)


def records_by_key(output: Path) -> dict[str, dict]:
    return {r["key"]: r for r in load_records(output)}


@pytest.mark.parametrize("kind", ["gpt_neox", "llama", "olmo"])
def test_matches_naive_float64_computation(tiny, release, corpus, tmp_path, kind):
    model_dir = tiny["models"][kind]
    evaluate_folder(model_dir, release, tmp_path / "out", dtype="float64", batch_tokens=3 * L)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    records = records_by_key(tmp_path / "out")
    checked = 0
    for (source, domain), texts in corpus.items():
        for i, text in enumerate(texts):
            record = records[f"{source}/{domain or source}/{domain or source}-{i}"]
            expected, n_tokens = naive_document_nll(model, tokenizer, text, prefix_id=tokenizer.eos_token_id)
            assert record["tokens"] == n_tokens  # every token scored exactly once
            assert record["nll_sum"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
            checked += 1
    assert checked == sum(len(t) for t in corpus.values())


def test_float32_run_is_close_to_float64_reference(tiny, release, tmp_path):
    evaluate_folder(tiny["models"]["llama"], release, tmp_path / "f32", batch_tokens=4 * L)
    evaluate_folder(tiny["models"]["llama"], release, tmp_path / "f64", dtype="float64", batch_tokens=4 * L)
    f32, f64 = records_by_key(tmp_path / "f32"), records_by_key(tmp_path / "f64")
    for key, record in f64.items():
        assert f32[key]["nll_sum"] == pytest.approx(record["nll_sum"], rel=1e-4, abs=1e-6)


def test_first_token_is_conditioned_on_the_prefix_alone(tiny, tmp_path):
    """A one-token document's NLL is −log p(t1 | prefix) from a forward pass over the prefix alone."""
    tokenizer, model_dir = tiny["tokenizer"], tiny["models"]["gpt_neox"]
    text = "x"
    (token,) = tokenizer(text, add_special_tokens=False)["input_ids"]
    data = write_release(tmp_path / "data", {("c4_en", None): [text]})
    for prefix, prefix_id in (("eos", 0), ("bos", 2)):
        evaluate_folder(model_dir, data, tmp_path / prefix, dtype="float64", prefix=prefix)
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float64)
        expected = -model(torch.tensor([[prefix_id]])).logits[0, 0].log_softmax(-1)[token].item()
        (record,) = load_records(tmp_path / prefix)
        assert record["tokens"] == 1 and record["nll_sum"] == pytest.approx(expected, rel=1e-9)


def test_without_prefix_the_first_token_is_not_scored(tiny, release, tmp_path):
    with_prefix = records_by_key(run_and_return(tiny, release, tmp_path / "eos"))
    without = records_by_key(run_and_return(tiny, release, tmp_path / "none", prefix="none"))
    for key, record in with_prefix.items():
        assert without[key]["tokens"] == max(record["tokens"] - 1, 0)


def run_and_return(tiny, release, output, **options) -> Path:
    evaluate_folder(tiny["models"]["llama"], release, output, **options)
    return output


@pytest.mark.parametrize("batch_tokens", [L, 2 * L + 3, 40 * L])
def test_same_numbers_for_any_batch_size(tiny, release, tmp_path, batch_tokens):
    reference = records_by_key(run_and_return(tiny, release, tmp_path / "ref", dtype="float64", batch_tokens=L))
    other = records_by_key(
        run_and_return(tiny, release, tmp_path / "other", dtype="float64", batch_tokens=batch_tokens)
    )
    assert other.keys() == reference.keys()
    for key, record in reference.items():
        assert other[key]["nll_sum"] == pytest.approx(record["nll_sum"], rel=1e-10, abs=1e-12)


def test_same_numbers_for_any_document_order(tiny, corpus, tmp_path):
    shuffled = {}
    rng = random.Random(3)
    for key, texts in corpus.items():
        order = list(enumerate(texts))
        rng.shuffle(order)
        shuffled[key] = order
    data_a = write_release(tmp_path / "a", corpus)
    data_b = tmp_path / "b"
    for (source, domain), order in shuffled.items():  # same ids, other order in the file
        folder = data_b / source / "test"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"test_{domain}.jsonl.gz" if domain else "test-00000000.jsonl.gz"
        with gzip.open(folder / name, "wt") as handle:
            for i, text in order:
                row = {"text": text, "id": f"{domain or source}-{i}", **({"subdomain": domain} if domain else {})}
                handle.write(json.dumps(row) + "\n")
    a = records_by_key(run_and_return(tiny, data_a, tmp_path / "out-a", dtype="float64"))
    b = records_by_key(run_and_return(tiny, data_b, tmp_path / "out-b", dtype="float64"))
    assert a.keys() == b.keys()
    for key in a:
        assert b[key]["nll_sum"] == pytest.approx(a[key]["nll_sum"], rel=1e-10, abs=1e-12)


def test_bits_per_byte_on_non_ascii_text(tiny, release, tmp_path):
    results = evaluate_folder(tiny["models"]["olmo"], release, tmp_path / "out")
    wiki = results["sources"]["dolma-v1_5"]["domains"]["wiki"]
    n_bytes = sum(len(t.encode("utf-8")) for t in NON_ASCII)
    assert wiki["bytes"] == n_bytes > wiki["chars"] == sum(len(t) for t in NON_ASCII)
    nll = sum(r["nll_sum"] for r in load_records(tmp_path / "out") if r["domain"] == "wiki")
    assert wiki["bpb"] == pytest.approx(nll / (n_bytes * math.log(2)), rel=1e-12)
    assert 2 ** wiki["bpb"] == pytest.approx(wiki["byte_ppl"], rel=1e-9)


def test_results_files_hold_every_domain_and_the_protocol(tiny, release, corpus, tmp_path):
    results = evaluate_folder(tiny["models"]["llama"], release, tmp_path / "out", bootstrap=50)
    on_disk = json.loads((tmp_path / "out" / "results.json").read_text())
    assert on_disk["suite"]["macro_ppl"] == pytest.approx(results["suite"]["macro_ppl"])
    for (source, domain), texts in corpus.items():
        entry = on_disk["sources"][source]["domains"][domain or source]
        assert entry["documents"] == len(texts)
        assert {"nll_sum", "tokens", "bytes", "ppl", "bpb", "ci"} <= entry.keys()
    for key in ("macro_ppl", "macro_bpb", "micro_ppl", "micro_bpb"):
        assert key in on_disk["sources"]["redpajama"]
    assert on_disk["sources"]["redpajama"]["domains"]["arxiv"]["empty_documents"] == 1
    protocol = on_disk["protocol"]
    assert protocol["prefix"] == "eos" and protocol["prefix_token_id"] == 0 and protocol["max_length"] == L
    assert protocol["add_special_tokens"] is False and protocol["split"] == "test" and protocol["fingerprint"]
    assert {"provenance", "speed", "model", "data"} <= on_disk.keys()
    assert on_disk["data"]["release"] == "paloma"  # the registry's release: what a submission is checked against
    assert on_disk["model"]["parameters"] > on_disk["model"]["non_embedding_parameters"] > 0
    assert 0 < on_disk["speed"]["padding_efficiency"] <= 1
    csv_lines = (tmp_path / "out" / "domains.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + len(corpus)


def test_finished_run_re_aggregates_without_the_model(tiny, release, tmp_path):
    results = evaluate_folder(tiny["models"]["llama"], release, tmp_path / "out")
    again = reaggregate(tmp_path / "out")
    assert again["sources"] == json.loads(json.dumps(results["sources"]))
    assert again["suite"]["ordinary_ppl"] == pytest.approx(results["suite"]["ordinary_ppl"])


def test_truncated_portion_is_never_scored(tiny, tmp_path):
    text = "The quick brown fox jumps over the lazy dog."
    plain = write_release(tmp_path / "plain", {("c4_en", None): [text]})
    cut = tmp_path / "cut" / "c4_en" / "test"
    cut.mkdir(parents=True)
    row = {"text": text, "id": "c4_en-0", "metadata": {"truncated_portion": " And much more text. " * 50}}
    with gzip.open(cut / "test-00000000.jsonl.gz", "wt") as handle:
        handle.write(json.dumps(row) + "\n")
    a = evaluate_folder(tiny["models"]["llama"], plain, tmp_path / "a")["sources"]["c4_en"]
    b = evaluate_folder(tiny["models"]["llama"], tmp_path / "cut", tmp_path / "b")["sources"]["c4_en"]
    assert (a["tokens"], a["bytes"], a["nll_sum"]) == (b["tokens"], b["bytes"], pytest.approx(b["nll_sum"]))


def test_unknown_domains_are_evaluated_and_flagged_and_missing_ones_reported(tiny, tmp_path):
    data = write_release(tmp_path / "d", {("redpajama", "arxiv"): ["a b c"], ("my_source", None): ["d e f"]})
    results = evaluate_folder(tiny["models"]["llama"], data, tmp_path / "out")
    assert results["unknown_sources"] == ["my_source"]
    assert results["sources"]["my_source"]["domains"]["my_source"]["tokens"] > 0
    assert "books" in results["sources"]["redpajama"]["missing_domains"]
    assert "c4_en" in results["missing_sources"]


def test_limit_takes_a_seeded_sample_per_domain(tiny, tmp_path):
    texts = [f"Document number {i} talks about topic {i % 7}." for i in range(40)]
    data = write_release(tmp_path / "d", {("redpajama", "arxiv"): texts, ("redpajama", "books"): texts[:5]})
    plan = evaluate_folder(tiny["models"]["llama"], data, dry_run=True, limit=10)
    assert plan["documents"] == 15  # 10 of arxiv, all 5 of books
    evaluate_folder(tiny["models"]["llama"], data, tmp_path / "a", limit=10)
    evaluate_folder(tiny["models"]["llama"], data, tmp_path / "b", limit=10)
    ids_a = sorted(r["id"] for r in load_records(tmp_path / "a") if r["domain"] == "arxiv")
    ids_b = sorted(r["id"] for r in load_records(tmp_path / "b") if r["domain"] == "arxiv")
    assert ids_a == ids_b and len(ids_a) == 10
    assert ids_a != sorted(f"arxiv-{i}" for i in range(10))  # not the first ten
    evaluate_folder(tiny["models"]["llama"], data, tmp_path / "c", limit=10, seed=99)
    assert sorted(r["id"] for r in load_records(tmp_path / "c") if r["domain"] == "arxiv") != ids_a


def test_sources_and_domains_select_with_globs(tiny, release, tmp_path):
    plan = evaluate_folder(tiny["models"]["llama"], release, dry_run=True, sources=["red*"], domains=["ar*"])
    assert list(plan["sources"]) == ["redpajama"] and plan["sources"]["redpajama"]["domains"] == 1


def test_dry_run_needs_no_weights(tiny, release, corpus, tmp_path):
    folder = tmp_path / "no-weights"
    folder.mkdir()
    for path in tiny["models"]["llama"].iterdir():
        if path.suffix != ".safetensors":
            (folder / path.name).write_bytes(path.read_bytes())
    plan = evaluate_folder(folder, release, dry_run=True, batch_tokens=4 * L)
    assert plan["documents"] == sum(len(t) for t in corpus.values()) and plan["empty_documents"] == 1
    assert plan["forward_tokens"] >= plan["scored_tokens"] > 0
    assert plan["padding_efficiency"] == pytest.approx(plan["scored_tokens"] / plan["forward_tokens"])
    assert plan["protocol"]["max_length"] == L


def test_generic_jsonl_and_parquet_with_named_fields(tiny, tmp_path):
    import pandas as pd

    rows = [{"body": f"Sentence {i} about {'cats' if i % 2 else 'dogs'}.", "topic": ["dogs", "cats"][i % 2]}
            for i in range(6)]  # fmt: skip
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    pd.DataFrame(rows).to_parquet(tmp_path / "data.parquet")
    outs = []
    for name in ("data.jsonl", "data.parquet"):
        out = tmp_path / f"out-{name}"
        config = EvalConfig(
            model=str(tiny["models"]["llama"]),
            data=DataSpec(path=str(tmp_path / name), text_field="body", domain_field="topic", default_source="pets"),
            output=out, max_length=L, cache_dir=None, progress=False, registry="none",
        )  # fmt: skip
        outs.append(evaluate(config))
    assert set(outs[0]["sources"]["pets"]["domains"]) == {"cats", "dogs"}
    assert outs[0]["sources"]["pets"]["nll_sum"] == pytest.approx(outs[1]["sources"]["pets"]["nll_sum"])


def test_token_cache_is_reused(tiny, release, tmp_path):
    cache = tmp_path / "cache"
    first = evaluate_folder(tiny["models"]["llama"], release, tmp_path / "a", cache_dir=cache)
    (entry,) = [p.parent for p in cache.glob("*/meta.json")]
    written = (entry / "ids.bin").stat().st_mtime_ns
    second = evaluate_folder(tiny["models"]["llama"], release, tmp_path / "b", cache_dir=cache)
    assert [p.parent for p in cache.glob("*/meta.json")] == [entry]
    assert (entry / "ids.bin").stat().st_mtime_ns == written  # read back, not tokenized again
    assert second["suite"]["nll_sum"] == pytest.approx(first["suite"]["nll_sum"])
    third = evaluate_folder(tiny["models"]["llama"], release, tmp_path / "c", cache_dir=cache, limit=2)
    assert len(list(cache.glob("*/meta.json"))) == 2  # another selection is another entry
    assert third["suite"]["documents"] < first["suite"]["documents"]


def test_lm_eval_harness_preset_matches_lm_evaluation_harness(tiny, release, corpus, tmp_path):
    """The preset reproduces lm-evaluation-harness's own loglikelihood_rolling (BOS prefix here)."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    model_dir = tiny["models"]["llama"]
    evaluate_folder(model_dir, release, tmp_path / "out", preset="lm-eval-harness", dtype="float64")
    harness = HFLM(pretrained=str(model_dir), max_length=L, batch_size=4, device="cpu", dtype="float64")
    texts = corpus[("redpajama", "books")]
    requests = [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)]
    theirs = harness.loglikelihood_rolling(requests, disable_tqdm=True)
    ours = records_by_key(tmp_path / "out")
    for i, loglik in enumerate(theirs):
        assert ours[f"redpajama/books/books-{i}"]["nll_sum"] == pytest.approx(-loglik, rel=1e-6)


def test_token_statistics_sum_to_each_domains_totals(tiny, release, tmp_path):
    from paloma.eval.token_stats import load_token_stats

    results = evaluate_folder(tiny["models"]["llama"], release, tmp_path / "out", token_stats=True, dtype="float64")
    stats = load_token_stats(tmp_path / "out" / "token_stats.npz")
    assert stats.vocab_size == len(tiny["tokenizer"])
    for source, entry in results["sources"].items():
        for domain, m in entry["domains"].items():
            count, nll = stats.domains[(source, domain)]
            assert count.sum() == m["tokens"]
            assert nll.sum() == pytest.approx(m["nll_sum"], rel=1e-9)


def test_a_merge_recipe_evaluates_directly_and_a_self_average_equals_the_model(tiny, release, tmp_path):
    model_dir = tiny["models"]["llama"]
    recipe = tmp_path / "self.yaml"
    recipe.write_text(f"models:\n  - {{path: {model_dir}, weight: 0.5}}\n  - {{path: {model_dir}, weight: 0.5}}\n")
    merged = evaluate_folder(recipe, release, tmp_path / "merged", dtype="float64")
    plain = evaluate_folder(model_dir, release, tmp_path / "plain", dtype="float64")
    assert merged["protocol"]["model_revision"].startswith("merge:")
    assert merged["protocol"]["fingerprint"] == plain["protocol"]["fingerprint"]
    for source, entry in plain["sources"].items():
        for domain, m in entry["domains"].items():
            assert merged["sources"][source]["domains"][domain]["nll_sum"] == pytest.approx(m["nll_sum"], rel=1e-12)
