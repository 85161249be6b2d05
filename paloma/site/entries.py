"""What the site shows about each submission, recomputed from its sums with `paloma.metrics`.

An `Entry` holds the per-source metrics of the release's public sources and, for each purpose group of
sources (all, standard, fine-grained, disparities, fringe), the suite aggregates over that group. Nothing
here trusts the aggregates a submitter claimed; validation has already checked that they agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from paloma import metrics
from paloma.registry import GROUPS, Registry
from paloma.submissions.recompute import domain_sums
from paloma.submissions.schema import Submission

ALL = "all"
REFERENCE_PRESET = "paloma"  # the leaderboard's comparability group; other presets are shown apart


@dataclass
class Entry:
    submission: Submission
    path: Path
    sources: dict[str, dict]  # source → metrics.source_metrics of every source submitted
    suites: dict[str, dict]  # purpose group → metrics.suite_metrics over that group's public sources
    ranks: dict[str, int] = field(default_factory=dict)  # "<group>/<metric>" → rank among comparable finals
    preset: str = REFERENCE_PRESET  # the protocol preset it was evaluated with
    decon_evidence: str = "none"  # "checked", "unverified" (no manifest), "linked" (a URL nobody checked), "none"
    data_verified: bool = False  # checked against the release manifest (else shown as "data unverified")

    @property
    def reference(self) -> bool:
        """In the leaderboard's comparability group (the release's reference protocol)."""
        return self.preset == REFERENCE_PRESET

    @property
    def name(self) -> str:
        return self.submission.name

    @property
    def compute(self) -> float:
        """Training compute ≈ 6·N·D, N the non-embedding parameters (Kaplan et al.'s convention)."""
        model = self.submission.model
        return 6.0 * model.non_embedding_parameters * model.training_tokens

    def fit(self, metric: str, group: str = ALL) -> float:
        """The suite's macro value of `metric` ('ppl' or 'bpb') over a purpose group."""
        return self.suites.get(group, {}).get(f"macro_{metric}", math.nan)


def purpose_groups(registry: Registry) -> dict[str, list[str]]:
    """Public sources by purpose group, in registry order; 'all' first. Empty groups are left out."""
    public = registry.public()
    groups = {ALL: [s.name for s in public]}
    for group in GROUPS:
        members = [s.name for s in public if s.group == group]
        if members:
            groups[group] = members
    return groups


def make_entry(
    submission: Submission,
    path: Path,
    registry: Registry,
    full: dict | None = None,
    preset: str | None = None,
    decon_evidence: str = "none",
    data_verified: bool = False,
) -> Entry:
    """`full` is `paloma.metrics.aggregate` of all the submission's sums, when validation computed it already;
    `preset` the release preset its fingerprint matched (default: the preset the protocol records)."""
    by_domain = domain_sums(submission)
    full = full if full is not None else metrics.aggregate(by_domain, registry)
    suites = {}
    for group, members in purpose_groups(registry).items():
        chosen = set(members)
        suites[group] = metrics.suite_metrics(
            {key: s for key, s in by_domain.items() if key[0] in chosen},
            {name: m for name, m in full["sources"].items() if name in chosen},
            registry,
        )
    preset = preset or submission.protocol.preset
    return Entry(
        submission,
        path,
        full["sources"],
        suites,
        preset=preset,
        decon_evidence=decon_evidence,
        data_verified=data_verified,
    )


def comparable(entry: Entry, metric: str) -> bool:
    """Perplexities are comparable only between models with the fixed vocabulary (paloma.md §4)."""
    return metric == "bpb" or entry.submission.guidelines.fixed_vocabulary


def assign_ranks(entries: list[Entry], groups: list[str]) -> None:
    """Rank final models per group and metric (1 = best); equal values share a rank."""
    for group in groups:
        for metric in ("bpb", "ppl"):
            pool = [e for e in entries if e.submission.is_final and e.reference and comparable(e, metric)]
            pool = [e for e in pool if math.isfinite(e.fit(metric, group))]
            pool.sort(key=lambda e: e.fit(metric, group))
            rank, previous = 0, None
            for position, entry in enumerate(pool, start=1):
                value = entry.fit(metric, group)
                if value != previous:
                    rank, previous = position, value
                entry.ranks[f"{group}/{metric}"] = rank
