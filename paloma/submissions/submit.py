"""`paloma submit`: turn a `paloma eval` output folder plus metadata into a validated submission folder.

The per-domain sums, protocol, parameter counts, release and split come from results.json (docs/formats.md);
everything a run cannot know (names, links, training data, guidelines met) comes from the user as a small
YAML file or flags. The result is validated exactly as a pull request would be before anything is written.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shlex
import shutil
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from paloma.errors import PalomaError
from paloma.io import atomic_write, check_output_dir
from paloma.submissions.schema import SCHEMA_ID, Submission
from paloma.submissions.validate import (
    MAX_FILE_BYTES,
    SUBMISSION_FILE,
    Loaded,
    ManifestCache,
    ManifestFiles,
    Problem,
    RegistryCache,
    RegistryFiles,
    as_paths,
    check_consistency,
    check_submission,
    decon_report_problems,
    read_limited_json,
    report_checksum,
    validate,
)

SUM_FIELDS = ("nll_sum", "tokens", "bytes", "documents", "chars", "words", "empty_documents")
DECON_REPORT_NAME = "decon-report.json"


def read_results(results_path: str | Path) -> tuple[Path, dict]:
    """Load results.json from an eval output folder (or the file itself)."""
    path = Path(results_path)
    if path.is_dir():
        path = path / "results.json"
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PalomaError(f"{path}: no such file (expected a `paloma eval` output folder)") from None
    except json.JSONDecodeError as err:
        raise PalomaError(f"{path}:{err.lineno}: invalid JSON ({err.msg})") from None
    for key in ("sources", "suite", "protocol", "model", "data"):
        if key not in results:
            raise PalomaError(f"{path}: results lack the field {key!r} (is this a `paloma eval` output?)")
    return path, results


def read_metadata(path: str | Path | None) -> dict[str, Any]:
    """The metadata YAML, plain: anchors and aliases are refused before anything is built (a 1.5 KB file of
    nested aliases expands to billions of nodes), and so are files over MAX_FILE_BYTES."""
    if path is None:
        return {}
    try:
        if Path(path).stat().st_size > MAX_FILE_BYTES:
            raise PalomaError(f"{path}: metadata larger than {MAX_FILE_BYTES} bytes")
        text = Path(path).read_text(encoding="utf-8")
        _refuse_references(path, text)
        data = yaml.safe_load(text) or {}
    except FileNotFoundError:
        raise PalomaError(f"{path}: no such file") from None
    except UnicodeDecodeError as err:
        raise PalomaError(f"{path}: not UTF-8 text (byte {err.start})") from None
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PalomaError(f"{path}: invalid YAML ({first})") from None
    if not isinstance(data, dict):
        raise PalomaError(f"{path}: expected a mapping of metadata fields")
    return data


def parameters_from_weights(source: str, revision: str | None = None) -> int:
    """All parameters of a model's safetensors weights: a local folder's file headers (read, never loaded), a hub
    model already in the local hub cache (the same), or else the hub's count of the same headers
    (`huggingface_hub.get_safetensors_metadata`, which fetches the headers alone).

    This is the checkable source a submission may give for its size: anyone can recount it.
    """
    folder = Path(source) if Path(source).is_dir() else _cached_snapshot(source, revision)
    if folder is not None:
        files = sorted(folder.glob("*.safetensors"))
        if not files:
            raise PalomaError(f"--parameters-from {source}: no *.safetensors file in the folder")
        return sum(_safetensors_parameters(path) for path in files)
    from huggingface_hub import get_safetensors_metadata
    from huggingface_hub.errors import HfHubHTTPError, NotASafetensorsRepoError

    try:
        metadata = get_safetensors_metadata(source, revision=revision)
    except (HfHubHTTPError, NotASafetensorsRepoError, OSError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise PalomaError(f"--parameters-from {source}: cannot read its safetensors metadata ({first})") from None
    return sum(metadata.parameter_count.values())


def _cached_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The hub model's snapshot folder in the local hub cache, when its safetensors weights are there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(repo_id, revision=revision, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        return None
    return folder if any(folder.glob("*.safetensors")) else None


def _safetensors_parameters(path: Path) -> int:
    """Parameters of one safetensors file, from its JSON header (8-byte length, then the header)."""
    with open(path, "rb") as handle:
        size = int.from_bytes(handle.read(8), "little")
        if not 0 < size <= 100 * 1024 * 1024:
            raise PalomaError(f"{path}: not a safetensors file (header of {size} bytes)")
        try:
            header = json.loads(handle.read(size))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise PalomaError(f"{path}: not a safetensors file (unreadable header)") from None
    return sum(math.prod(t["shape"]) for k, t in header.items() if k != "__metadata__")


def _refuse_references(path: str | Path, text: str) -> None:
    """Scan the tokens (linear in the text, nothing expanded) for an anchor (`&a`) or an alias (`*a`)."""
    for token in yaml.scan(text):
        if isinstance(token, (yaml.AnchorToken, yaml.AliasToken)):
            kind = "an anchor" if isinstance(token, yaml.AnchorToken) else "an alias"
            line = token.start_mark.line + 1
            raise PalomaError(f"{path}:{line}: YAML {kind} ({token.value}): write metadata plainly, without & or *")


def build_submission(results: dict, meta: dict[str, Any], report_name: str | None) -> dict[str, Any]:
    """The submission's JSON form from results.json and metadata (not yet validated)."""
    model, data = results["model"], results["data"]
    decon = meta.get("decontamination") or {}
    decontaminated = bool(decon.get("index_checksum") or decon.get("report") or decon.get("met"))
    checkpoint = meta.get("checkpoint")
    return {
        "schema": SCHEMA_ID,
        "name": meta.get("name"),
        "submitted": str(meta.get("submitted") or dt.date.today().isoformat()),
        "model": {
            "display_name": meta.get("display_name") or meta.get("name"),
            "organisation": meta.get("organisation"),
            "links": meta.get("links") or [],
            "model_id": meta.get("model_id") or model.get("name_or_path"),
            "revision": meta.get("revision") or model.get("revision"),
            "parameters": meta.get("parameters") or model.get("parameters"),
            "parameters_source": meta.get("parameters_source"),
            "non_embedding_parameters": model.get("non_embedding_parameters"),
            # `paloma eval` records training tokens when the checkpoint says (models trained by `baselines`).
            "training_tokens": meta.get("training_tokens") or model.get("training_tokens"),
            "tokenizer": meta.get("tokenizer") or model.get("name_or_path"),
            "training_data": meta.get("training_data"),
            "description": meta.get("description") or "",
        },
        **({"checkpoint": checkpoint} if checkpoint else {}),
        "guidelines": {
            "decontamination": {
                "met": decontaminated,
                "index_checksum": decon.get("index_checksum"),
                "report": report_name,
                "removed_fraction": decon.get("removed_fraction"),
            },
            "fixed_training_order": bool(meta.get("fixed_training_order", False)),
            "fixed_vocabulary": bool(meta.get("fixed_vocabulary", False)),
        },
        "benchmark": {
            "release": meta.get("release") or data.get("release") or "paloma",
            "split": data.get("split") or results["protocol"].get("split"),
        },
        "protocol": results["protocol"],
        "results": {
            source: {
                domain: {k: d[k] for k in (*SUM_FIELDS, "ci") if d.get(k) is not None}
                for domain, d in entry["domains"].items()
            }
            for source, entry in results["sources"].items()
        },
        "aggregates": {
            "suite": {k: results["suite"].get(k) for k in ("macro_ppl", "macro_bpb", "ordinary_ppl", "ordinary_bpb")},
            "sources": {
                source: {"macro_ppl": entry.get("macro_ppl"), "macro_bpb": entry.get("macro_bpb")}
                for source, entry in results["sources"].items()
            },
        },
        "extra": meta.get("extra") or {},
    }


