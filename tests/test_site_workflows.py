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


@pytest.mark.parametrize("name", ["submissions.yml", "site.yml", "tests.yml"])
def test_least_privilege_and_pinned_actions(name):
    workflow = load(name)
    assert workflow["permissions"] == {}, "no permissions unless a job asks"
    assert "secrets." not in (WORKFLOWS / name).read_text(), "no secret is used by any workflow"
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
    pull_request = load("submissions.yml")["on"]["pull_request_target"]["paths"]
    push = load("site.yml")["on"]["push"]["paths"]
    for paths in (pull_request, push):
        assert set(RENDERS) <= set(paths)


def test_pages_deploy_is_never_cancelled_midway():
    site = load("site.yml")
    assert site["concurrency"] == {"group": "pages", "cancel-in-progress": False}
    assert site["jobs"]["deploy"]["needs"] == "build"


def test_the_check_runs_the_base_branchs_workflow_and_code_and_reads_the_pull_request_as_data():
    """`pull_request_target` runs this file as the base branch has it (a pull request editing it changes nothing);
    the only checkout is the base's, installed before the pull request's commit is fetched, and after the fetch
    no step installs, imports or runs a file: only `git`, `paloma` (the base's), `rm`, `tar` and `test`."""
    workflow = load("submissions.yml")
    assert set(workflow["on"]) == {"pull_request_target"}
    job = workflow["jobs"]["validate"]
    (checkout,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["ref"] == "${{ github.event.pull_request.base.sha }}" and "path" not in checkout["with"]
    names = [s.get("name", "") for s in job["steps"]]
    fetch = next(i for i, n in enumerate(names) if n.startswith("Fetch the pull request's commit"))
    assert any("pip install ." in s.get("run", "") for s in job["steps"][:fetch])
    for step in job["steps"][fetch:]:
        assert "uses" not in step
        for line in filter(None, (x.strip() for x in step["run"].splitlines())):
            assert line.split()[0] in {"git", "paloma", "rm", "test"}, line
    assert set(job["steps"][fetch]["env"].values()) == {
        "${{ github.event.pull_request.number }}",
        "${{ github.event.pull_request.head.sha }}",
    }


def test_codeowners_review_what_checks_renders_and_publishes():
    owners = {line.split()[0] for line in (REPO_ROOT / ".github" / "CODEOWNERS").read_text().splitlines()
              if line.strip() and not line.startswith("#")}  # fmt: skip
    assert {"/.github/", "/paloma/", "/domains/", "/site/"} <= owners


def test_the_tests_job_runs_the_readmes_test_command():
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    runs = [s["run"] for _, s in steps(load("tests.yml")) if "run" in s]
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


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def _github(root: Path, pull_request: Path, base_extra: Path | None = None) -> tuple[Path, dict]:
    """A stand-in for GitHub: `origin` holds this checkout's tracked files on main (plus `base_extra`'s files)
    and the pull request's files on top of them as refs/pull/1/head; the workspace is the base's checkout."""
    origin = _tracked_copy(root / "origin")
    if base_extra is not None:
        shutil.copytree(base_extra, origin, dirs_exist_ok=True, symlinks=True)
    _git(origin, "init", "-q", "-b", "main")
    _git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    base = _git(origin, "rev-parse", "HEAD")
    _git(origin, "checkout", "-q", "-b", "pr")
    shutil.copytree(pull_request, origin, dirs_exist_ok=True, symlinks=True)
    for gone in (pull_request / ".deleted").read_text().split() if (pull_request / ".deleted").exists() else ():
        (origin / gone).unlink()
    (origin / ".deleted").unlink(missing_ok=True)
    _git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A")
    _git(origin, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "pull request")
    head = _git(origin, "rev-parse", "HEAD")
    _git(origin, "update-ref", "refs/pull/1/head", head)
    _git(origin, "checkout", "-q", "main")
    _git(root, "clone", "-q", str(origin), "workspace")
    return root / "workspace", {
        "${{ github.event.pull_request.number }}": "1",
        "${{ github.event.pull_request.head.sha }}": head,
        "${{ github.event.pull_request.base.sha }}": base,
    }


def _run_job(workflow: dict, job: str, workspace: Path, event: dict | None = None) -> list[tuple[str, int, str]]:
    """Each step of a job in order: the checkout is the workspace, installs skipped, scripts run with their
    `env:` (event fields filled in); stops at a failure."""
    env = {**os.environ, "PYTHONPATH": str(workspace), "HF_HUB_OFFLINE": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `paloma` and `pip` of this venv
    done = []
    for step in workflow["jobs"][job]["steps"]:
        name = step.get("name", step.get("uses", ""))
        if "uses" in step:
            done.append((name, 0, "not run locally"))
        elif "pip install" in step["run"]:
            done.append((name, 0, "skipped: dependencies are installed here"))
        else:
            step_env = {k: (event or {}).get(v, v) for k, v in step.get("env", {}).items()}
            proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                                  cwd=workspace, env={**env, **step_env}, capture_output=True, text=True,
                                  timeout=600)  # fmt: skip
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


CHECK = "The pull request adds one submission folder and changes nothing else"
VALIDATE = "Validate every submission (each alone against its release manifest, and all together)"


@pytest.mark.slow
def test_submissions_workflow_passes_a_valid_pull_request(pull_request, tmp_path):
    workspace, event = _github(tmp_path, pull_request)
    done = _run_job(load("submissions.yml"), "validate", workspace, event)
    assert [code for _, code, _ in done] == [0] * len(done), done
    output = {name: text for name, _, text in done}
    assert output[CHECK].strip() == "pull request adds submission stranger-1b"
    assert "1 submission(s) valid: 1 for paloma/test" in output[VALIDATE]
    assert (workspace / "_site" / "models" / "stranger-1b.html").is_file()


@pytest.mark.slow
def test_a_pull_request_cannot_pass_by_editing_the_validator_or_the_workflow(pull_request, tmp_path):
    """The pull request also replaces validate.py with one that accepts anything and the workflow with one that
    runs `true`: GitHub runs the base's workflow (pull_request_target), whose check refuses the pull request."""
    attack = tmp_path / "attack"
    shutil.copytree(pull_request, attack)
    (attack / "paloma" / "submissions").mkdir(parents=True)
    (attack / "paloma" / "submissions" / "validate.py").write_text("def validate(*a, **k):\n    return None\n")
    (attack / ".github" / "workflows").mkdir(parents=True)
    (attack / ".github" / "workflows" / "submissions.yml").write_text("on: pull_request\njobs: {}\n")
    workspace, event = _github(tmp_path, attack)
    done = _run_job(load("submissions.yml"), "validate", workspace, event)
    name, code, text = done[-1]
    assert name == CHECK and code == 1
    assert text.strip() == (
        "pull request: changes .github/workflows/submissions.yml, paloma/submissions/validate.py together with "
        "submissions/: a submission pull request adds one folder and nothing else"
    )
    assert (workspace / "paloma" / "submissions" / "validate.py").read_text() == (
        REPO_ROOT / "paloma" / "submissions" / "validate.py"
    ).read_text()


@pytest.mark.slow
def test_a_pull_request_cannot_edit_or_delete_an_accepted_entry(pull_request, tmp_path):
    accepted = tmp_path / "accepted"
    shutil.copytree(pull_request, accepted)
    edit = tmp_path / "edit"
    shutil.copytree(pull_request, edit)
    path = edit / "submissions" / "stranger-1b" / "submission.json"
    path.write_text(path.read_text().replace('"organisation": "Test Lab"', '"organisation": "Other Lab"'))
    workspace, event = _github(tmp_path / "a", edit, base_extra=accepted)
    name, code, text = _run_job(load("submissions.yml"), "validate", workspace, event)[-1]
    assert (name, code) == (CHECK, 1)
    assert text.strip() == (
        "pull request: edits submissions/stranger-1b/submission.json, part of an accepted submission: only "
        "maintainers correct or withdraw entries"
    )
    delete = tmp_path / "delete"
    delete.mkdir()
    (delete / ".deleted").write_text("submissions/stranger-1b/submission.json")
    workspace, event = _github(tmp_path / "b", delete, base_extra=accepted)
    name, code, text = _run_job(load("submissions.yml"), "validate", workspace, event)[-1]
    assert (name, code) == (CHECK, 1) and "pull request: deletes submissions/stranger-1b/submission.json" in text


@pytest.mark.slow
def test_a_renamed_copy_of_an_accepted_entry_is_the_one_refused(pull_request, tmp_path):
    """Named to sort first and dated earlier, the copy is still the later one: the base's entries come first."""
    copy = tmp_path / "copy" / "submissions" / "aaa-copy"
    shutil.copytree(pull_request / "submissions" / "stranger-1b", copy)
    data = json.loads((copy / "submission.json").read_text())
    data["name"], data["submitted"] = "aaa-copy", "2001-01-01"
    data["model"].update(display_name="Copycat", organisation="Copy Lab", model_id="copy/copycat")
    (copy / "submission.json").write_text(json.dumps(data))
    workspace, event = _github(tmp_path / "w", tmp_path / "copy", base_extra=pull_request)
    done = _run_job(load("submissions.yml"), "validate", workspace, event)
    name, code, text = done[-1]
    assert (name, code) == (VALIDATE, 1), done
    (line,) = [x for x in text.splitlines() if "per-domain sums" in x]
    assert line.startswith("submissions/aaa-copy/submission.json: results: its per-domain sums are those of "
                           "submissions/stranger-1b/submission.json")  # fmt: skip


@pytest.mark.slow
def test_site_workflow_builds_what_it_would_deploy(pull_request, tmp_path):
    base = _tracked_copy(tmp_path / "base")
    shutil.copytree(pull_request / "submissions" / "stranger-1b", base / "submissions" / "stranger-1b")
    done = _run_job(load("site.yml"), "build", base)
    assert [code for _, code, _ in done] == [0] * len(done), done
    assert (base / "_site" / "index.html").is_file() and (base / "_site" / ".paloma-site").is_file()


# ---- the pull-request rule, case by case --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "expect"),
    [
        ([("A", "submissions/new/submission.json"), ("A", "submissions/new/decon-report.json")], None),
        ([("M", "paloma/site/builder.py")], None),  # not a submission pull request: reviewed as code
        ([("A", "submissions/new/submission.json"), ("M", "submissions/old/submission.json")],
         "edits submissions/old/submission.json, part of an accepted submission"),
        ([("D", "submissions/old/submission.json")], "deletes submissions/old/submission.json"),
        ([("A", "submissions/old/extra.json")], "adds submissions/old/extra.json to old, an accepted submission"),
        ([("A", "submissions/a/submission.json"), ("A", "submissions/b/submission.json")],
         "adds 2 submission folders (a, b): one submission per pull request"),
        ([("A", "submissions/new/submission.json"), ("M", ".github/workflows/submissions.yml")],
         "changes .github/workflows/submissions.yml together with submissions/"),
        ([("M", "submissions/README.md")], "changes submissions/README.md, which is not inside a submission folder"),
        ([("M", "submissions/schema/v1.json")], "changes submissions/schema/v1.json, which is not inside"),
    ],
)  # fmt: skip
def test_a_submission_pull_request_adds_one_new_folder_and_nothing_else(changes, expect):
    from paloma.submissions.pull_request import Change, pull_request_problem

    problem = pull_request_problem([Change(*c) for c in changes], existing={"old"})
    assert (problem is None) if expect is None else (expect in problem), problem
