"""The host side of the scoring loop: windows gathered with arrays, batches built ahead on a thread, same numbers.

- `Documents.gather` returns exactly the slices of each document's explicit sequence S (prefix, the tokenizer's
  own tokens where the protocol adds them, the document's tokens), for every window the plan makes;
- the prefetching iterator keeps order, raises a producer's error where it happened, and stops its thread
  when the consumer stops;
- the whole loop (prefetched batches, several chunks, flushes mid-chunk) writes the records that scoring each
  window on its own gives.
"""

from __future__ import annotations

import dataclasses
import json
import threading

import numpy as np
import pytest
import torch
from fixtures import pydoc_paragraphs
from transformers import AutoModelForCausalLM

from paloma.eval.data import Document, index_documents
from paloma.eval.loop import LoopOptions, prefetched, score_chunks
from paloma.eval.plan import plan_chunks, plan_windows
from paloma.eval.records import DocumentRecord, RecordWriter, load_records
from paloma.eval.scoring import Scorer, make_batch
from paloma.eval.sequences import Documents
from paloma.eval.tokens import TokenStore

L = 16


def token_store(documents_ids: list[list[int]]) -> TokenStore:
    offsets = np.zeros(len(documents_ids) + 1, dtype=np.int64)
    np.cumsum([len(d) for d in documents_ids], out=offsets[1:])
    flat = np.array([t for d in documents_ids for t in d], dtype=np.int32)
    return TokenStore(flat, offsets)


def explicit_sequence(ids: list[int], prefix: int | None, before: tuple, after: tuple) -> list[int]:
    """S as lm-evaluation-harness builds it: its prefix, then the encoding with special tokens, which it skips
    for a text that already begins with the prefix token."""
    head = [] if prefix is None else [prefix]
    if (before or after) and not (prefix is not None and ids and ids[0] == prefix):
        return head + list(before) + ids + list(after)
    return head + ids


def some_documents(rng: np.random.Generator) -> list[list[int]]:
    docs = [list(rng.integers(3, 50, size=n)) for n in (0, 1, 2, 15, 16, 17, 31, 33, 70, 5)]
    docs.append([2, *rng.integers(3, 50, size=20)])  # begins with the BOS token itself
    docs.append([])
    return [[int(t) for t in d] for d in docs]


def index_of(count: int):
    return index_documents(Document("c4_en", "c4_en", f"d{i}", "x") for i in range(count))


@pytest.mark.parametrize(
    ("prefix", "before", "after"),
    [(0, (), ()), (None, (), ()), (2, (2,), ()), (2, (2,), (0,)), (0, (5, 6), (7,)), (None, (2,), ())],
)
def test_gathered_windows_are_slices_of_the_explicit_sequence(prefix, before, after):
    ids = some_documents(np.random.default_rng(0))
    documents = Documents(index_of(len(ids)), token_store(ids), prefix, before, after)
    sequences = [explicit_sequence(d, prefix, before, after) for d in ids]
    assert documents.sequence_lengths.tolist() == [len(s) for s in sequences]
    windows = plan_windows(documents.sequence_lengths, L)
    order = np.random.default_rng(1).permutation(len(windows))[:7]  # a batch mixing documents and lengths
    rows = documents.gather(windows.doc[order], windows.start[order], windows.length[order], pad_id=-1)
    for row, j in zip(rows, order, strict=True):
        start, length = int(windows.start[j]), int(windows.length[j])
        expected = sequences[windows.doc[j]][start : start + length + 1]
        assert row[: length + 1].tolist() == expected
        assert (row[length + 1 :] == -1).all()


def test_batch_targets_are_the_scored_tail_of_each_window():
    sequence = np.arange(100, 140)
    batch = make_batch([(0, sequence[:17], 16), (1, sequence[5:12], 3), (2, sequence[:9], 1)], pad_id=-1)
    assert batch.input_ids.shape == (3, 16) and batch.attention_mask is not None
    assert batch.input_ids[1, 6:].eq(-1).all() and batch.input_ids[2, 8:].eq(-1).all()
    assert batch.targets.tolist() == [*range(101, 117), 109, 110, 111, 108]
    assert batch.owners.tolist() == [0] * 16 + [1, 1, 1, 2]
    assert (batch.input_ids[batch.rows, batch.positions] + 1).tolist() == batch.targets.tolist()


def test_prefetched_keeps_order_and_raises_where_the_producer_failed():
    assert list(prefetched(iter(range(50)), depth=2)) == list(range(50))

    def failing():
        yield from range(3)
        raise ValueError("broken at 3")

    seen = []
    with pytest.raises(ValueError, match="broken at 3"):
        for item in prefetched(failing()):
            seen.append(item)
    assert seen == [0, 1, 2]


def test_prefetched_stops_its_thread_when_the_consumer_stops():
    def endless():
        n = 0
        while True:
            yield n
            n += 1

    with pytest.raises(RuntimeError):
        for item in prefetched(endless(), depth=2):
            if item == 5:
                raise RuntimeError("the consumer fails")
    assert not any(t.name == "paloma-prefetch" for t in threading.enumerate())


def test_the_loop_writes_the_records_that_scoring_each_window_alone_gives(tiny, tmp_path):
    tokenizer = tiny["tokenizer"]
    texts = [*pydoc_paragraphs()[300:340], "", "x"]
    ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    index = index_documents(Document("c4_en", "c4_en", f"d{i}", t) for i, t in enumerate(texts))
    documents = Documents(index, token_store(ids), prefix_id=2, added_before=(2,))
    model = AutoModelForCausalLM.from_pretrained(tiny["models"]["llama"], dtype=torch.float64).eval()
    scorer = Scorer(model, "cpu")
    chunks = plan_chunks(documents.sequence_lengths, np.arange(len(ids)), L, 3 * L, chunk_documents=7)
    options = LoopOptions(flush_seconds=1e-9, dtype="float64", progress=False, pad_id=1)
    with RecordWriter(tmp_path, 0, 1, 1) as writer:
        stats = score_chunks(scorer, documents, chunks, writer, options, total_tokens=0)
    records = {r["id"]: r for r in load_records(tmp_path)}
    assert len(records) == len(texts) and stats["scored"] == sum(r["tokens"] for r in records.values())
    windows = plan_windows(documents.sequence_lengths, L)
    for i, own in enumerate(ids):
        sequence = np.array(explicit_sequence(own, 2, (2,), ()))
        expected = 0.0
        for j in np.flatnonzero(windows.doc == i):
            start, length, scored = (int(windows.start[j]), int(windows.length[j]), int(windows.scored[j]))
            expected += float(scorer.nll(make_batch([(0, sequence[start : start + length + 1], scored)])).sum())
        record = records[f"d{i}"]
        assert record["tokens"] == len(sequence) - 1
        assert record["nll_sum"] == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("key", ["c4_en/c4_en/1", 'quote " and \\ backslash', "ctrl \x00\x1f\n\t", "é 東京 🙂 \u2028"])
@pytest.mark.parametrize("nll", [0.0, 1e-300, 12345.678901234567, 3.0e17])
def test_a_record_line_is_the_json_of_the_record(key, nll):
    record = DocumentRecord(key=key, id=key[::-1], source="s", domain=key, tokens=3, bytes=10**12, chars=0, words=7,
                            nll_sum=nll)  # fmt: skip
    assert record.json_line() == json.dumps(dataclasses.asdict(record), ensure_ascii=False) + "\n"
    assert json.loads(record.json_line()) == dataclasses.asdict(record)