def submit(
    results_path: str | Path,
    meta: dict[str, Any],
    submissions_dir: str | Path = "submissions",
    registry_file: RegistryFiles = None,
    overwrite: bool = False,
    manifest_files: ManifestFiles = None,
) -> Path:
    """Write `<submissions_dir>/<name>/submission.json` (and the decon report beside it); return its path."""
    check_output_dir(submissions_dir, [results_path])
    _, results = read_results(results_path)
    decon = meta.get("decontamination") or {}
    report_value = decon.get("report")
    report_url = (
        report_value if isinstance(report_value, str) and report_value.startswith(("http://", "https://")) else None
    )
    report_src = Path(report_value) if report_value and not report_url else None
    if report_src is not None and not report_src.is_file():
        raise PalomaError(f"{report_src}: decontamination report not found")
    if report_src is not None and report_src.stat().st_size > MAX_FILE_BYTES:
        raise PalomaError(f"{report_src}: the decontamination report is larger than {MAX_FILE_BYTES} bytes")
    if report_src is not None:
        # `paloma decon filter --report` records the index it used and the share of documents it removed.
        report = _read_report(report_src)
        decon.setdefault("index_checksum", report_checksum(report))
        totals = report.get("totals") if isinstance(report.get("totals"), dict) else {}
        decon.setdefault("removed_fraction", totals.get("removal_rate_documents"))
    raw = build_submission(results, meta, DECON_REPORT_NAME if report_src else report_url)
    try:
        submission = Submission.model_validate(raw)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(map(str, first["loc"]))
        more = f" (and {len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
        raise PalomaError(f"{where}: {first['msg'].removeprefix('Value error, ')}{more}") from None
    folder = Path(submissions_dir) / submission.name
    target = folder / SUBMISSION_FILE
    if target.exists() and not overwrite:
        raise PalomaError(f"{target} exists already (use --overwrite to replace it)")
    _check_before_writing(Loaded(target, submission), report_src, submissions_dir, registry_file, manifest_files)
    if report_src is not None:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_write(folder / DECON_REPORT_NAME, "wb") as handle, open(report_src, "rb") as src:
            shutil.copyfileobj(src, handle)
    with atomic_write(target) as handle:
        json.dump(submission.to_json_dict(), handle, indent=1, ensure_ascii=False, allow_nan=False)
        handle.write("\n")
    return target


