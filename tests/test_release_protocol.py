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
