"""Planning: every window in exactly one batch, batches within the token budget, work split by tokens."""

import numpy as np

from paloma.data import Document
from paloma.evaluate import PlannedDocument, assign_to_processes, make_schedule, schedule_forward_tokens
from paloma.windows import document_windows


def planned(lengths, max_length=16):
    return [
        PlannedDocument(f"k{i}", Document("s", "d", str(i), ""), np.zeros(n + 1), document_windows(n + 1, max_length))
        for i, n in enumerate(lengths)
    ]


def test_every_window_is_in_exactly_one_batch_within_the_budget():
    rng = np.random.default_rng(0)
    docs = planned(list(rng.integers(0, 80, size=300)))
    schedule = make_schedule(docs, batch_tokens=64)
    scheduled = sorted((i, w) for batch in schedule for i, w in batch)
    assert scheduled == sorted((i, w) for i, d in enumerate(docs) for w in d.windows)
    for batch in schedule:
        width = batch[0][1].length
        assert all(w.length <= width for _, w in batch)
        assert len(batch) * width <= 64 or len(batch) == 1


def test_windows_are_sorted_longest_first_and_padding_is_small():
    rng = np.random.default_rng(1)
    docs = planned(list(rng.integers(1, 16, size=2000)))
    schedule = make_schedule(docs, batch_tokens=256)
    widths = [batch[0][1].length for batch in schedule]
    assert widths == sorted(widths, reverse=True)
    scored = sum(d.scored_tokens for d in docs)
    assert scored / schedule_forward_tokens(schedule) > 0.97


def test_long_documents_finish_window_after_window():
    docs = planned([100, 3, 100])
    order = [i for batch in make_schedule(docs, batch_tokens=32) for i, _ in batch]
    first_of_doc2 = order.index(2)
    assert order[:first_of_doc2] == [0] * len(docs[0].windows)  # document 0 completes before 2 starts


def test_processes_get_balanced_token_shares():
    costs = [100, 90, 80, 10, 10, 10, 5, 5]
    shares = assign_to_processes(costs, 2)
    assert sorted(i for share in shares for i in share) == list(range(len(costs)))
    loads = [sum(costs[i] for i in share) for share in shares]
    assert max(loads) == 170  # the best split: {90, 80} against {100, 10, 10, 10, 5, 5}
    assert assign_to_processes(costs, 2) == shares  # deterministic: every process computes the same split
