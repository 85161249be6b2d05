"""Validation of submissions: each one on its own, then all submissions of one release and split together.

Checks (each failure is one `Problem` naming the file and the field):
- the schema (`paloma.submissions.schema`), names safe and unique, the folder named after the submission;
- the claimed aggregates equal those recomputed from the sums with `paloma.metrics`;
- the protocol is the benchmark's (`protocol_check`);
- every domain of the release's public sources is present, and no domain outside the release;
- decontamination evidence: the report file exists beside submission.json;
- across submissions of a release and split: bytes and documents per domain agree (they do not depend on the
  tokenizer, so a partial or altered evaluation shows up), and tokens agree among fixed-vocabulary ones.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from tqdm import tqdm

from paloma.errors import PalomaError
from paloma.registry import Registry, load_registry, load_registry_file
from paloma.resources import data_dir
from paloma.submissions.protocol_check import protocol_differences
from paloma.submissions.recompute import recompute, same_number
from paloma.submissions.schema import Submission

SUBMISSION_FILE = "submission.json"
# Registry files given by the user (one per release), on top of the registries shipped with paloma.
RegistryFiles = str | Path | Sequence[str | Path] | None


@dataclass(frozen=True)
class Problem:
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class Loaded:
    """A submission that passed the schema, with the file it came from."""

    path: Path
    submission: Submission
    recomputed: dict | None = field(default=None, repr=False)  # paloma.metrics.aggregate of its sums, once checked

    def at(self, field_path: str = "") -> str:
        return f"{self.path}: {field_path}" if field_path else str(self.path)


@dataclass
class Report:
    submissions: list[Loaded] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def find_submission_files(paths: Iterable[str | Path]) -> list[Path]:
    """Submission files under the given folders (recursively) or given directly, in a stable order."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(p for p in sorted(path.rglob(SUBMISSION_FILE)) if "schema" not in p.parts)
        else:
            raise PalomaError(f"{path}: no such file or folder")
    return found


def load_submission(path: Path) -> tuple[Submission | None, list[Problem]]:
    """Parse one file against the schema; schema errors become one problem per field."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        return None, [Problem(str(path), f"cannot read ({err})")]
    except json.JSONDecodeError as err:
        return None, [Problem(f"{path}:{err.lineno}", f"invalid JSON ({err.msg})")]
    try:
        return Submission.model_validate(raw), []
    except ValidationError as err:
        return None, [
            Problem(f"{path}: {'.'.join(map(str, e['loc'])) or '(top level)'}", _schema_message(e))
            for e in err.errors()
        ]


def _schema_message(error: dict) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field (not in schema paloma-submission/1)"
    return message


class RegistryCache:
    """Registries by release: a registry file given by the user, else the one shipped with paloma."""

    def __init__(self, registry_files: RegistryFiles = None) -> None:
        self._by_release: dict[str, Registry | None] = {}
        if isinstance(registry_files, (str, Path)):
            registry_files = [registry_files]
        for path in registry_files or ():
            registry = load_registry_file(path)
            self._by_release[registry.release] = registry

    def get(self, release: str) -> Registry | None:
        if release not in self._by_release:
            shipped = data_dir("domains") / f"{release}.json"
            self._by_release[release] = load_registry(release) if shipped.is_file() else None
        return self._by_release[release]


def check_submission(loaded: Loaded, registry: Registry | None) -> list[Problem]:
    """Every check that needs only this submission and its release's registry."""
    sub = loaded.submission
    problems = [Problem(loaded.at(), m) for m in _check_location(loaded)]
    release_protocol = registry.protocol if registry is not None else None
    differences = protocol_differences(sub.protocol.model_dump(), release_protocol)
    problems += [Problem(loaded.at("protocol"), m) for m in differences]
    problems += _check_decontamination_report(loaded)
    if registry is None:
        release = sub.benchmark.release
        return [*problems, Problem(loaded.at("benchmark.release"), f"unknown release {release!r} (no registry)")]
    problems += _check_domains(loaded, registry)
    problems += _check_aggregates(loaded, registry)
    return problems


def _check_location(loaded: Loaded) -> list[str]:
    """A submission lives at submissions/<name>/submission.json, so its URL and folder cannot collide."""
    if loaded.path.name == SUBMISSION_FILE and loaded.path.parent.name != loaded.submission.name:
        return [f"the folder is named {loaded.path.parent.name!r} but the submission is {loaded.submission.name!r}"]
    return []


