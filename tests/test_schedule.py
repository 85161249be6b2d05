"""Planning: windows as arrays equal the pure function, every window in one batch within the budget, work split
by tokens, and planning memory a small constant per document."""

import numpy as np
import pytest

from paloma.eval.plan import assign_to_processes, make_schedule, plan_chunks, plan_windows
from paloma.eval.windows import Window, document_windows


def windows_of(lengths, max_length=16):
    return plan_windows(np.asarray(lengths) + 1, max_length)  # +1: the prefix token


@pytest.mark.parametrize("max_length", [1, 2, 3, 8, 16])
def test_vectorised_windows_equal_the_pure_function(max_length):
    lengths = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 100]
    windows = plan_windows(np.array(lengths), max_length)
    got = [[] for _ in lengths]
    for j in range(len(windows)):
        got[windows.doc[j]].append(Window(int(windows.start[j]), int(windows.length[j]), int(windows.scored[j])))
    assert got == [document_windows(n, max_length) for n in lengths]


def test_every_window_is_in_exactly_one_batch_within_the_budget():
    rng = np.random.default_rng(0)
    windows = windows_of(rng.integers(0, 80, size=300))
    schedule = make_schedule(windows, batch_tokens=64)
    scheduled = np.sort(np.concatenate(list(schedule.batches())))
    assert scheduled.tolist() == list(range(len(windows)))
    for b, batch in enumerate(schedule.batches()):
        width = schedule.widths[b]
        assert (windows.length[batch] <= width).all() and windows.length[batch[0]] == width
        assert len(batch) * width <= 64 or len(batch) == 1


def test_windows_are_sorted_longest_first_and_padding_is_small():
    rng = np.random.default_rng(1)
    windows = windows_of(rng.integers(1, 16, size=2000))
    schedule = make_schedule(windows, batch_tokens=256)
    assert schedule.widths.tolist() == sorted(schedule.widths.tolist(), reverse=True)
    assert windows.scored.sum() / schedule.forward_tokens() > 0.97


def test_a_half_full_batch_is_closed_rather_than_padded():
    windows = windows_of([16, 16, 16, 16, 5, 5])  # budget of 8 rows of 16: 4 full rows, then much shorter ones
    schedule = make_schedule(windows, batch_tokens=128)
    assert [len(b) for b in schedule.batches()] == [4, 2]


def test_long_documents_finish_window_after_window():
    windows = windows_of([100, 3, 100])
    order = windows.doc[np.concatenate(list(make_schedule(windows, batch_tokens=32).batches()))].tolist()
    first_of_doc2 = order.index(2)
    assert order[:first_of_doc2] == [0] * int((windows.doc == 0).sum())  # document 0 completes before 2 starts


def test_processes_get_balanced_token_shares():
    costs = np.array([100, 90, 80, 10, 10, 10, 5, 5])
    shares = assign_to_processes(costs, 2)
    assert sorted(i for share in shares for i in share.tolist()) == list(range(len(costs)))
    loads = [int(costs[share].sum()) for share in shares]
    assert max(loads) == 170  # the best split: {90, 80} against {100, 10, 10, 10, 5, 5}
    again = assign_to_processes(costs, 2)
    assert all((a == b).all() for a, b in zip(again, shares, strict=True))  # every process computes the same


def _traced_planning_peak(n_docs: int) -> int:
    """Peak memory traced while planning every chunk of a synthetic corpus for one of 8 processes."""
    import tracemalloc

    rng = np.random.default_rng(0)
    lengths = np.minimum(rng.lognormal(3.0, 1.0, n_docs).astype(np.int64), 20_000) + 1  # ~31 tokens a document
    todo = np.arange(n_docs)
    tracemalloc.start()
    forward = 0
    for chunk in plan_chunks(lengths, todo, 2048, 8192, world=8, rank=3, chunk_documents=32_768):
        forward += chunk.schedule.forward_tokens()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert forward > 0
    return peak


def test_planning_memory_grows_sub_linearly_in_documents():
    """Planning holds arrays of one chunk at a time, never a Python object per document: its peak traced memory
    grows sub-linearly in documents (a Python object per window or document, as planning once held, costs
    hundreds of bytes each, and grows linearly)."""
    sizes = [20_000, 80_000, 320_000]
    peaks = [_traced_planning_peak(n) for n in sizes]
    assert peaks[1] < 4 * peaks[0] and peaks[2] < 4 * peaks[1]  # 4× the documents, less than 4× the memory
    assert peaks[2] < 1.5 * peaks[1]  # past one chunk, more documents cost (almost) nothing more
    assert peaks[2] / sizes[2] < 50  # bytes per document


def test_the_automatic_budget_accounts_for_the_vocabulary_and_the_model():
    from types import SimpleNamespace

    from paloma.eval.plan import auto_batch_tokens

    def budget(vocab: int, hidden: int = 4096, full_logits: bool = True) -> int:
        config = SimpleNamespace(hidden_size=hidden, intermediate_size=4 * hidden, num_attention_heads=32,
                                 vocab_size=vocab)  # fmt: skip
        return auto_batch_tokens(config, 2048, 40 * 2**30, 2, full_logits)

    assert budget(256_000) < budget(50_000)  # a model's own head: logits of every kept position
    assert budget(256_000, full_logits=False) == budget(50_000, full_logits=False)  # chunked head: bounded
    assert budget(50_000, hidden=8192) < budget(50_000, hidden=4096)
    assert budget(50_000) % 2048 == 0 and budget(10**9) == 2048  # whole windows, never less than one
    assert auto_batch_tokens(SimpleNamespace(), 512, None, 4, False) == 8192  # a CPU: a few windows
