"""Windowing: every target scored exactly once, the first on the prefix alone, the last window right-aligned."""

import pytest
from lm_eval.utils import get_rolling_token_windows

from paloma.eval.windows import Window, document_windows


def scored_positions(windows):
    """Indices (into the prefixed sequence) of the targets each window scores."""
    out = []
    for w in windows:
        last_target = w.start + w.length
        out.extend(range(last_target - w.scored + 1, last_target + 1))
    return out


@pytest.mark.parametrize("max_length", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("n_tokens", [0, 1, 2, 4, 5, 6, 7, 9, 10, 11, 16, 17, 40])
def test_every_target_is_scored_exactly_once(n_tokens, max_length):
    windows = document_windows(n_tokens + 1, max_length)  # +1: the prefix token
    assert scored_positions(windows) == list(range(1, n_tokens + 1))
    for w in windows:
        assert 1 <= w.scored <= w.length <= max_length
        assert w.start >= 0 and w.start + w.length <= n_tokens  # input never reaches past the last target


def test_first_token_is_conditioned_on_the_prefix_alone():
    first = document_windows(10 + 1, 4)[0]
    assert first == Window(start=0, length=4, scored=4)  # input S[0:4] = prefix, t1, t2, t3; targets t1..t4


def test_document_of_exactly_L_tokens_is_one_window():
    assert document_windows(8 + 1, 8) == [Window(0, 8, 8)]


def test_document_of_L_plus_one_tokens_has_a_right_aligned_second_window():
    # targets t1..t9 (S indices 1..9); the second window's input is the 8 tokens before t9: S[1:9] = t1..t8
    assert document_windows(9 + 1, 8) == [Window(0, 8, 8), Window(1, 8, 1)]


def test_last_partial_window_is_right_aligned():
    windows = document_windows(21 + 1, 8)  # 21 targets: 8 + 8 + 5
    assert windows == [Window(0, 8, 8), Window(8, 8, 8), Window(13, 8, 5)]
    last = windows[-1]
    assert last.start + last.length == 21  # the input ends just before the last target (S[21] = t21)


def test_without_prefix_the_first_token_is_not_scored():
    assert scored_positions(document_windows(5, 3)) == [1, 2, 3, 4]  # S = t1..t5; t1 has no context


def test_empty_document_has_no_windows():
    assert document_windows(1, 8) == [] and document_windows(0, 8) == []


@pytest.mark.parametrize("n_tokens", [1, 3, 7, 8, 9, 15, 16, 17, 33])
def test_same_windows_as_lm_evaluation_harness(n_tokens):
    """lm-evaluation-harness's rolling windows (an independent implementation) score the same targets
    with the same inputs."""
    prefix, tokens, max_length = -1, list(range(100, 100 + n_tokens)), 8
    sequence = [prefix, *tokens]
    ours = [
        (sequence[w.start : w.start + w.length], sequence[w.start + w.length - w.scored + 1 : w.start + w.length + 1])
        for w in document_windows(len(sequence), max_length)
    ]
    theirs = list(get_rolling_token_windows(tokens, prefix, max_length, context_len=1))
    assert ours == [(list(i), list(t)) for i, t in theirs]
