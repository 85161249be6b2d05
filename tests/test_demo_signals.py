"""`paloma demo` stopped by a signal while it trains: one clean line, the exit status of an interruption."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import paloma_env

pytestmark = pytest.mark.slow

# Runs the real CLI; the only change is *when* SIGTERM arrives: right after the trainer installs its handler,
# so the test does not depend on how long the suite and the first steps take.
SCRIPT = """
import os, signal, sys
real, sent = signal.signal, []
def installing(sig, handler):
    previous = real(sig, handler)
    if sig == signal.SIGTERM and callable(handler) and not sent:
        sent.append(sig)
        os.kill(os.getpid(), signal.SIGTERM)
    return previous
signal.signal = installing
from paloma.cli import main
sys.exit(main(["demo", "--quick", "--no-progress", "--output", sys.argv[1]]))
"""


def test_sigterm_during_training_stops_cleanly(tmp_path):
    """The bug: "stopped … run the same command again to resume", then a TypeError traceback (the demo
    moved the export of a run that had none)."""
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "demo")],
        capture_output=True,
        text=True,
        # W&B, where installed, would ask for a login in the trainer's tracker setup: not what this tests
        env=paloma_env(WANDB_MODE="disabled"),
        timeout=900,
    )
    assert proc.returncode == 130, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "stopped by SIGTERM after step" in proc.stderr and "run the same command again to resume" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "paloma demo: interrupted"
    assert "[3/7] train" in proc.stdout and "[4/7]" not in proc.stdout
