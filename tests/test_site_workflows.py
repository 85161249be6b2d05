"""The GitHub workflows, checked and dry-run locally: least privilege, SHA pins, path filters, and their steps.

Without GitHub, each job is run as far as it can be: `actions/checkout` is emulated by copying this checkout's
tracked files (the base branch) and a pull request's files, the install steps are skipped (this environment
already has paloma's dependencies; the base branch's code is put first on PYTHONPATH instead), and every
other `run:` script is executed by bash exactly as written, with GitHub's `-eo pipefail`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT
from leaderboard_factory import eval_output, metadata

from paloma.submissions.submit import submit

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
PINNED = re.compile(r"^[\w.-]+/[\w.-]+@[0-9a-f]{40}$")
RENDERS = ("submissions/**", "domains/**", "paloma/**", "site/**", "pyproject.toml")


def load(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps(workflow: dict):
    for job_name, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_name, step


@pytest.mark.parametrize("name", ["submissions.yml", "site.yml"])
def test_least_privilege_and_pinned_actions(name):
    workflow = load(name)
    assert workflow["permissions"] == {}, "no permissions unless a job asks"
    assert "pull_request_target" not in workflow["on"]
    text = (WORKFLOWS / name).read_text()
    for job_name, step in steps(workflow):
        if "uses" in step:
            assert PINNED.match(step["uses"]), f"{job_name}: {step['uses']} is not pinned by commit SHA"
            assert re.search(re.escape(step["uses"]) + r" # v\d", text), f"{step['uses']}: say which version"
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False
        assert "${{" not in step.get("run", ""), f"{job_name}: an expression inside a script invites injection"
    for job_name, job in workflow["jobs"].items():
        assert job.get("timeout-minutes"), job_name
        granted = {k: v for k, v in job["permissions"].items() if v != "read"}
        if job_name == "deploy":
            assert granted == {"pages": "write", "id-token": "write"}
            assert all("run" not in step for step in job["steps"]), "the deploy job runs no project code"
        else:
            assert granted == {} and job["permissions"] == {"contents": "read"}, job_name


def test_path_filters_cover_everything_that_renders():
    pull_request = load("submissions.yml")["on"]["pull_request"]["paths"]
    push = load("site.yml")["on"]["push"]["paths"]
    for paths in (pull_request, push):
        assert set(RENDERS) <= set(paths)


def test_pages_deploy_is_never_cancelled_midway():
    site = load("site.yml")
    assert site["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    assert site["jobs"]["deploy"]["needs"] == "build"


def test_validation_uses_the_base_code_and_only_the_pull_requests_submissions():
    job = load("submissions.yml")["jobs"]["validate"]
    base, pull = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert base["with"]["ref"] == "${{ github.event.pull_request.base.sha }}" and "path" not in base["with"]
    assert pull["with"]["ref"] == "${{ github.event.pull_request.head.sha }}"
    assert pull["with"]["sparse-checkout"] == "submissions" and pull["with"]["path"] == "pull-request"


def test_the_tests_job_runs_the_readmes_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    runs = [s["run"] for _, s in steps(load("submissions.yml")) if "run" in s]
    assert block[1] in runs


# ---- dry runs ---------------------------------------------------------------------------------------------


def _tracked_copy(target: Path) -> Path:
    """`actions/checkout` of this branch: its tracked files (plus uncommitted edits to them), nothing ignored."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        source = REPO_ROOT / rel
        if source.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / rel)
    return target


def _run_job(workflow: dict, job: str, workspace: Path, pull_request: Path | None = None) -> list[tuple[str, int, str]]:
    """Each step of a job in order: checkouts emulated, installs skipped, scripts run; stops at a failure."""
    env = {**os.environ, "PYTHONPATH": str(workspace), "HF_HUB_OFFLINE": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `paloma` and `pip` of this venv
    done = []
    for step in workflow["jobs"][job]["steps"]:
        name = step.get("name", step.get("uses", ""))
        uses = step.get("uses", "")
        if uses.startswith("actions/checkout@") and step.get("with", {}).get("path"):
            sparse = step["with"].get("sparse-checkout")
            shutil.copytree(pull_request / sparse, workspace / step["with"]["path"] / sparse, symlinks=True)
            done.append((name, 0, "emulated"))
        elif "uses" in step:
            done.append((name, 0, "not run locally"))
        elif "pip install" in step["run"]:
            done.append((name, 0, "skipped: dependencies are installed here"))
        else:
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                  cwd=workspace, env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
            done.append((name, proc.returncode, proc.stdout + proc.stderr))
            if proc.returncode:
                break
    return done


@pytest.fixture(scope="module")
def pull_request(tmp_path_factory) -> Path:
    """A pull request adding one valid submission to release paloma (all 546 domains, as `paloma submit` writes)."""
    root = tmp_path_factory.mktemp("pull-request")
    out = eval_output(root / "eval", REPO_ROOT / "domains" / "paloma.json", model="stranger", split="test")
    submit(out, metadata("stranger-1b"), root / "pr" / "submissions")
    return root / "pr"


@pytest.mark.slow
def test_submissions_workflow_passes_a_valid_pull_request(pull_request, tmp_path):
    base = _tracked_copy(tmp_path / "base")
    done = _run_job(load("submissions.yml"), "validate", base, pull_request)
    assert [code for _, code, _ in done] == [0] * len(done), done
    output = {name: text for name, _, text in done}
    assert (
        "1 submission(s) valid: 1 for paloma/test"
        in output["Validate every submission (each alone against its release manifest, and all together)"]
    )
    assert (base / "_site" / "models" / "stranger-1b.html").is_file()
    assert not (base / "pull-request").exists()


@pytest.mark.slow
def test_a_pull_request_cannot_pass_by_editing_the_validator(pull_request, tmp_path):
    """The pull request also replaces validate.py with one that accepts anything: the base's code still checks."""
    attack = tmp_path / "attack"
    shutil.copytree(pull_request, attack)
    (attack / "paloma" / "submissions").mkdir(parents=True)
    (attack / "paloma" / "submissions" / "validate.py").write_text("def validate(*a, **k):\n    return None\n")
    path = attack / "submissions" / "stranger-1b" / "submission.json"
    data = json.loads(path.read_text())
    data["aggregates"]["suite"]["macro_bpb"] = 0.01  # a better score than its sums give
    path.write_text(json.dumps(data))
    (attack / "submissions" / "stranger-1b" / "notes.json").symlink_to("/etc/hostname")
    base = _tracked_copy(tmp_path / "base")
    done = _run_job(load("submissions.yml"), "validate", base, attack)
    name, code, text = done[-1]
    assert name.startswith("Validate every submission") and code == 1
    assert "aggregates.suite.macro_bpb: claimed 0.01 but the sums give" in text
    assert "notes.json: is a symbolic link; links are not allowed in submissions" in text
    assert (base / "paloma" / "submissions" / "validate.py").read_text() == (
        REPO_ROOT / "paloma" / "submissions" / "validate.py"
    ).read_text()


@pytest.mark.slow
def test_site_workflow_builds_what_it_would_deploy(pull_request, tmp_path):
    base = _tracked_copy(tmp_path / "base")
    shutil.copytree(pull_request / "submissions" / "stranger-1b", base / "submissions" / "stranger-1b")
    done = _run_job(load("site.yml"), "build", base)
    assert [code for _, code, _ in done] == [0] * len(done), done
    assert (base / "_site" / "index.html").is_file() and (base / "_site" / ".paloma-site").is_file()