def _check_decontamination_report(loaded: Loaded) -> list[Problem]:
    decon = loaded.submission.guidelines.decontamination
    if not decon.met or not decon.report or decon.report.startswith(("http://", "https://")):
        return []
    where = loaded.at("guidelines.decontamination.report")
    report = loaded.path.parent / decon.report
    if not report.is_file():
        return [Problem(where, f"{report} does not exist")]
    try:
        data = json.loads(report.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return [Problem(where, f"{report} is not a JSON report of `paloma decon`")]
    problems = []
    cited = report_checksum(data) if isinstance(data, dict) else None
    if cited is not None and cited != decon.index_checksum:
        problems.append(Problem(where, f"the report cites index {cited}, not {decon.index_checksum}"))
    if isinstance(data, dict) and data.get("dry_run") is True:
        problems.append(Problem(where, "the report is of a dry run, which removes nothing"))
    return problems


def report_checksum(report: dict) -> str | None:
    """The index checksum a `paloma decon` report cites (`index.checksum`, or `index_checksum`)."""
    index = report.get("index")
    return (index.get("checksum") if isinstance(index, dict) else None) or report.get("index_checksum")


def _check_domains(loaded: Loaded, registry: Registry) -> list[Problem]:
    problems = []
    results = loaded.submission.results
    for source, domains in results.items():
        entry = registry.get(source)
        if entry is None:
            problems.append(Problem(loaded.at(f"results.{source}"), f"unknown source in release {registry.release!r}"))
            continue
        for domain in domains:
            if not entry.accepts_domain(domain):
                problems.append(Problem(loaded.at(f"results.{source}.{domain}"), "unknown domain of this source"))
    for entry in registry.sources:
        present = results.get(entry.name)
        if present is None:
            if entry.redistributable:
                problems.append(Problem(loaded.at(f"results.{entry.name}"), "source of the release is missing"))
            continue
        if entry.undivided_allowed and set(present) == {entry.name}:
            continue
        missing = [d for d in entry.domains if d not in present]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            problems.append(Problem(loaded.at(f"results.{entry.name}"), f"{len(missing)} domain(s) missing: {shown}"))
    return problems


def _check_aggregates(loaded: Loaded, registry: Registry) -> list[Problem]:
    sub = loaded.submission
    fresh = loaded.recomputed = recompute(sub, registry)
    problems = []
    for key, claimed in sub.aggregates.suite.model_dump().items():
        if not same_number(claimed, fresh["suite"][key]):
            problems.append(_mismatch(loaded, f"aggregates.suite.{key}", claimed, fresh["suite"][key]))
    for source, claimed_source in sub.aggregates.sources.items():
        if source not in fresh["sources"]:
            problems.append(Problem(loaded.at(f"aggregates.sources.{source}"), "no results for this source"))
            continue
        for key, claimed in claimed_source.model_dump().items():
            value = fresh["sources"][source][key]
            if not same_number(claimed, value):
                problems.append(_mismatch(loaded, f"aggregates.sources.{source}.{key}", claimed, value))
    for source in fresh["sources"]:
        if source not in sub.aggregates.sources:
            problems.append(Problem(loaded.at(f"aggregates.sources.{source}"), "aggregates missing for this source"))
    return problems


def _mismatch(loaded: Loaded, field_path: str, claimed: float | None, fresh: float) -> Problem:
    return Problem(loaded.at(field_path), f"claimed {claimed!r} but the sums give {fresh!r}")


def check_consistency(submissions: list[Loaded]) -> list[Problem]:
    """Cross-checks among all submissions: unique names, and equal counts per domain within a release+split."""
    problems = []
    by_name = defaultdict(list)
    for loaded in submissions:
        by_name[loaded.submission.name].append(loaded)
    for name, same in by_name.items():
        if len(same) > 1:
            others = ", ".join(str(x.path) for x in same[1:])
            problems.append(Problem(same[0].at("name"), f"{name!r} is also used by {others}"))
    groups = defaultdict(list)
    for loaded in submissions:
        groups[(loaded.submission.benchmark.release, loaded.submission.benchmark.split)].append(loaded)
    for (release, split), group in groups.items():
        label = f"{release}/{split}"
        problems += _agreement(group, ("bytes", "documents"), label, "submissions")
        fixed = [x for x in group if x.submission.guidelines.fixed_vocabulary]
        problems += _agreement(fixed, ("tokens",), label, "fixed-vocabulary submissions")
    return problems


def _agreement(group: list[Loaded], keys: tuple[str, ...], label: str, who: str) -> list[Problem]:
    """Per domain and count, the majority value is taken as right; others are reported (all, on a tie)."""
    if len(group) < 2:
        return []
    values: dict[tuple[str, str, str], dict[int, list[Loaded]]] = defaultdict(lambda: defaultdict(list))
    for loaded in group:
        for source, domains in loaded.submission.results.items():
            for domain, sums in domains.items():
                for key in keys:
                    values[(source, domain, key)][getattr(sums, key)].append(loaded)
    problems = []
    for (source, domain, key), by_value in values.items():
        if len(by_value) < 2:
            continue
        counts = Counter({v: len(holders) for v, holders in by_value.items()})
        (top, top_n), *rest = counts.most_common()
        tie = bool(rest) and rest[0][1] == top_n
        for value, holders in by_value.items():
            if value == top and not tie:
                continue
            expected = f"{top_n} other {who} of {label} have {top}" if not tie else f"{who} of {label} disagree"
            for loaded in holders:
                message = f"{key} is {value} but {expected} (a partial or altered evaluation?)"
                problems.append(Problem(loaded.at(f"results.{source}.{domain}.{key}"), message))
    return problems


def validate(paths: Iterable[str | Path], registry_file: RegistryFiles = None, progress: bool = False) -> Report:
    """Validate every submission found under `paths`, alone and against each other."""
    report = Report()
    registries = RegistryCache(registry_file)
    files = find_submission_files(paths)
    for path in tqdm(files, desc="validating", unit="submission", disable=not progress or len(files) < 50):
        submission, problems = load_submission(path)
        report.problems += problems
        if submission is None:
            continue
        loaded = Loaded(path, submission)
        report.problems += check_submission(loaded, registries.get(submission.benchmark.release))
        report.submissions.append(loaded)
    report.problems += check_consistency(report.submissions)
    return report
