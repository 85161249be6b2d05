"""What a submission pull request may change: one new folder under `submissions/`, and nothing else.

The check compares the pull request with its base as GitHub's "Files changed" does (from the merge base), using
git alone: the pull request's files are read as data, never run. A submission pull request that also edits
another entry, deletes one, adds to an existing folder, adds two folders, or touches code, workflows or
anything outside `submissions/<name>/` fails with one line. A pull request that changes no submission is not a
submission pull request: it passes here and is reviewed as code (CODEOWNERS).
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from paloma.errors import PalomaError

SUBMISSIONS = "submissions"
# Folders of submissions/ that are not submissions (the published schema, written by maintainers).
NOT_SUBMISSIONS = {"schema"}


@dataclass(frozen=True)
class Change:
    status: str  # git's letter: A added, M modified, D deleted, T type changed
    path: str


def _git(repo: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise PalomaError("git is not installed: the pull-request check compares commits with git") from None
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["failed"]
        fatal = next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[0])
        raise PalomaError(f"git {' '.join(args[:2])}: {fatal}")
    return proc.stdout


def changed_files(repo: str | Path, base: str, head: str) -> list[Change]:
    """Files the pull request changes relative to its merge base with `base` (renames as delete + add)."""
    out = _git(Path(repo), "diff", "--name-status", "--no-renames", "-z", f"{base}...{head}", "--")
    fields = out.split("\0")
    return [Change(fields[i], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]


def existing_folders(repo: str | Path, commit: str) -> set[str]:
    """Names of the folders under submissions/ at `commit` (accepted submissions)."""
    out = _git(Path(repo), "ls-tree", "-d", "--name-only", "-z", commit, f"{SUBMISSIONS}/")
    return {PurePosixPath(path).name for path in out.split("\0") if path}


def pull_request_problem(changes: list[Change], existing: set[str]) -> str | None:
    """The one reason this pull request is not "one new submission folder and nothing else" (None: it is)."""
    inside = [c for c in changes if PurePosixPath(c.path).parts[:1] == (SUBMISSIONS,)]
    if not inside:
        return None  # not a submission pull request: reviewed as code
    outside = sorted(c.path for c in changes if c not in inside)
    if outside:
        shown = ", ".join(outside[:3]) + (f" and {len(outside) - 3} more" if len(outside) > 3 else "")
        return f"changes {shown} together with submissions/: a submission pull request adds one folder and nothing else"
    for change in inside:
        parts = PurePosixPath(change.path).parts
        if len(parts) < 3 or parts[1] in NOT_SUBMISSIONS:
            return f"changes {change.path}, which is not inside a submission folder (submissions/<name>/…)"
        if change.status != "A":
            verb = "deletes" if change.status == "D" else "edits"
            return f"{verb} {change.path}, part of an accepted submission: only maintainers correct or withdraw entries"
        if parts[1] in existing:
            return f"adds {change.path} to {parts[1]}, an accepted submission: a new submission needs a new folder"
    folders = sorted({PurePosixPath(c.path).parts[1] for c in inside})
    if len(folders) > 1:
        return f"adds {len(folders)} submission folders ({', '.join(folders[:5])}): one submission per pull request"
    return None


def check_pull_request(repo: str | Path, base: str, head: str) -> tuple[list[Change], str | None]:
    """The changes of `head` against `base` in `repo`, and the problem with them (None: a valid submission PR)."""
    _git(Path(repo), "rev-parse", "--git-dir")  # "fatal: not a git repository" before anything else
    changes = changed_files(repo, base, head)
    merge_base = _git(Path(repo), "merge-base", base, head).strip()
    existing = existing_folders(repo, base) | existing_folders(repo, merge_base)
    return changes, pull_request_problem(changes, existing)
