"""Small faults of `paloma decon` found by trying it (issue 22, "Why" 4); the index-folder case is in cli_failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from paloma.decon import build_index
from tests.decon_data import make_paloma


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path: Path):
    """`paloma decon info X | head -3`: the closed pipe is not an error to report (it printed "Broken pipe")."""
    index = build_index(make_paloma(tmp_path / "paloma"), progress=False).save(tmp_path / "p.decon")
    child = subprocess.Popen(
        [sys.executable, "-m", "paloma", "decon", "info", str(index)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    child.stdout.close()  # the reader is gone before the first line is written
    stderr = child.stderr.read().decode()
    child.wait(timeout=120)
    assert "Broken pipe" not in stderr and "Traceback" not in stderr, stderr
    assert "error" not in stderr, stderr
