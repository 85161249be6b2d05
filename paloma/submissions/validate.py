"""Validation of submissions: each one on its own, then all submissions of one release and split together.

Submissions come from strangers' pull requests, so this is a trust boundary. Checks (each failure is one
`Problem` naming the file and the field):
- files: plain files inside the submissions tree (no symbolic links), at most MAX_FILE_BYTES, JSON nested at
  most MAX_JSON_DEPTH deep; the schema (`paloma.submissions.schema`: bounded numbers, visible text, a typed
  and bounded `extra`), names safe and unique, the folder named after the submission;
- display names: no two of a release share a confusable skeleton (`paloma.submissions.text`);
- the claimed aggregates equal those recomputed from the sums with `paloma.metrics`;
- the protocol is the benchmark's, and its fingerprint is recomputed from its fields (`protocol_check`);
- every domain of the release's public sources is present, and no domain outside the release;
- against the release manifest of the release and split (`paloma.submissions.manifest`), when there is one:
  exact documents and bytes per domain, exact tokens for the fixed vocabulary, the data revision and the
  fingerprint of one of the release's presets;
- decontamination evidence: a report file that parses as a `paloma decon filter` report, cites the claimed
  index and covers the release's evaluation data;
- costs that fit together: a fixed-vocabulary model's embedding holds at least vocabulary × MIN_WIDTH weights;
- the release's pinned split (`Registry.split`): another split is refused, never outvoted;
- a floor on each domain's loss where the manifest records the domain's zlib size: no model compresses text
  FLOOR_RATIO times better than zlib, so a loss shrunk by hand cannot pass (the ceiling is in the schema);
- one entry per model, across all submissions: the same (model id, revision, dtype), or the same per-domain
  sums (every domain's counts equal and its nll_sum within SAME_SUMS_TOLERANCE), are refused, naming the
  earlier submission.
Without a manifest nothing is checked relative to other submissions (a majority could fail an honest entry):
every submission of that release and split is `data_verified=False`, shown as "data unverified" on the site,
and a note says what a maintainer must run once.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from tqdm import tqdm

from paloma.errors import PalomaError
from paloma.protocol import PRESETS
from paloma.registry import Registry, load_registry, load_registry_file
from paloma.resources import data_dir
from paloma.submissions.manifest import Manifest, load_manifest, manifest_name
from paloma.submissions.protocol_check import integrity_problems, protocol_differences
from paloma.submissions.recompute import recompute, same_number
from paloma.submissions.schema import MIN_WIDTH, Submission
from paloma.submissions.text import skeleton

SUBMISSION_FILE = "submission.json"
MAX_FILE_BYTES = 5 * 1024 * 1024  # per submission.json and per decontamination report
MAX_JSON_DEPTH = 32
# No model compresses a domain's text FLOOR_RATIO times better than zlib at level 9 does, each document alone:
# the best neural compressors reach about 4× on long English text (enwik9: gzip about 2.6 bits per character,
# nncp 0.85), and zlib on a document alone does worse than on a stream, which is what the wide margin is for
# (web text compresses to about 4.5 bits per byte, so the floor is about 0.09; good models score 0.6 or more).
FLOOR_RATIO = 50
SAME_SUMS_TOLERANCE = 1e-9  # relative: two submissions this close on every domain are one model's results
# Registry files given by the user (one per release), on top of the registries shipped with paloma.
RegistryFiles = str | Path | Sequence[str | Path] | None
ManifestFiles = str | Path | Sequence[str | Path] | None


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
    preset: str | None = None  # the release preset its fingerprint belongs to (None: no manifest to say)
    decon_evidence: str = "none"  # "checked" (a report that covers the release), "linked" (a URL), "none"
    # "unverified" (a report checked against the registry only: without a manifest its data is unknown)
    data_verified: bool = False  # counts, data revision and fingerprint checked against the release manifest

    def at(self, field_path: str = "") -> str:
        return f"{self.path}: {field_path}" if field_path else str(self.path)


@dataclass
class Report:
    submissions: list[Loaded] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be checked, said once

    @property
    def ok(self) -> bool:
        return not self.problems


def as_paths(value: str | Path | Sequence[str | Path] | None) -> list[str | Path]:
    """One path or several (the `--registry` and `--manifest` options may be given once or repeated)."""
    return [value] if isinstance(value, (str, Path)) else list(value or ())


def find_submission_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Submission files under the given folders (never following links) or given directly, in a stable order.

    Symbolic links anywhere in the tree are problems: a link to a file outside the repository would be
    validated and published as if it were part of the pull request.
    """
    found: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_symlink():
            problems.append(Problem(str(path), "is a symbolic link; submissions must be plain files and folders"))
        elif path.is_file():
            found.append(path)
        elif path.is_dir():
            for folder, dirs, files in os.walk(path):
                dirs.sort()
                for name in sorted(dirs + files):
                    entry = Path(folder, name)
                    if entry.is_symlink():
                        problems.append(Problem(str(entry), "is a symbolic link; links are not allowed in submissions"))
                    elif name == SUBMISSION_FILE and name in files:
                        found.append(entry)
        else:
            raise PalomaError(f"{path}: no such file or folder")
    return found, problems


