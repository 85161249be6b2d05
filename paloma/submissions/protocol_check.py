"""Whether a submission was evaluated with the benchmark's protocol (paloma.md §2), checked, not trusted.

The benchmark fixes: one prefix token (the tokenizer's EOS, as the reference did), a maximum length of 2048,
no special tokens added by the tokenizer, and disjoint windows whose last partial window is right-aligned.
These are compared field by field against the protocol that `paloma eval` records in results.json. A release
other than Paloma (e.g. the demo) may set fields differently in its registry file (`Registry.protocol`).

The recorded fingerprint is recomputed from the recorded fields with `paloma.protocol` (a forged fingerprint,
`split: test` on a validation run or an unknown dtype cannot pass), and, where the release has a manifest,
the data revision and the fingerprint must be the release's own. Two presets are accepted: the reference
("paloma": EOS prefix) is the leaderboard's comparability group; "lm-eval-harness" (BOS prefix where the
tokenizer has one) is valid but shown apart and never ranked with the reference.
"""

from __future__ import annotations

from collections.abc import Mapping

from paloma.protocol import FINGERPRINT_FIELDS, MODEL_MAX_LENGTH, PRESETS, Protocol

# The dtypes `paloma eval --dtype` accepts (paloma.model.DTYPES); anything else (int4, ...) is not our protocol.
ALLOWED_DTYPES = ("float32", "float64", "bfloat16", "float16")
COMPARED_FIELDS = ("prefix", "max_length", "add_special_tokens", "window")


def _preset_protocol(preset: str) -> dict[str, object]:
    reference = Protocol(**PRESETS[preset])
    return {key: getattr(reference, key) for key in COMPARED_FIELDS}


# The benchmark's reference protocol (the evaluator's "paloma" preset): the fields a submission must match.
BENCHMARK_PROTOCOL: dict[str, object] = _preset_protocol("paloma")


def protocol_differences(protocol: Mapping[str, object], release: Mapping[str, object] | None = None) -> list[str]:
    """One message per field that differs from the protocol's preset (as the release sets it); empty when it matches.

    `release` holds the fields a release's registry sets differently (the demo suite's window length).
    """
    preset = protocol.get("preset", "paloma")
    if preset not in PRESETS:
        return [f"protocol.preset is {preset!r}, not one of the benchmark's presets ({', '.join(PRESETS)})"]
    expected_protocol = {**_preset_protocol(str(preset)), **(release or {})}
    problems = []
    if expected_protocol.get("max_length") == MODEL_MAX_LENGTH:  # the model's own L: any, recorded as such
        del expected_protocol["max_length"]
        length = protocol.get("max_length")
        if not isinstance(length, int) or isinstance(length, bool) or length < 1:
            problems.append(f"protocol.max_length is {length!r}, not a window length")
    if protocol.get("subset") is not None:  # numbers of a sample of the documents (paloma eval's subset options)
        problems.append(f"protocol.subset is {protocol['subset']!r}: the benchmark scores every document")
    return problems + [
        f"protocol.{key} is {protocol.get(key)!r}, the benchmark's is {expected!r}"
        for key, expected in expected_protocol.items()
        if protocol.get(key) != expected or type(protocol.get(key)) is not type(expected)
    ]


def recomputed_fingerprint(protocol: Mapping[str, object]) -> str | None:
    """The comparability fingerprint of the recorded fields, as `paloma eval` computes it (None if unusable)."""
    try:
        return Protocol(**{key: protocol.get(key) for key in FINGERPRINT_FIELDS}).fingerprint()
    except (TypeError, ValueError):
        return None


def integrity_problems(protocol: Mapping[str, object], split: str) -> list[str]:
    """The recorded protocol agrees with itself and with the submission: fingerprint, split, dtype."""
    problems = []
    if protocol.get("split") != split:
        problems.append(f"protocol.split is {protocol.get('split')!r} but benchmark.split is {split!r}")
    if protocol.get("dtype") not in ALLOWED_DTYPES:
        problems.append(f"protocol.dtype is {protocol.get('dtype')!r}, not one of {', '.join(ALLOWED_DTYPES)}")
    fingerprint = recomputed_fingerprint(protocol)
    if fingerprint != protocol.get("fingerprint"):
        problems.append(
            f"protocol.fingerprint is {protocol.get('fingerprint')!r} but the recorded fields give {fingerprint!r} "
            f"(fields: {', '.join(FINGERPRINT_FIELDS)})"
        )
    return problems
