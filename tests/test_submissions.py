"""Submissions: `paloma submit` makes valid ones, and `paloma submissions validate` rejects each fault."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, run_paloma
from leaderboard_factory import eval_output, metadata, write_decon_report, write_tiny_registry

from paloma.errors import PalomaError
from paloma.submissions.protocol_check import BENCHMARK_PROTOCOL, protocol_differences
from paloma.submissions.schema import json_schema
from paloma.submissions.submit import submit
from paloma.submissions.validate import validate


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    return write_tiny_registry(tmp_path)


def make(tmp_path: Path, registry_file: Path, name: str, *, eval_kwargs=None, **meta) -> Path:
    """A submission folder made through the library entry point of `paloma submit`."""
    out = eval_output(tmp_path / f"eval-{name}", registry_file, model=name, **(eval_kwargs or {}))
    return submit(out, metadata(name, **meta), tmp_path / "submissions", registry_file)


def edit(path: Path, change) -> None:
    """Alter a submission file in place, as a hand-edited pull request would."""
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def problems(tmp_path: Path, registry_file: Path) -> list[str]:
    return [str(p) for p in validate([tmp_path / "submissions"], registry_file).problems]


def test_good_submissions_pass(tmp_path, registry_file):
    make(tmp_path, registry_file, "model-a")
    make(tmp_path, registry_file, "model-b", eval_kwargs={"quality": 0.8})
    make(tmp_path, registry_file, "own-vocab", eval_kwargs={"fixed_vocabulary": False}, fixed_vocabulary=False)
    report = validate([tmp_path / "submissions"], registry_file)
    assert report.problems == []
    assert sorted(x.submission.name for x in report.submissions) == ["model-a", "model-b", "own-vocab"]
    proc = run_paloma("submissions", "validate", tmp_path / "submissions", "--registry", registry_file)
    assert proc.returncode == 0, proc.stderr
    assert "3 submission(s) valid: 3 for tiny/val" in proc.stdout


def test_submission_carries_sums_and_claims_from_the_eval_output(tmp_path, registry_file):
    path = make(tmp_path, registry_file, "model-a")
    sub = json.loads(path.read_text())
    results = json.loads((tmp_path / "eval-model-a" / "results.json").read_text())
    assert sub["schema"] == "paloma-submission/1"
    assert sub["results"]["alpha"]["a2"]["bytes"] == results["sources"]["alpha"]["domains"]["a2"]["bytes"]
    assert sub["aggregates"]["suite"]["macro_bpb"] == results["suite"]["macro_bpb"]
    assert sub["model"]["parameters"] == 120_000_000 and sub["benchmark"] == {"release": "tiny", "split": "val"}
    assert sub["protocol"]["fingerprint"] == results["protocol"]["fingerprint"]


def test_tampered_aggregate_is_reported_with_both_values(tmp_path, registry_file):
    path = make(tmp_path, registry_file, "model-a")
    edit(path, lambda d: d["aggregates"]["sources"]["alpha"].update(macro_ppl=3.0))
    (message,) = problems(tmp_path, registry_file)
    assert "aggregates.sources.alpha.macro_ppl: claimed 3.0 but the sums give" in message


def test_changed_sum_no_longer_matches_the_claimed_aggregates(tmp_path, registry_file):
    path = make(tmp_path, registry_file, "model-a")
    edit(path, lambda d: d["results"]["beta"]["beta"].update(nll_sum=d["results"]["beta"]["beta"]["nll_sum"] / 2))
    found = problems(tmp_path, registry_file)
    assert any("aggregates.sources.beta.macro_bpb: claimed" in p for p in found)
    assert any("aggregates.suite.macro_bpb: claimed" in p for p in found)


def test_protocol_must_be_the_benchmarks(tmp_path, registry_file):
    path = make(tmp_path, registry_file, "short")
    edit(path, lambda d: d["protocol"].update(max_length=1024, prefix="bos"))
    found = problems(tmp_path, registry_file)
    assert any("protocol: protocol.max_length is 1024, the benchmark's is 2048" in p for p in found)
    assert any("protocol: protocol.prefix is 'bos', the benchmark's is 'eos'" in p for p in found)
    assert protocol_differences(BENCHMARK_PROTOCOL) == []
    assert protocol_differences({**BENCHMARK_PROTOCOL, "add_special_tokens": 0}) != []


def test_every_domain_present_and_none_unknown(tmp_path, registry_file):
    path = make(tmp_path, registry_file, "model-a")

    def damage(data):
        del data["results"]["alpha"]["a2"]
        data["results"]["alpha"]["a9"] = data["results"]["alpha"]["a1"]
        data["results"]["zeta"] = {"zeta": data["results"]["beta"]["beta"]}
        del data["results"]["delta"]

    edit(path, damage)
    found = problems(tmp_path, registry_file)
    assert any(p.endswith("results.alpha: 1 domain(s) missing: a2") for p in found)
    assert any(p.endswith("results.alpha.a9: unknown domain of this source") for p in found)
    assert any(p.endswith("results.zeta: unknown source in release 'tiny'") for p in found)
    assert any(p.endswith("results.delta: source of the release is missing") for p in found)


def test_private_source_is_optional(tmp_path, registry_file):
    """'hidden' is not redistributable: a submission without it is complete."""
    path = make(tmp_path, registry_file, "model-a")
    assert "hidden" not in json.loads(path.read_text())["results"]
    assert problems(tmp_path, registry_file) == []


def test_splits_are_checked_separately(tmp_path, registry_file):
    make(tmp_path, registry_file, "model-val")
    make(tmp_path, registry_file, "model-test", eval_kwargs={"split": "test"})
    assert problems(tmp_path, registry_file) == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("../evil", "is not a safe name"),
        ("Model A", "is not a safe name"),
        ("a/b", "is not a safe name"),
        ("a..b", "is not a safe name"),
        ("<script>", "is not a safe name"),
    ],
)
def test_unsafe_names_are_refused(tmp_path, registry_file, name, fragment):
    path = make(tmp_path, registry_file, "model-a")
    edit(path, lambda d: d.update(name=name))
    found = problems(tmp_path, registry_file)
    assert any(f"submission.json: name: {name!r} {fragment}" in p for p in found), found


def test_markup_in_display_names_and_script_links_are_refused(tmp_path, registry_file):
    path = make(tmp_path, registry_file, "model-a")

    def inject(data):
        data["model"]["display_name"] = "<img src=x onerror=alert(1)>"
        data["model"]["organisation"] = "Lab & Co"
        data["model"]["links"] = [{"label": "x", "url": "javascript:alert(1)"}]

    edit(path, inject)
    found = problems(tmp_path, registry_file)
    assert any("model.display_name" in p and "holds markup characters" in p for p in found)
    assert any("model.organisation" in p and "holds markup characters" in p for p in found)
    assert any("model.links.0.url" in p and "is not an https URL" in p for p in found)


def test_schema_faults_name_the_field(tmp_path, registry_file):
    path = make(tmp_path, registry_file, "model-a")

    def damage(data):
        del data["model"]["training_tokens"]
        data["model"]["parameters"] = "many"
        data["benchmark"]["split"] = "train"
        data["colour"] = "blue"

    edit(path, damage)
    found = problems(tmp_path, registry_file)
    assert any(p.endswith("model.training_tokens: Field required") for p in found)
    assert any("model.parameters: Input should be a valid integer" in p for p in found)
    assert any("benchmark.split: Input should be 'val' or 'test'" in p for p in found)
    assert any(p.endswith("colour: unknown field (not in schema paloma-submission/1)") for p in found)


def test_invalid_json_names_the_line(tmp_path, registry_file):
    folder = tmp_path / "submissions" / "broken"
    folder.mkdir(parents=True)
    (folder / "submission.json").write_text('{\n "name": "broken",\n oops\n}')
    (found,) = problems(tmp_path, registry_file)
    assert found.startswith(f"{folder / 'submission.json'}:3: invalid JSON")


def test_folder_must_be_named_after_the_submission_and_names_unique(tmp_path, registry_file):
    path = make(tmp_path, registry_file, "model-a")
    copy = tmp_path / "submissions" / "model-b" / "submission.json"
    copy.parent.mkdir()
    copy.write_text(path.read_text())
    found = problems(tmp_path, registry_file)
    assert any("the folder is named 'model-b' but the submission is 'model-a'" in p for p in found)
    assert any("name: 'model-a' is also used by" in p for p in found)


def test_decontamination_needs_evidence(tmp_path, registry_file):
    report = write_decon_report(tmp_path / "decon", registry_file)
    real = json.loads(report.read_text())
    checksum = real["index"]["checksum"]
    path = make(tmp_path, registry_file, "model-a", decontamination={"report": str(report)})
    sub = json.loads(path.read_text())
    assert sub["guidelines"]["decontamination"] == {
        "met": True,
        "index_checksum": checksum,
        "report": "decon-report.json",
        "removed_fraction": 0.5,
    }
    assert (path.parent / "decon-report.json").read_bytes() == report.read_bytes()
    report_ = validate([tmp_path / "submissions"], registry_file)
    # without a release manifest, the report's data cannot be checked: evidence, but not the "D" badge
    assert report_.problems == [] and report_.submissions[0].decon_evidence == "unverified"
    copied = path.parent / "decon-report.json"
    copied.write_text(
        json.dumps({**real, "dry_run": True, "index": {**real["index"], "checksum": "blake2b-256:" + "cd" * 32}})
    )
    found = problems(tmp_path, registry_file)
    assert any(f"the report cites index blake2b-256:{'cd' * 32}, not {checksum}" in p for p in found)
    assert any("the report is of a dry run, which removes nothing" in p for p in found)
    copied.unlink()
    (found,) = problems(tmp_path, registry_file)
    assert "guidelines.decontamination.report" in found and "does not exist" in found
    edit(path, lambda d: d["guidelines"]["decontamination"].update(index_checksum="abc", report="../x.json"))
    found = problems(tmp_path, registry_file)
    assert any("index_checksum must be" in p for p in found)


def test_checkpoints_of_a_run(tmp_path, registry_file):
    for step, fraction in ((1000, 0.5), (2000, 1.0)):
        make(
            tmp_path,
            registry_file,
            f"run-x-{step}",
            eval_kwargs={"quality": 2.0 - fraction},
            training_tokens=step * 1_000_000,
            checkpoint={"run": "run-x", "step": step, "lr_schedule_fraction": fraction},
        )
    report = validate([tmp_path / "submissions"], registry_file)
    assert report.problems == []
    finals = {x.submission.name: x.submission.is_final for x in report.submissions}
    assert finals == {"run-x-1000": False, "run-x-2000": True}
    path = tmp_path / "submissions" / "run-x-1000" / "submission.json"
    edit(path, lambda d: d["checkpoint"].update(lr_schedule_fraction=1.5))
    assert any("checkpoint.lr_schedule_fraction" in p for p in problems(tmp_path, registry_file))


def test_cli_reports_each_problem_and_exits_non_zero(tmp_path, registry_file):
    path = make(tmp_path, registry_file, "model-a")
    edit(path, lambda d: d["protocol"].update(window="packed"))
    proc = run_paloma("submissions", "validate", tmp_path / "submissions", "--registry", registry_file)
    assert proc.returncode == 1
    assert "protocol.window is 'packed', the benchmark's is 'disjoint-right-aligned'" in proc.stderr
    assert "protocol.fingerprint is" in proc.stderr  # recomputed from the fields, so it no longer matches
    assert "2 problem(s) in 1 for tiny/val" in proc.stderr


def test_submit_cli_with_yaml_and_flags(tmp_path, registry_file):
    out = eval_output(tmp_path / "eval", registry_file, model="cli-model")
    meta = metadata("cli-model")
    del meta["training_tokens"]
    (tmp_path / "meta.yaml").write_text(yaml.safe_dump(meta))
    args = ["submit", out, "--metadata", tmp_path / "meta.yaml", "--submissions", tmp_path / "subs"]
    args += ["--registry", registry_file]
    proc = run_paloma(*args)
    assert proc.returncode == 2 and "model.training_tokens: Input should be a valid integer" in proc.stderr
    assert not (tmp_path / "subs").exists()  # nothing half-written
    proc = run_paloma(
        *args, "--training-tokens", "3000000000", "--display-name", "CLI Model", "--link", "paper=https://a.b/c"
    )
    assert proc.returncode == 0, proc.stderr
    assert "git checkout -b submission/cli-model" in proc.stdout and "open a pull request" in proc.stdout
    # the validation step works as printed: it names the registry this release needs
    step = next(line for line in proc.stdout.splitlines() if "paloma submissions validate" in line)
    assert step.strip() == f"1. paloma submissions validate {tmp_path / 'subs'} --registry {registry_file}"
    sub = json.loads((tmp_path / "subs" / "cli-model" / "submission.json").read_text())
    assert sub["model"]["display_name"] == "CLI Model" and sub["model"]["training_tokens"] == 3_000_000_000
    assert sub["model"]["links"] == [{"label": "paper", "url": "https://a.b/c"}]
    proc = run_paloma(*args, "--training-tokens", "3000000000")
    assert proc.returncode == 2 and "exists already" in proc.stderr


def test_submit_refuses_a_protocol_other_than_the_benchmarks(tmp_path, registry_file):
    out = eval_output(tmp_path / "eval", registry_file, model="short", protocol={"max_length": 1024})
    with pytest.raises(PalomaError, match=re.escape("protocol.max_length is 1024")):
        submit(out, metadata("short"), tmp_path / "submissions", registry_file)


def test_submit_refuses_what_validation_would_refuse(tmp_path, registry_file):
    make(tmp_path, registry_file, "model-a")
    out = eval_output(tmp_path / "eval-b", registry_file, model="model-b", skip={("alpha", "a3")})
    with pytest.raises(PalomaError, match=re.escape("results.alpha: 1 domain(s) missing: a3")):
        submit(out, metadata("model-b"), tmp_path / "submissions", registry_file)
    assert not (tmp_path / "submissions" / "model-b").exists()


def test_real_release_needs_all_546_public_domains(tmp_path):
    """Against the shipped Paloma registry: the 16 public sources, Pile and ICE optional."""
    registry = REPO_ROOT / "domains" / "paloma.json"
    out = eval_output(tmp_path / "eval", registry, model="full", split="test")  # the split Paloma's registry pins
    path = submit(out, metadata("full"), tmp_path / "submissions")
    sub = json.loads(path.read_text())
    assert sum(len(d) for d in sub["results"].values()) == 546
    assert validate([tmp_path / "submissions"]).problems == []
    edit(path, lambda d: d["results"]["m2d2_s2orc_unsplit"].pop("astro-ph"))
    found = [str(p) for p in validate([tmp_path / "submissions"]).problems]
    assert any("results.m2d2_s2orc_unsplit: 1 domain(s) missing: astro-ph" in p for p in found)


def test_published_json_schema_is_in_sync():
    published = json.loads((REPO_ROOT / "submissions" / "schema" / "v1.json").read_text())
    assert published == json_schema(), "regenerate: paloma submissions schema > submissions/schema/v1.json"


def test_release_protocol_overrides_come_from_the_registry(tmp_path):
    """A demo-like release evaluated with short windows declares it in its registry; Paloma's own does not."""
    raw = json.loads(write_tiny_registry(tmp_path).read_text())
    short = tmp_path / "short.json"
    short.write_text(json.dumps({**raw, "release": "short", "protocol": {"max_length": 128}}))
    out = eval_output(tmp_path / "eval", short, model="m", protocol={"max_length": 128})
    submit(out, metadata("m"), tmp_path / "submissions", short)
    assert validate([tmp_path / "submissions"], short).problems == []
    strict = tmp_path / "strict.json"  # a release may also pin fields the benchmark leaves open
    strict.write_text(json.dumps({**raw, "release": "short", "protocol": {"max_length": 128, "dtype": "bfloat16"}}))
    (found,) = validate([tmp_path / "submissions"], strict).problems
    assert str(found).endswith("protocol: protocol.dtype is 'float32', the benchmark's is 'bfloat16'")


def test_results_as_the_evaluator_writes_them(tmp_path, registry_file):
    """results.json may lack data.release (then metadata or 'paloma' names it), carry training tokens from
    the checkpoint's training record, and intervals with extra fields such as the bootstrap seed."""
    out = eval_output(tmp_path / "eval", registry_file, model="m", with_ci=True)
    results = json.loads((out / "results.json").read_text())
    del results["data"]["release"]
    results["model"]["training_tokens"] = 123_000_000
    for source in results["sources"].values():
        for domain in source["domains"].values():
            domain["ci"]["seed"] = 0
    (out / "results.json").write_text(json.dumps(results))
    meta = metadata("m", release="tiny")
    del meta["training_tokens"]
    path = submit(out, meta, tmp_path / "submissions", registry_file)
    sub = json.loads(path.read_text())
    assert sub["benchmark"]["release"] == "tiny" and sub["model"]["training_tokens"] == 123_000_000
    assert sub["results"]["alpha"]["a1"]["ci"]["seed"] == 0
