"""A release other than Paloma may set protocol fields differently (the demo's L = 128), and the checks follow."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from paloma.registry import parse_registry
from paloma.submissions.protocol_check import BENCHMARK_PROTOCOL, protocol_differences
from paloma.submissions.schema import Decontamination

RAW = {
    "release": "mini",
    "protocol": {"max_length": 128},
    "sources": [{"name": "a", "group": "standard", "domains": ["a"]}],
}


def test_registry_reads_and_writes_its_protocol():
    registry = parse_registry(RAW)
    assert registry.protocol == {"max_length": 128}
    assert parse_registry(registry.to_dict()).protocol == {"max_length": 128}
    assert parse_registry({**RAW, "protocol": None}).protocol == {}
    assert "protocol" not in parse_registry({k: v for k, v in RAW.items() if k != "protocol"}).to_dict()


def test_protocol_is_checked_against_the_release():
    demo_run = {**BENCHMARK_PROTOCOL, "max_length": 128}
    assert protocol_differences(demo_run) == ["protocol.max_length is 128, the benchmark's is 2048"]
    assert protocol_differences(demo_run, {"max_length": 128}) == []
    assert protocol_differences(BENCHMARK_PROTOCOL, {"max_length": 128}) == [
        "protocol.max_length is 2048, the benchmark's is 128"
    ]
    assert protocol_differences({**demo_run, "prefix": "bos"}, {"max_length": 128}) == [
        "protocol.prefix is 'bos', the benchmark's is 'eos'"
    ]


def test_paloma_decon_checksums_are_accepted_as_evidence():
    checksum = "blake2b-256:" + "0f" * 32
    assert Decontamination(met=True, index_checksum=checksum, report="decon-report.json").index_checksum == checksum
    with pytest.raises(ValidationError):
        Decontamination(met=True, index_checksum="blake2b-256:xyz", report="decon-report.json")


# ---- release manifests ------------------------------------------------------------------------------------


def _independent_counts(root, split: str) -> dict:
    """Documents and UTF-8 bytes per (source, domain), read straight from the .jsonl.gz files."""
    import gzip
    import json

    counts: dict = {}
    for path in sorted(root.glob(f"*/{split}/*.jsonl.gz")):
        source = path.parent.parent.name
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                c = counts.setdefault((source, row.get("subdomain") or source), [0, 0])
                c[0] += 1
                c[1] += len(row["text"].encode("utf-8"))
    return counts


def test_manifest_counts_every_domain_and_streams_in_batches(tmp_path, monkeypatch):
    from leaderboard_factory import (
        documents,
        fixed_vocabulary_tokenizer,
        revision_as_evaluated,
        write_tiny_registry,
        write_tiny_release,
    )

    from paloma.eval import tokens
    from paloma.registry import load_registry_file
    from paloma.submissions.manifest import TOKENIZE_BATCH, build_manifest

    registry_file = write_tiny_registry(tmp_path)
    data = write_tiny_release(tmp_path / "data", registry_file, splits=("val",), count=100)
    batches: list[int] = []
    real = tokens.encode_texts
    monkeypatch.setattr(tokens, "encode_texts", lambda tok, batch: batches.append(len(batch)) or real(tok, batch))
    tokenizer = str(fixed_vocabulary_tokenizer(tmp_path / "tok"))
    manifest = build_manifest(data, "val", load_registry_file(registry_file), tokenizer, progress=False)
    assert max(batches) <= TOKENIZE_BATCH and sum(batches) == 7 * 100  # never the whole split at once
    independent = _independent_counts(data, "val")
    for (source, domain), (docs, n_bytes) in independent.items():
        entry = manifest["domains"][source][domain]
        assert (entry["documents"], entry["bytes"]) == (docs, n_bytes)
        words = [len(documents(source, domain, "val", 100)[i].split()) for i in range(100)]
        assert entry["words"] == sum(words)
    assert manifest["data_revision"] == revision_as_evaluated(data, "val")
    assert manifest["totals"]["documents"] == 700 and manifest["totals"]["domains"] == 7


def test_manifest_fingerprints_follow_the_release_protocol(tmp_path):
    from paloma.protocol import protocol_from_preset
    from paloma.submissions.manifest import preset_fingerprints

    registry = parse_registry(RAW)
    prints = preset_fingerprints(registry, "val", "sha256:abc")
    expected = protocol_from_preset("paloma", max_length=128, split="val", data_revision="sha256:abc").fingerprint()
    assert prints["paloma"] == expected and prints["lm-eval-harness"] != expected


def test_a_domain_the_manifest_records_as_empty_may_be_absent(tmp_path):
    """C4-100-Domains lists a domain that is empty upstream: an evaluation cannot report it, and need not."""
    import json

    from leaderboard_factory import eval_output, metadata, write_tiny_manifest, write_tiny_registry

    from paloma.errors import PalomaError
    from paloma.submissions.submit import submit
    from paloma.submissions.validate import validate

    registry_file = write_tiny_registry(tmp_path)
    manifest_path = write_tiny_manifest(tmp_path, registry_file, "val")
    out = eval_output(tmp_path / "eval", registry_file, model="m", skip={("gamma", "g2")})
    with pytest.raises(PalomaError, match=r"results.gamma: 1 domain\(s\) missing: g2"):
        submit(out, metadata("m"), tmp_path / "subs", registry_file)
    manifest = json.loads(manifest_path.read_text())
    manifest["domains"]["gamma"]["g2"] = dict.fromkeys(("documents", "bytes", "chars", "words", "empty_documents"), 0)
    manifest_path.write_text(json.dumps(manifest))
    submit(out, metadata("m"), tmp_path / "subs", registry_file)
    assert validate([tmp_path / "subs"], registry_file).problems == []