def _read_report(report: Path) -> dict:
    data, _ = read_limited_json(report, "decontamination report")
    return data if isinstance(data, dict) else {}


def _check_before_writing(
    loaded: Loaded,
    report_src: Path | None,
    submissions_dir: str | Path,
    registry_file: RegistryFiles,
    manifest_files: ManifestFiles,
) -> None:
    """Run the pull-request checks now, against the submissions already in the folder.

    The decontamination report is checked where it is now (it is copied beside the submission only on success).
    """
    registries = RegistryCache(registry_file)
    benchmark = loaded.submission.benchmark
    registry = registries.get(benchmark.release)
    manifests = ManifestCache(manifest_files, registries)
    manifest = manifests.get(benchmark.release, benchmark.split)
    problems = [
        p
        for p in check_submission(loaded, registry, manifest)
        if not (report_src and "decontamination.report" in p.where)
    ]
    if report_src is not None and registry is not None:
        messages = decon_report_problems(
            _read_report(report_src), loaded.submission.guidelines.decontamination.index_checksum, registry, manifest
        )
        problems += [Problem(f"{report_src}", m) for m in messages]
    existing = Path(submissions_dir)
    others = []
    if existing.is_dir() and any(existing.rglob(SUBMISSION_FILE)):
        others = [x for x in validate([existing], registry_file, manifest_files=manifest_files).submissions]
        others = [x for x in others if x.path != loaded.path]
    established = [x.path for x in others]
    problems += [p for p in check_consistency([*others, loaded], established) if str(loaded.path) in p.where]
    if problems:
        shown = "; ".join(str(p) for p in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise PalomaError(f"the submission would not pass validation: {shown}{more}")


def pull_request_steps(
    target: Path, submission_name: str, registry_files: RegistryFiles = None, manifest_files: ManifestFiles = None
) -> str:
    """What to do next, with the options the validation needs (a release not shipped with paloma)."""
    folder = target.parent
    options = "".join(f" --registry {shlex.quote(str(p))}" for p in as_paths(registry_files))
    options += "".join(f" --manifest {shlex.quote(str(p))}" for p in as_paths(manifest_files))
    return "\n".join(
        [
            f"Wrote {target}",
            "",
            "To submit it to the leaderboard:",
            f"  1. paloma submissions validate {shlex.quote(str(folder.parent))}{options}",
            f"  2. git checkout -b submission/{submission_name}",
            f"  3. git add {shlex.quote(str(folder))} && git commit -m 'Submission: {submission_name}'",
            "  4. git push -u origin HEAD, then open a pull request on GitHub.",
            "     The 'validate submissions' check runs on it; once merged, the site rebuilds itself.",
        ]
    )