def read_limited_json(path: Path, what: str = "file") -> tuple[object | None, Problem | None]:
    """A regular file of at most MAX_FILE_BYTES, parsed as JSON nested at most MAX_JSON_DEPTH deep."""
    try:
        info = path.lstat()
    except OSError as err:
        return None, Problem(str(path), f"cannot read ({err.strerror})")
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
        return None, Problem(str(path), f"the {what} must be a regular file, not a link or special file")
    if info.st_size > MAX_FILE_BYTES:
        return None, Problem(str(path), f"the {what} is {info.st_size} bytes, more than the {MAX_FILE_BYTES} allowed")
    try:
        raw = json.loads(path.read_bytes().decode("utf-8"), object_pairs_hook=_unique_keys)
    except DuplicateKey as err:
        message = f"the key {err.key!r} appears twice in one object (readers disagree on which wins)"
        return None, Problem(str(path), message)
    except UnicodeDecodeError as err:
        return None, Problem(str(path), f"not UTF-8 text (byte {err.start})")
    except json.JSONDecodeError as err:
        return None, Problem(f"{path}:{err.lineno}", f"invalid JSON ({err.msg})")
    except RecursionError:
        return None, Problem(str(path), f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    except OSError as err:
        return None, Problem(str(path), f"cannot read ({err.strerror})")
    if isinstance(raw, (dict, list)) and _depth(raw) > MAX_JSON_DEPTH:
        return None, Problem(str(path), f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return raw, None


class DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are unique: with a repeated key, a diff shows one value and the site another."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        raise DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return data


def _depth(value: object) -> int:
    """Nesting depth, without recursion (a deep document must not crash the check meant to stop it)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def load_submission(path: Path) -> tuple[Submission | None, list[Problem]]:
    """Parse one file against the schema; schema errors become one problem per field."""
    raw, problem = read_limited_json(path, "submission file")
    if problem is not None:
        return None, [problem]
    try:
        return Submission.model_validate(raw), []
    except ValidationError as err:
        return None, [
            Problem(f"{path}: {'.'.join(map(str, e['loc'])) or '(top level)'}", _schema_message(e))
            for e in err.errors()
        ]
    except RecursionError:
        return None, [Problem(str(path), "too deeply nested to validate")]


def _schema_message(error: dict) -> str:
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return "unknown field (not in schema paloma-submission/1)"
    if error["type"] == "finite_number":
        return "must be a finite number (NaN and infinity are not numbers here)"
    return message


class RegistryCache:
    """Registries by release: a registry file given by the user, else the one shipped with paloma."""

    def __init__(self, registry_files: RegistryFiles = None) -> None:
        self._by_release: dict[str, Registry | None] = {}
        self.files: dict[str, Path] = {}
        for path in as_paths(registry_files):
            registry = load_registry_file(path)
            self._by_release[registry.release] = registry
            self.files[registry.release] = Path(path)

    def get(self, release: str) -> Registry | None:
        if release not in self._by_release:
            shipped = data_dir("domains") / f"{release}.json"
            self._by_release[release] = load_registry(release) if shipped.is_file() else None
        return self._by_release[release]


class ManifestCache:
    """Manifests by (release, split): files given by the user, else `<release>.<split>.manifest.json` beside the
    release's registry file, else the one shipped with paloma (domains/)."""

    def __init__(self, manifest_files: ManifestFiles = None, registries: RegistryCache | None = None) -> None:
        self.registries = registries or RegistryCache()
        self._found: dict[tuple[str, str], Manifest | None] = {}
        for path in as_paths(manifest_files):
            manifest = load_manifest(path)
            self._found[(manifest.release, manifest.split)] = manifest

    def get(self, release: str, split: str) -> Manifest | None:
        key = (release, split)
        if key not in self._found:
            candidates = [data_dir("domains") / manifest_name(release, split)]
            if release in self.registries.files:
                candidates.insert(0, self.registries.files[release].with_name(manifest_name(release, split)))
            path = next((p for p in candidates if p.is_file()), None)
            self._found[key] = load_manifest(path) if path else None
        return self._found[key]


def check_submission(loaded: Loaded, registry: Registry | None, manifest: Manifest | None = None) -> list[Problem]:
    """Every check that needs only this submission, its release's registry and manifest."""
    sub = loaded.submission
    problems = [Problem(loaded.at(), m) for m in _check_location(loaded)]
    release_protocol = registry.protocol if registry is not None else None
    protocol = sub.protocol.model_dump()
    differences = protocol_differences(protocol, release_protocol)
    differences += integrity_problems(protocol, sub.benchmark.split)
    problems += [Problem(loaded.at("protocol"), m) for m in differences]
    if registry is None:
        release = sub.benchmark.release
        return [*problems, Problem(loaded.at("benchmark.release"), f"unknown release {release!r} (no registry)")]
    problems += _check_split(loaded, registry)
    problems += _check_costs(loaded, registry, manifest)
    problems += _check_decontamination_report(loaded, registry, manifest)
    problems += _check_domains(loaded, registry, manifest)
    problems += _check_aggregates(loaded, registry)
    if manifest is not None:
        manifest_problems = _check_against_manifest(loaded, manifest)
        loaded.data_verified = not manifest_problems
        problems += manifest_problems
    return problems


def _check_split(loaded: Loaded, registry: Registry) -> list[Problem]:
    """The release ranks one split, named in its registry: a submission of the other is refused on its own."""
    split = loaded.submission.benchmark.split
    if registry.split is None or split == registry.split:
        return []
    message = f"release {registry.release!r} ranks the {registry.split} split; this submission is of {split}"
    return [Problem(loaded.at("benchmark.split"), message)]


def fixed_vocabulary_size(registry: Registry, manifest: Manifest | None) -> int | None:
    """The release's fixed vocabulary: as the manifest's tokenizer counted it, else as its registry names it."""
    counted = (manifest.tokenizer or {}).get("vocabulary") if manifest is not None else None
    return counted if isinstance(counted, int) and counted > 0 else registry.vocabulary


def _check_costs(loaded: Loaded, registry: Registry, manifest: Manifest | None) -> list[Problem]:
    """What the numbers allow to check of the claimed size (the schema checks the rest, see `Model`)."""
    model = loaded.submission.model
    vocabulary = fixed_vocabulary_size(registry, manifest)
    if not loaded.submission.guidelines.fixed_vocabulary or vocabulary is None:
        return []
    least = vocabulary * MIN_WIDTH
    if model.embedding_parameters >= least:
        return []
    message = (
        f"parameters − non_embedding_parameters is {model.embedding_parameters}, but the fixed vocabulary of "
        f"{vocabulary} tokens needs at least {least} embedding weights ({MIN_WIDTH} per token)"
    )
    return [Problem(loaded.at("model.parameters"), message)]


def _check_location(loaded: Loaded) -> list[str]:
    """A submission lives at submissions/<name>/submission.json, so its URL and folder cannot collide."""
    if loaded.path.name == SUBMISSION_FILE and loaded.path.parent.name != loaded.submission.name:
        return [f"the folder is named {loaded.path.parent.name!r} but the submission is {loaded.submission.name!r}"]
    return []


# ---- decontamination evidence ------------------------------------------------------------------------------


def _check_decontamination_report(loaded: Loaded, registry: Registry, manifest: Manifest | None) -> list[Problem]:
    decon = loaded.submission.guidelines.decontamination
    if not decon.met or not decon.report:
        return []
    if decon.report.startswith(("http://", "https://")):
        loaded.decon_evidence = "linked"  # shown with a weaker label: nobody checked what the URL holds
        return []
    where = loaded.at("guidelines.decontamination.report")
    folder = loaded.path.parent
    report = folder / decon.report
    if not report.exists() and not report.is_symlink():
        return [Problem(where, f"{report} does not exist")]
    if report.resolve().parent != folder.resolve():
        return [Problem(where, f"{report} resolves outside the submission folder")]
    data, problem = read_limited_json(report, "decontamination report")
    if problem is not None:
        return [Problem(where, problem.message)]
    messages = decon_report_problems(data, decon.index_checksum, registry, manifest)
    if not messages:
        loaded.decon_evidence = "checked" if manifest is not None else "unverified"
    return [Problem(where, m) for m in messages]


def report_checksum(report: dict) -> str | None:
    """The index checksum a `paloma decon` report cites (`index.checksum`, or `index_checksum`)."""
    index = report.get("index")
    return (index.get("checksum") if isinstance(index, dict) else None) or report.get("index_checksum")


def decon_report_problems(
    data: object, claimed: str | None, registry: Registry, manifest: Manifest | None
) -> list[str]:
    """Why `data` is not evidence of decontamination against this release (empty when it is).

    It must parse as a `paloma decon filter --report` (docs/decon.md: `index` with its checksum and data,
    `totals` with documents read and removed, `dry_run` false); fields added by later versions are accepted.
    """
    if not isinstance(data, dict):
        return ["the report is not a JSON object of `paloma decon filter --report`"]
    index, totals = data.get("index"), data.get("totals")
    if not isinstance(index, dict) or not isinstance(index.get("checksum"), str):
        return ["the report has no index.checksum: it is not a `paloma decon filter` report"]
    if not isinstance(totals, dict) or not all(
        isinstance(totals.get(k), int) and totals[k] >= 0 for k in ("documents", "removed_documents")
    ):
        return ["the report has no totals.documents and totals.removed_documents: not a `paloma decon filter` report"]
    problems = []
    if data.get("dry_run") is not False:
        problems.append("the report is of a dry run, which removes nothing")
    if index["checksum"] != claimed:
        problems.append(f"the report cites index {index['checksum']}, not {claimed}")
    problems += _coverage_problems(index.get("data"), registry, manifest)
    return problems


def _coverage_problems(data: object, registry: Registry, manifest: Manifest | None) -> list[str]:
    """The index was built from this release's evaluation data: every prose source, both splits, same files."""
    if not isinstance(data, dict):
        return ["the report's index has no data section (which evaluation data it holds)"]
    indexed = set(data.get("sources") or ()) - set(data.get("excluded_code_sources") or ())
    required = (
        set(manifest.decon.get("sources", ())) if manifest else {s.name for s in registry.public() if not s.is_code}
    )
    missing = sorted(required - indexed)
    problems = []
    if missing:
        problems.append(f"the index does not cover source(s) {', '.join(missing[:5])} of release {registry.release!r}")
    if not {"val", "test"} <= set(data.get("splits") or ()):
        problems.append("the index does not cover both splits (val and test)")
    if manifest is not None:
        for key, name in (("fingerprint", "fingerprint"), ("hub_revision", "revision")):
            if key in manifest.decon and data.get(name) != manifest.decon[key]:
                problems.append(
                    f"the index was built from other data ({name} {data.get(name)!r}, "
                    f"the release's is {manifest.decon[key]!r})"
                )
    return problems


# ---- domains, aggregates, manifest -------------------------------------------------------------------------


def _check_domains(loaded: Loaded, registry: Registry, manifest: Manifest | None = None) -> list[Problem]:
    """Every domain of the release's public sources, none outside it; a domain the manifest records as empty
    (no documents in this split) may be absent, since an evaluation has nothing to report for it."""
    empty = {
        (s, d) for s, ds in (manifest.domains.items() if manifest else ()) for d, c in ds.items() if not c["documents"]
    }
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
        missing = [d for d in entry.domains if d not in present and (entry.name, d) not in empty]
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


def _check_against_manifest(loaded: Loaded, manifest: Manifest) -> list[Problem]:
    """Exact counts per domain, the release's data revision and one of its preset fingerprints."""
    sub = loaded.submission
    label = f"the {manifest.release}/{manifest.split} manifest"
    problems = []
    protocol = sub.protocol
    if protocol.data_revision != manifest.data_revision:
        message = f"protocol.data_revision is {protocol.data_revision!r}, {label} has {manifest.data_revision!r}"
        problems.append(Problem(loaded.at("protocol.data_revision"), message))
    loaded.preset = manifest.preset_of(protocol.fingerprint, protocol.preset, protocol.max_length)
    if loaded.preset is None:
        presets = ", ".join([*manifest.fingerprints, *(p for p in PRESETS if p not in manifest.fingerprints)])
        message = f"protocol.fingerprint {protocol.fingerprint!r} is not one of {label}'s presets ({presets})"
        problems.append(Problem(loaded.at("protocol.fingerprint"), message))
    tokenizer = manifest.tokenizer or {}
    fixed = sub.guidelines.fixed_vocabulary
    recorded_hash = (protocol.model_extra or {}).get("tokenizer_hash")
    if fixed and tokenizer.get("hash") and recorded_hash and recorded_hash != tokenizer["hash"]:
        message = (
            f"fixed vocabulary claimed, but the tokenizer is {recorded_hash!r}, the release's {tokenizer['hash']!r}"
        )
        problems.append(Problem(loaded.at("guidelines.fixed_vocabulary"), message))
    for source, domains in manifest.domains.items():
        for domain, expected in domains.items():
            sums = sub.results.get(source, {}).get(domain)
            if sums is None:
                continue  # reported by the registry check when the domain is one of the release's
            where = loaded.at(f"results.{source}.{domain}")
            problems += [Problem(where, m) for m in _domain_differences(sums, expected, fixed, label)]
    return problems


def _domain_differences(sums, expected: dict[str, int], fixed_vocabulary: bool, label: str) -> list[str]:
    keys = ["documents", "bytes"] + (["tokens"] if fixed_vocabulary and "tokens" in expected else [])
    messages = [
        f"{key} is {getattr(sums, key)}, {label} has {expected[key]} (a partial or altered evaluation?)"
        for key in keys
        if getattr(sums, key) != expected.get(key)
    ]
    if not messages and expected.get("documents", 0) > expected.get("empty_documents", 0) and sums.tokens == 0:
        messages.append("tokens is 0 for a domain with text (a zeroed domain?)")
    floor = loss_floor_bits(expected)
    if not messages and floor is not None and sums.nll_sum / math.log(2) < floor:
        messages.append(
            f"nll_sum is {sums.nll_sum:.6g} nats ({sums.nll_sum / math.log(2) / sums.bytes:.4g} bits per byte), below "
            f"the floor of {floor / sums.bytes:.4g} (zlib's size of this domain in {label} / {FLOOR_RATIO})"
        )
    return messages


def loss_floor_bits(expected: dict[str, int]) -> float | None:
    """The least total loss, in bits, that a domain's text allows: its zlib size / FLOOR_RATIO (None: not recorded)."""
    compressed = expected.get("zlib_bytes")
    return 8 * compressed / FLOOR_RATIO if compressed else None


# ---- across submissions ------------------------------------------------------------------------------------


def check_consistency(submissions: list[Loaded], established: Iterable[Path] = ()) -> list[Problem]:
    """Cross-checks among all submissions: unique names and display names, and one entry per model.

    Nothing here takes a majority as right: a problem belongs to a submission because of an earlier one it
    copies or collides with, never because others disagree with it. `established` submissions (those already
    merged, when a pull request or `paloma submit` adds one) come first whatever date the newcomer claims.
    """
    first = set(map(str, established))
    ordered = sorted(submissions, key=lambda x: (str(x.path) not in first, *_arrival(x)))
    return _unique_names(ordered) + _one_entry_per_model(ordered)


def _arrival(loaded: Loaded) -> tuple:
    """Earlier first: by the date submitted, then by name (a stable order for submissions of one day)."""
    return (loaded.submission.submitted, loaded.submission.name, str(loaded.path))


def _one_entry_per_model(ordered: list[Loaded]) -> list[Problem]:
    """The same (model id, revision, dtype), or the same per-domain sums, is one model: later copies are refused."""
    problems = []
    first_of: dict[tuple, Loaded] = {}
    for loaded in ordered:
        model = loaded.submission.model
        key = (loaded.submission.benchmark.release, model.model_id, model.revision, loaded.submission.protocol.dtype)
        earlier = first_of.setdefault(key, loaded)
        if earlier is not loaded:
            message = (
                f"model {model.model_id!r} revision {model.revision!r} ({key[3]}) was submitted already by "
                f"{earlier.path} (one entry per model)"
            )
            problems.append(Problem(loaded.at("model.model_id"), message))
    for loaded, earlier in _same_sums(ordered):
        message = f"its per-domain sums are those of {earlier.path} (one entry per model: a copy or a resubmission)"
        problems.append(Problem(loaded.at("results"), message))
    return problems


def _sums_vector(loaded: Loaded) -> tuple[tuple, list[float]]:
    """Counts per domain (must be equal) and nll per domain (equal within SAME_SUMS_TOLERANCE), in a fixed order."""
    keys = sorted((s, d) for s, ds in loaded.submission.results.items() for d in ds)
    sums = [loaded.submission.results[s][d] for s, d in keys]
    counts = (loaded.submission.benchmark.release, tuple(keys), tuple((x.tokens, x.bytes, x.documents) for x in sums))
    return counts, [x.nll_sum for x in sums]


def _close(a: float, b: float) -> bool:
    return abs(a - b) <= SAME_SUMS_TOLERANCE * max(abs(a), abs(b))


def _same_sums(ordered: list[Loaded]) -> list[tuple[Loaded, Loaded]]:
    """(later, earlier) pairs whose sums are the same. Among submissions with equal counts, sorted by total loss,
    only neighbours within the tolerance can match, so this is near-linear for a thousand submissions."""
    by_counts: dict[tuple, list[tuple[float, int, Loaded, list[float]]]] = defaultdict(list)
    for position, loaded in enumerate(ordered):
        counts, nll = _sums_vector(loaded)
        by_counts[counts].append((math.fsum(nll), position, loaded, nll))
    pairs = []
    for group in by_counts.values():
        group.sort(key=lambda item: item[0])
        matched: set[int] = set()
        for i, (total, position, loaded, nll) in enumerate(group):
            for other_total, other_position, other, other_nll in group[i + 1 :]:
                if not _close(total, other_total):
                    break
                if all(map(_close, nll, other_nll)):
                    later, earlier = (other, loaded) if other_position > position else (loaded, other)
                    if id(later) not in matched:
                        matched.add(id(later))
                        pairs.append((later, earlier))
    return pairs


def _unique_names(submissions: list[Loaded]) -> list[Problem]:
    problems = []
    by_name = defaultdict(list)
    by_look = defaultdict(list)
    for loaded in submissions:
        by_name[loaded.submission.name].append(loaded)
        by_look[(loaded.submission.benchmark.release, skeleton(loaded.submission.model.display_name))].append(loaded)
    for name, same in by_name.items():
        if len(same) > 1:
            others = ", ".join(str(x.path) for x in same[1:])
            problems.append(Problem(same[0].at("name"), f"{name!r} is also used by {others}"))
    for (release, _), same in by_look.items():
        names = {x.submission.name for x in same}
        if len(names) > 1:
            first = same[0].submission.model.display_name
            for loaded in same[1:]:
                message = (
                    f"{loaded.submission.model.display_name!r} looks like {first!r} of {same[0].path} "
                    f"(display names of release {release!r} must be distinguishable)"
                )
                problems.append(Problem(loaded.at("model.display_name"), message))
    return problems


def manifest_command(release: str, split: str, registries: RegistryCache) -> str:
    """What a maintainer runs once so that every submission of a release and split is checked on its own: the
    manifest goes where validation looks for it (beside a registry file given, else in domains/)."""
    registry = registries.get(release)
    data = (registry.hub_dataset if registry else None) or "DATA"
    given = registries.files.get(release)
    output = given.with_name(manifest_name(release, split)) if given else f"domains/{manifest_name(release, split)}"
    return (
        f"paloma release manifest --data {data} --split {split} --registry {given or release} "
        f"--tokenizer FIXED_VOCABULARY_TOKENIZER --output {output}"
    )


def validate(
    paths: Iterable[str | Path],
    registry_file: RegistryFiles = None,
    progress: bool = False,
    manifest_files: ManifestFiles = None,
    established: Iterable[str] = (),
) -> Report:
    """Validate every submission found under `paths`, alone and against each other; submissions named in
    `established` (already merged) count as earlier than the others when one copies another."""
    report = Report()
    registries = RegistryCache(registry_file)
    manifests = ManifestCache(manifest_files, registries)
    files, report.problems = find_submission_files(paths)
    for path in tqdm(files, desc="validating", unit="submission", disable=not progress or len(files) < 50):
        submission, problems = load_submission(path)
        report.problems += problems
        if submission is None:
            continue
        loaded = Loaded(path, submission)
        benchmark = submission.benchmark
        manifest = manifests.get(benchmark.release, benchmark.split)
        report.problems += check_submission(loaded, registries.get(benchmark.release), manifest)
        report.submissions.append(loaded)
    groups = sorted({(x.submission.benchmark.release, x.submission.benchmark.split) for x in report.submissions})
    for release, split in groups:
        if manifests.get(release, split) is None:
            report.notes.append(
                f"no release manifest for {release}/{split}: counts, data revision, fingerprint, fixed vocabulary "
                "and decontamination reports cannot be checked, so every such submission is shown as "
                f"'data unverified'; a maintainer runs once: {manifest_command(release, split, registries)}"
            )
    merged = set(established)
    report.problems += check_consistency(
        report.submissions, [x.path for x in report.submissions if x.submission.name in merged]
    )
    return report
