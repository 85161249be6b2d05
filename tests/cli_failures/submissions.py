"""Failure cases of `submit`, `submissions validate|schema`, `site build` and `release manifest`.

Every output location of the wrong kind, and every bad argument, is refused before any submission, result or
document is read (the snapshot check of the table proves nothing was written).
"""

from __future__ import annotations

import json
from pathlib import Path

from cli_failures import Case


def _file(name: str, text: str = "not a folder\n"):
    def setup(tmp: Path) -> None:
        (tmp / name).write_text(text)

    return setup


def _results(tmp: Path) -> None:
    """A `paloma eval` output folder (its content is never read in these cases: the arguments fail first)."""
    (tmp / "run").mkdir()
    (tmp / "run" / "results.json").write_text("{}\n")


def _results_and_yaml_alias(tmp: Path) -> None:
    _results(tmp)
    (tmp / "meta.yaml").write_text("a: &x [1, 2]\nb: *x\n")


def _results_and_file(tmp: Path) -> None:
    _results(tmp)
    (tmp / "subs").write_text("a file where the submissions folder goes\n")


def _submissions(tmp: Path) -> None:
    (tmp / "subs").mkdir()


def _submissions_and_site(tmp: Path) -> None:
    _submissions(tmp)
    (tmp / "site").mkdir()
    (tmp / "site" / "index.html").write_text("my own homepage\n")


def _bad_registry(tmp: Path) -> None:
    _submissions(tmp)
    (tmp / "reg.json").write_text("{not json")


def _bad_manifest(tmp: Path) -> None:
    _submissions(tmp)
    (tmp / "m.json").write_text(json.dumps({"format": "something else"}))


SUBMIT = ("submit", "{tmp}/run", "--name", "m", "--submissions", "{tmp}/subs")
VALIDATE = ("submissions", "validate")
BUILD = ("site", "build", "--submissions", "{tmp}/subs")
MANIFEST = ("release", "manifest", "--data", "{data}", "--split", "val")

