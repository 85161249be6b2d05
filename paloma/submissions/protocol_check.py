"""Whether a submission was evaluated with the benchmark's protocol (paloma.md §2).

The benchmark fixes: one prefix token (the tokenizer's EOS, as the reference did), a maximum length of 2048,
no special tokens added by the tokenizer, and disjoint windows whose last partial window is right-aligned.
These are compared field by field against the protocol that `paloma eval` records in results.json. A release
other than Paloma (e.g. the demo) may override fields in its registry file (`release_protocol`).
"""

from __future__ import annotations

from collections.abc import Mapping

# The benchmark's reference protocol: the fields a submission's protocol must match exactly.
BENCHMARK_PROTOCOL: dict[str, object] = {
    "prefix": "eos",
    "max_length": 2048,
    "add_special_tokens": False,
    "window": "disjoint-right-aligned",
}


def release_protocol(raw_registry: Mapping[str, object], origin: str = "<registry>") -> dict[str, object]:
    """The protocol a release is evaluated with: the benchmark's, with the overrides its registry declares.

    A release's registry file may hold `"protocol": {"max_length": 128}` (e.g. the built-in demo release,
    whose tiny models are trained on short sequences); Paloma's own registry declares none.
    """
    overrides = raw_registry.get("protocol") or {}
    if not isinstance(overrides, Mapping) or set(overrides) - set(BENCHMARK_PROTOCOL):
        known = ", ".join(BENCHMARK_PROTOCOL)
        raise ValueError(f"{origin}: 'protocol' may only set {known}")
    return {**BENCHMARK_PROTOCOL, **overrides}


def protocol_differences(
    protocol: Mapping[str, object], expected: Mapping[str, object] = BENCHMARK_PROTOCOL
) -> list[str]:
    """One message per field that differs from the benchmark's protocol; empty when it matches."""
    return [
        f"protocol.{key} is {protocol.get(key)!r}, the benchmark's is {value!r}"
        for key, value in expected.items()
        if protocol.get(key) != value or type(protocol.get(key)) is not type(value)
    ]
