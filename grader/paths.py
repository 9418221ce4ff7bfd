"""Where the packaged exercises, references and templates live (wheel or source checkout)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def data_root() -> Path:
    """The folder holding ``exercises/``, ``reference/`` and ``templates/``.

    A wheel carries them inside the package (``grader/_data``); a source checkout keeps them beside
    the package, at the project's top level.
    """
    packaged = PACKAGE_DIR / "_data"
    return packaged if packaged.is_dir() else PACKAGE_DIR.parent


def exercises_root() -> Path:
    return data_root() / "exercises"


def reference_root() -> Path:
    return data_root() / "reference"


def templates_root() -> Path:
    return data_root() / "templates"