CASES = [
    # paloma submit
    Case(
        "submit-no-results",
        ("submit", "{tmp}/nowhere", "--name", "m", "--submissions", "{tmp}/subs"),
        "no such file (expected a `paloma eval` output folder)",
    ),
    Case("submit-submissions-is-a-file", SUBMIT, "is a file; the output here is a folder", _results_and_file),
    Case(
        "submit-submissions-under-dev-null",
        ("submit", "{tmp}/run", "--submissions", "/dev/null/subs"),
        "is not a folder",
        _results,
    ),
    Case(
        "submit-submissions-inside-results",
        ("submit", "{tmp}/run", "--submissions", "{tmp}/run/subs"),
        "lies inside the input folder",
        _results,
    ),
    Case(
        "submit-negative-training-tokens",
        (*SUBMIT, "--training-tokens", "-5"),
        "argument --training-tokens: must be ≥ 1, got -5",
        _results,
    ),
    Case(
        "submit-nan-lr-fraction",
        (*SUBMIT, "--lr-schedule-fraction", "nan"),
        "argument --lr-schedule-fraction: must be a finite number",
        _results,
    ),
    Case(
        "submit-lr-fraction-above-one",
        (*SUBMIT, "--lr-schedule-fraction", "1.5"),
        "argument --lr-schedule-fraction: must be a finite number with 0 < x ≤ 1",
        _results,
    ),
    Case("submit-negative-step", (*SUBMIT, "--step", "-1"), "argument --step: must be ≥ 0, got -1", _results),
    Case("submit-link-without-url", (*SUBMIT, "--link", "paper"), "argument --link: expected LABEL=URL", _results),
    Case("submit-missing-metadata", (*SUBMIT, "--metadata", "{tmp}/meta.yaml"), "meta.yaml: no such file", _results),
    Case(
        "submit-yaml-anchor",
        (*SUBMIT, "--metadata", "{tmp}/meta.yaml"),
        "meta.yaml:1: YAML an anchor (x): write metadata plainly, without & or *",
        _results_and_yaml_alias,
    ),
    Case(
        "submit-parameters-from-a-folder-without-weights",
        (*SUBMIT, "--parameters-from", "{tmp}/run"),
        "/run: no *.safetensors file in the folder",
        _results,
    ),
    # paloma submissions validate | check-pr | schema
    Case(
        "check-pr-not-a-repository",
        ("submissions", "check-pr", "--base", "main", "--head", "pr", "--repo", "{tmp}"),
        "fatal: not a git repository",
    ),
    Case("validate-no-such-path", (*VALIDATE, "{tmp}/nowhere"), "nowhere: no such file or folder"),
    Case(
        "validate-missing-registry",
        (*VALIDATE, "{tmp}/subs", "--registry", "{tmp}/nope.json"),
        "nope.json: no such registry file",
        _submissions,
    ),
    Case(
        "validate-registry-not-json",
        (*VALIDATE, "{tmp}/subs", "--registry", "{tmp}/reg.json"),
        "reg.json: not a JSON registry",
        _bad_registry,
    ),
    Case(
        "validate-missing-manifest",
        (*VALIDATE, "{tmp}/subs", "--manifest", "{tmp}/nope.json"),
        "nope.json: no such manifest file",
        _submissions,
    ),
    Case(
        "validate-not-a-manifest",
        (*VALIDATE, "{tmp}/subs", "--manifest", "{tmp}/m.json"),
        'm.json: not a release manifest (expected "format": "paloma-release-manifest/1")',
        _bad_manifest,
    ),
    Case("schema-output-is-a-folder", ("submissions", "schema", "--output", "{tmp}"), "is a folder; the output here"),
    Case(
        "schema-output-under-a-file",
        ("submissions", "schema", "--output", "{tmp}/f/v1.json"),
        "is not a folder",
        _file("f"),
    ),
    Case("schema-output-under-dev-null", ("submissions", "schema", "--output", "/dev/null/v1.json"), "is not a folder"),
    Case("schema-extra-argument", ("submissions", "schema", "extra"), "unrecognized arguments: extra"),
    # paloma site build
    Case(
        "site-no-submissions",
        ("site", "build", "--submissions", "{tmp}/nowhere", "--output", "{tmp}/site"),
        "nowhere: no such file or folder",
    ),
    Case(
        "site-output-is-a-file",
        (*BUILD, "--output", "{tmp}/f"),
        "is a file; the output here is a folder",
        lambda tmp: (_submissions(tmp), _file("f")(tmp)),
    ),
    Case(
        "site-output-not-a-site",
        (*BUILD, "--output", "{tmp}/site"),
        "exists and is not a paloma site",
        _submissions_and_site,
    ),
    Case(
        "site-output-inside-submissions",
        (*BUILD, "--output", "{tmp}/subs/site"),
        "lies inside the input folder",
        _submissions,
    ),
    Case("site-output-is-the-submissions", (*BUILD, "--output", "{tmp}/subs"), "is also an input", _submissions),
    Case("site-bad-split", (*BUILD, "--output", "{tmp}/site", "--split", "train"), "argument --split: invalid choice"),
    Case("site-missing-output", BUILD, "the following arguments are required: --output"),
    # paloma release manifest
    Case(
        "manifest-no-data",
        ("release", "manifest", "--data", "{tmp}/nowhere", "--split", "val", "--output", "{tmp}/m.json"),
        "no such folder, and not a hub id",
    ),
    Case(
        "manifest-bad-split",
        ("release", "manifest", "--data", "{data}", "--split", "train", "--output", "{tmp}/m.json"),
        "argument --split: invalid choice: 'train'",
    ),
    Case("manifest-output-is-a-folder", (*MANIFEST, "--output", "{tmp}"), "is a folder; the output here is a file"),
    Case("manifest-output-inside-data", (*MANIFEST, "--output", "{data}/m.json"), "lies inside the input folder"),
    Case(
        "manifest-unknown-registry",
        (*MANIFEST, "--registry", "nope", "--output", "{tmp}/m.json"),
        "no registry named 'nope'",
    ),
    Case(
        "manifest-missing-tokenizer",
        (*MANIFEST, "--tokenizer", "{tmp}/tok", "--output", "{tmp}/m.json"),
        "tok: no such folder",
    ),
    Case("manifest-missing-output", MANIFEST, "the following arguments are required: --output"),
]
