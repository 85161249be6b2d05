"""Whether a submission was evaluated with the benchmark's protocol (paloma.md §2).

The benchmark fixes: one prefix token (the tokenizer's EOS, as the reference did), a maximum length of 2048,
no special tokens added by the tokenizer, and disjoint windows whose last partial window is right-aligned.
These are compared field by field against the protocol that `paloma eval` records in results.json. A release
other than Paloma (e.g. the demo) may set fields differently in its registry file (`Registry.protocol`).
"""

from __future__ import annotations

from collections.abc import Mapping

from paloma.protocol import PRESETS, Protocol

# The benchmark's reference protocol (the evaluator's "paloma" preset): the fields a submission must match.
_REFERENCE = Protocol(**PRESETS["paloma"])
BENCHMARK_PROTOCOL: dict[str, object] = {
    "prefix": _REFERENCE.prefix,
    "max_length": _REFERENCE.max_length,
    "add_special_tokens": _REFERENCE.add_special_tokens,
    "window": _REFERENCE.window,
}


def protocol_differences(protocol: Mapping[str, object], release: Mapping[str, object] | None = None) -> list[str]:
    """One message per field that differs from the benchmark's protocol; empty when it matches.

    `release` holds the fields a release's registry sets differently (the demo suite's window length).
    """
    expected_protocol = {**BENCHMARK_PROTOCOL, **(release or {})}
    return [
        f"protocol.{key} is {protocol.get(key)!r}, the benchmark's is {expected!r}"
        for key, expected in expected_protocol.items()
        if protocol.get(key) != expected or type(protocol.get(key)) is not type(expected)
    ]
