"""The bounded dependencies of pyproject.toml: their lowest versions, and whether an environment has the newest.

pyproject.toml gives an upper bound to each fast-moving dependency that paloma relies on in detail
(transformers, huggingface_hub, datasets, accelerate, datatrove). CI tests both ends of every such range:

    python benchmarks/check_dependency_ranges.py lowest > lowest.txt    # name==lower-bound, for pip -c
    python benchmarks/check_dependency_ranges.py newest                 # exit 1 unless each is the newest

`newest` asks the package registry (`pip index versions`) for the newest release inside each range and compares
it with the installed version, so a suite run in this environment is known to have run on the newest versions
a user's fresh install can get today. `lowest` prints the lower bounds as pins for a second environment.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, requires, version

from packaging.requirements import Requirement
from packaging.version import Version


def bounded_requirements() -> list[Requirement]:
    """The core dependencies (no extra) with both a lower (>=) and an upper (<) bound, as installed paloma-eval
    declares them (an editable install of this checkout: its pyproject.toml)."""
    requirements = [Requirement(text) for text in requires("paloma-eval") or []]
    core = [r for r in requirements if r.marker is None]
    return [r for r in core if {s.operator for s in r.specifier} >= {">=", "<"}]


def lower_bound(requirement: Requirement) -> str:
    (low,) = [s.version for s in requirement.specifier if s.operator == ">="]
    return low


def newest_in_range(requirement: Requirement) -> Version:
    """The newest release the registry offers inside the range (pre-releases excluded)."""
    listing = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", requirement.name],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    match = re.search(r"Available versions: (.*)", listing)
    if not match:
        raise SystemExit(f"pip index versions {requirement.name}: no version list in its output")
    releases = [Version(v.strip()) for v in match.group(1).split(",")]
    return max(v for v in releases if not v.is_prerelease and requirement.specifier.contains(v))


def check_newest() -> int:
    stale = 0
    for requirement in bounded_requirements():
        try:
            installed = Version(version(requirement.name))
        except PackageNotFoundError:
            installed = None
        newest = newest_in_range(requirement)
        verdict = "newest" if installed == newest else "NOT the newest"
        stale += installed != newest
        print(f"{requirement.name:16} range {requirement.specifier}  installed {installed}  newest {newest}: {verdict}")
    return 1 if stale else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["lowest", "newest"])
    args = parser.parse_args()
    if args.what == "lowest":
        print("\n".join(f"{r.name}=={lower_bound(r)}" for r in bounded_requirements()))
        return 0
    return check_newest()


if __name__ == "__main__":
    sys.exit(main())
