"""Where the package's data files live, in a wheel and in an editable checkout alike.

The wheel carries `domains/` (and other top-level data folders) under `paloma/_data/`; an editable
checkout has them at the repository root. Code asks here instead of guessing paths.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir(name: str) -> Path:
    """Return the folder of a shipped data folder (e.g. "domains"), in a wheel or a checkout."""
    for candidate in (PACKAGE_DIR / "_data" / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"paloma data folder {name!r} is missing from the installation")
