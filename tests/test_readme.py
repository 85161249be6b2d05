"""The README's first two commands are the demo and the tests (CI runs both lines exactly as written)."""

import re

from conftest import REPO_ROOT


def first_block() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(), re.S).group(1)
    return block.strip().splitlines()


def test_readme_starts_with_the_demo_then_the_tests():
    first, second = first_block()[:2]
    assert first.split("&&")[-1].strip() == "paloma demo"
    assert first.startswith("pip install torch==2.13.0 && ")
    # The second line installs what the tests need itself: a newcomer has no pytest yet.
    assert second.startswith('pip install -e ".[dev]" && ')
    assert second.endswith(" && python -m pytest -q")


def test_ci_runs_the_readme_commands_as_written():
    ci = (REPO_ROOT / ".ci" / "run").read_text()
    assert "readme_command 1" in ci and "readme_command 2" in ci
    # ... in a fresh virtual environment into which the script itself installs nothing.
    assert "python3 -m venv" in ci
    assert "pip install" not in ci.split("python3 -m venv", 1)[1]
