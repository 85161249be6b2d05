"""Shared fixtures: run the CLI of *this* checkout in a subprocess, and locate repository paths."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def paloma_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that must import this checkout's `paloma`, offline."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    env.update(extra)
    return env


def run_paloma(*args: str, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m paloma ARGS` from this checkout; returns the completed process (text mode)."""
    proc = subprocess.run(
        [sys.executable, "-m", "paloma", *map(str, args)],
        capture_output=True,
        text=True,
        env=paloma_env(),
        **kwargs,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"paloma {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def paloma_cli():
    return run_paloma
