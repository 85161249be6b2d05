"""Every subcommand fails cleanly on bad arguments: exit 2, one line naming the problem, nothing written.

The cases live in tests/cli_failures/<area>.py (see its package docstring); this module runs them all
in-process through `paloma.cli.main`, the function the `paloma` entry point calls, and a sample of them
through a real `python -m paloma` process to show the two agree.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

import cli_failures
import pytest
from cli_failures import Case
from conftest import run_paloma
from fixtures import NON_ASCII, build_model, pydoc_paragraphs, train_tokenizer, write_release

from paloma.cli import main


def _all_cases() -> list[Case]:
    cases: list[Case] = []
    for info in sorted(pkgutil.iter_modules(cli_failures.__path__), key=lambda m: m.name):
        cases += importlib.import_module(f"cli_failures.{info.name}").CASES
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases


CASES = _all_cases()


@pytest.fixture(scope="session")
def world(tmp_path_factory) -> dict[str, Path]:
    """A tiny model with its tokenizer and a small Paloma-layout release, shared read-only by all cases."""
    root = tmp_path_factory.mktemp("failure-world")
    tokenizer = train_tokenizer(root / "model")
    build_model("llama", len(tokenizer), root / "model", max_positions=64)
    paragraphs = pydoc_paragraphs()
    for split in ("test", "val"):
        write_release(
            root / "data",
            {
                ("c4_en", None): paragraphs[:6] + NON_ASCII[:2],
                ("m2d2_s2orc", "Physics"): paragraphs[6:9],
                ("m2d2_s2orc", "Mathematics"): paragraphs[9:12],
            },
            split=split,
        )
    return {"model": root / "model", "data": root / "data", "root": root}


def _snapshot(*folders: Path) -> dict[str, tuple[int, int]]:
    """Every path below `folders` with its size and modification time: any write shows up as a change."""
    state = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            for name in dirnames + filenames:
                path = Path(dirpath, name)
                stat = path.lstat()
                state[str(path)] = (stat.st_size if name in filenames else 0, stat.st_mtime_ns)
    return state


def _argv(case: Case, world: dict[str, Path], tmp: Path) -> list[str]:
    values = {"tmp": tmp, "model": world["model"], "data": world["data"]}
    return [part.format(**values) for part in case.argv]


def _prefix(argv: list[str]) -> str:
    """`paloma CMD` for a known command, else the bare program name's `paloma:`."""
    from paloma.cli import build_parser

    known = build_parser()._subparsers._group_actions[0].choices
    return f"paloma {argv[0]}: " if argv and argv[0] in known else "paloma: "


def _check_one_line(err: str, argv: list[str], case: Case) -> str:
    lines = err.strip().splitlines()
    assert "Traceback" not in err, err
    assert len(lines) == 1, f"expected one stderr line, got {len(lines)}:\n{err}"
    line = lines[0]
    assert line.startswith(_prefix(argv)) or line.startswith(_prefix(argv)[:-2] + " "), line
    assert ": error: " in line, line
    assert case.expect in line, f"{case.expect!r} not in {line!r}"
    return line


def _prepared(case: Case, world: dict[str, Path], tmp: Path) -> tuple[list[str], dict]:
    tmp.mkdir(parents=True, exist_ok=True)
    if case.setup is not None:
        case.setup(tmp)
    return _argv(case, world, tmp), _snapshot(tmp, world["root"])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_invocation_fails_cleanly(case: Case, world, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    argv, before = _prepared(case, world, tmp_path / "case")
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse exits by itself
        code = exit_.code
    captured = capsys.readouterr()
    assert code == 2, f"exit {code}\nstdout: {captured.out}\nstderr: {captured.err}"
    _check_one_line(captured.err, argv, case)
    assert _snapshot(tmp_path / "case", world["root"]) == before, "the failed command created or changed files"


def test_the_table_covers_every_subcommand():
    from paloma.cli import COMMANDS

    missing = set(COMMANDS) - {c.argv[0] for c in CASES}
    assert not missing, f"no failure case for: {sorted(missing)}"
    assert len(CASES) >= 40


def test_each_subcommand_is_found_in_the_module_that_registers_it():
    """`paloma CMD` imports only CMD's module, so the map of commands to modules must be exact."""
    import argparse
    import importlib

    from paloma.cli import COMMAND_MODULES, COMMANDS

    registered = {}
    for module_name in COMMAND_MODULES:
        subparsers = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(module_name).register(subparsers)
        registered.update(dict.fromkeys(subparsers.choices, module_name))
    assert registered == COMMANDS


SAMPLE = [c for c in CASES if c.id in {"unknown-option", "demo-output-under-dev-null"}]


@pytest.mark.parametrize("case", SAMPLE, ids=[c.id for c in SAMPLE])
def test_the_real_entry_point_agrees(case: Case, world, tmp_path):
    argv, before = _prepared(case, world, tmp_path / "case")
    proc = run_paloma(*argv, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    _check_one_line(proc.stderr, argv, case)
    assert _snapshot(tmp_path / "case", world["root"]) == before
