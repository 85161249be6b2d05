"""The package's layout keeps data flowing one way: `paloma` never imports the baselines' training code except
in the commands that run it, and the baselines use only `paloma`'s public modules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from conftest import REPO_ROOT

PALOMA = REPO_ROOT / "paloma"
BASELINES = REPO_ROOT / "baselines" / "paloma_baselines"
# The commands that run training: the only places `paloma` may reach into `paloma_baselines`.
RUNS_BASELINES = {"paloma/commands/baselines.py", "paloma/commands/train.py", "paloma/demo/pipeline.py"}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside functions (lazy imports are imports too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def files(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*.py"))


def test_paloma_reaches_the_baselines_only_from_the_commands_that_run_them() -> None:
    offenders = [
        str(path.relative_to(REPO_ROOT))
        for path in files(PALOMA)
        if any(name.split(".")[0] in ("paloma_baselines", "baselines") for name in imported_modules(path))
    ]
    assert set(offenders) <= RUNS_BASELINES, offenders


def test_the_baselines_use_only_public_paloma_modules() -> None:
    private = {
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path in files(BASELINES)
        for name in imported_modules(path)
        if name.startswith("paloma.") and any(part.startswith("_") for part in name.split(".")[1:])
    }
    assert not private


def module_name(path: Path) -> str:
    parts = path.relative_to(BASELINES.parent if BASELINES in path.parents else REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of `paloma` and `paloma_baselines` it imports (a `from m import x` imports m,
    and m.x when that is a module)."""
    paths = files(PALOMA) + files(BASELINES)
    ours = {module_name(path) for path in paths}
    return {module_name(path): {name for name in imported_modules(path) if name in ours} for path in paths}


def test_no_import_cycle_between_paloma_and_the_baselines() -> None:
    """No chain of imports leads from a `paloma_baselines` module through `paloma` back into the baselines."""
    graph = import_graph()
    assert any(dep.startswith("paloma.") for deps in graph.values() for dep in deps)  # the graph is not empty
    for start in (module for module in graph if module.startswith("paloma_baselines")):
        seen, frontier = set(), [dep for dep in graph[start] if dep.startswith("paloma.")]
        while frontier:
            module = frontier.pop()
            if module in seen:
                continue
            seen.add(module)
            assert not module.startswith("paloma_baselines"), f"{start} → … → {module}"
            frontier.extend(graph.get(module, ()))


def packages() -> list[Path]:
    return sorted(init.parent for root in (PALOMA, BASELINES) for init in root.rglob("__init__.py"))


def test_each_package_maps_all_of_its_modules() -> None:
    """A reader opening a package's __init__ finds every one of its modules named there, with its job."""
    unmapped = {}
    for package in packages():
        doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
        words = set(re.findall(r"[A-Za-z_]\w*", doc))
        modules = [path.stem for path in package.glob("*.py") if path.stem != "__init__"]
        subpackages = [path.parent.name for path in package.glob("*/__init__.py")]
        missing = sorted(name for name in modules + subpackages if name not in words)
        if missing:
            unmapped[str(package.relative_to(REPO_ROOT))] = missing
    assert not unmapped


def test_the_architecture_page_names_every_stage_of_the_evaluator() -> None:
    page = (REPO_ROOT / "docs" / "architecture.md").read_text()
    modules = sorted(path.stem for path in (PALOMA / "eval").glob("*.py") if path.stem != "__init__")
    assert [name for name in modules if f"`{name}`" not in page] == []
