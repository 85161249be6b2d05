"""Token windows of one document: a pure function of (sequence length, max length).

A document's token sequence S is the prefix token (if any) followed by its tokens t_1..t_N. Every
position of S after the first is a target, scored exactly once:

- window 1: input S[0:min(L, M)], scoring every one of its targets;
- each further full window scores the next L targets, conditioned on the one token before them;
- the last partial window (r < L targets left) is right-aligned: its input is the L tokens ending just
  before the last target, and only its last r targets are scored.

M = len(S) - 1 is the number of targets (N with a prefix, N - 1 without one). A window is described by
(start, length, scored): input S[start:start+length], targets S[start+1:start+length+1], of which
the last `scored` count.
"""

from __future__ import annotations

from typing import NamedTuple


class Window(NamedTuple):
    start: int
    length: int
    scored: int


def document_windows(sequence_length: int, max_length: int) -> list[Window]:
    """Windows covering every target of a sequence of `sequence_length` tokens (prefix included)."""
    if max_length < 1:
        raise ValueError("max_length must be at least 1")
    targets = sequence_length - 1
    if targets <= 0:
        return []
    first = min(max_length, targets)
    windows = [Window(0, first, first)]
    done = first
    while done < targets:
        scored = min(max_length, targets - done)
        end = done + scored  # index in S of the last target of this window
        start = end - max_length  # input is the L tokens ending just before S[end]
        windows.append(Window(start, max_length, scored))
        done = end
    return windows
