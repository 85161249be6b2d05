"""Shared fixtures: run the CLI of *this* checkout in a subprocess, and locate repository paths."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/fixtures.py

REPO_ROOT = Path(__file__).resolve().parents[1]


def paloma_env(**extra: str) -> dict[str, str]:
    """Environment for a subprocess that must import this checkout's `paloma`, offline."""
    env = dict(os.environ)
    ours = [str(REPO_ROOT), str(REPO_ROOT / "baselines")]  # `paloma` and `paloma_baselines`
    env["PYTHONPATH"] = os.pathsep.join([*ours, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"})
    env.update(extra)
    return env


def run_paloma(*args: str, check: bool = False, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run `python -m paloma ARGS` from this checkout; returns the completed process (text mode)."""
    proc = subprocess.run(
        [sys.executable, "-m", "paloma", *map(str, args)],
        capture_output=True,
        text=True,
        env=paloma_env(**(env or {})),
        **kwargs,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"paloma {' '.join(map(str, args))} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture
def paloma_cli():
    return run_paloma


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    """A trained BPE tokenizer and three tiny models (GPT-NeoX, Llama, OLMo) sharing it; L = 16 fits."""
    from fixtures import build_model, train_tokenizer

    root = tmp_path_factory.mktemp("tiny")
    tokenizer = train_tokenizer(root / "tokenizer")
    models = {}
    for seed, kind in enumerate(("gpt_neox", "llama", "olmo")):
        folder = root / kind
        build_model(kind, len(tokenizer), folder, max_positions=64, seed=seed)
        tokenizer.save_pretrained(folder)
        models[kind] = folder
    return {"tokenizer": tokenizer, "models": models, "root": root}


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's headless chromium driven by Playwright (never a downloaded browser); skips where it is absent."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield browser
        browser.close()
