"""The wheel carries everything a user needs: installed in a fresh virtual environment, outside the
checkout, `paloma domains` and `paloma eval` work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from fixtures import write_release


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Build the wheel, install it (without re-downloading dependencies) into a new venv."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", root / "dist", "."],
        cwd=REPO_ROOT, check=True,
    )  # fmt: skip
    (wheel,) = (root / "dist").glob("paloma_eval-*.whl")
    # The venv sees this environment's installed dependencies (torch, transformers, ...) through a plain path
    # entry, whose own .pth files (this checkout's editable install among them) are not processed; paloma
    # itself comes from the wheel.
    subprocess.run([sys.executable, "-m", "venv", root / "venv"], check=True)
    python = root / "venv" / "bin" / "python"
    new_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (Path(new_site) / "dependencies.pth").write_text("".join(f"{p}\n" for p in sorted(ours)))
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", wheel], check=True)
    return {"wheel": wheel, "bin": root / "venv" / "bin", "python": python, "cwd": root}


def run_installed(installed, *args):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HUB_OFFLINE"] = "1"
    return subprocess.run(
        [installed["bin"] / "paloma", *map(str, args)], capture_output=True, text=True, cwd=installed["cwd"], env=env
    )


@pytest.mark.slow
def test_wheel_ships_the_registry(installed):
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    assert "paloma/_data/domains/paloma.json" in names
    assert "paloma/_data/docs/maintainers.md" in names  # the site renders the maintainers' page from it
    assert {"paloma/eval/loop.py", "paloma/eval/hf_olmo.py", "paloma/commands/convert.py"} <= set(names)
    assert {"paloma/eval/live.py", "paloma/integrations/transformers.py"} <= set(names)
    assert {"paloma_baselines/train.py", "paloma_baselines/configs/c4.yaml"} <= set(names)
    where = subprocess.run(
        [installed["python"], "-c", "import paloma; print(paloma.__file__)"],
        capture_output=True, text=True, cwd=installed["cwd"], check=True,
    ).stdout  # fmt: skip
    assert str(REPO_ROOT) not in where  # the installed copy, not the checkout


@pytest.mark.slow
def test_wheel_claims_no_generic_import_name(installed):
    """`paloma` and one namespaced companion: no `baselines` (OpenAI's package of that name installs it too)."""
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}
    assert top_level == {"paloma", "paloma_baselines"}
    probe = "from paloma_baselines.config import available_configs; print(available_configs())"
    shipped = subprocess.run(
        [installed["python"], "-c", probe],
        capture_output=True, text=True, cwd=installed["cwd"], check=True,
    ).stdout  # fmt: skip
    assert "'c4'" in shipped and "'dolma'" in shipped  # the recipes travel inside the package


@pytest.mark.slow
def test_installed_paloma_domains(installed):
    proc = run_installed(installed, "domains", "--json")
    assert proc.returncode == 0, proc.stderr
    totals = json.loads(proc.stdout)["totals"]
    assert (totals["sources"], totals["domains"], totals["public_domains"]) == (18, 585, 546)


@pytest.mark.slow
def test_installed_paloma_eval(installed, tiny, tmp_path):
    data = write_release(tmp_path / "data", {("c4_en", None): ["Hello there.", "Another short document."]})
    proc = run_installed(
        installed, "eval", "--model", tiny["models"]["llama"], "--data", data, "--max-length", 16,
        "--output", tmp_path / "out", "--no-progress", "--no-cache",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["sources"]["c4_en"]["documents"] == 2 and results["sources"]["c4_en"]["macro_ppl"] > 1


EVALUATOR_PROBE = """
import json, sys
import paloma
from paloma import Evaluator
from paloma.integrations.transformers import PalomaCallback
from transformers import AutoModelForCausalLM
model = AutoModelForCausalLM.from_pretrained(sys.argv[1])
results = Evaluator(sys.argv[2], sys.argv[1], max_length=16, registry="none", cache_dir=None).evaluate(model)
print(json.dumps({"file": paloma.__file__, "scalars": results.scalars(), "callback": PalomaCallback.__name__}))
"""


@pytest.mark.slow
def test_installed_evaluator_scores_a_model_in_memory(installed, tiny, tmp_path):
    """`from paloma import Evaluator` (and the integrations) from the installed wheel, outside the checkout."""
    data = write_release(tmp_path / "data", {("c4_en", None): ["Hello there.", "Another short document."]})
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [installed["python"], "-c", EVALUATOR_PROBE, str(tiny["models"]["llama"]), str(data)],
        capture_output=True, text=True, cwd=installed["cwd"], env={**env, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert str(REPO_ROOT) not in found["file"] and found["callback"] == "PalomaCallback"
    assert found["scalars"]["paloma/c4_en/bpb"] > 0
