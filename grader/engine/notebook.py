"""Notebook submissions: the code cells of a ``.ipynb`` become ``solution.py``.

Accepted: a single ``.ipynb`` file, or a folder holding ``solution.ipynb`` (or exactly one notebook)
and no ``solution.py``.  IPython-only lines (``%magic``, ``!shell``) are kept as comments, so line
numbers in error messages still match the student's cells.  nbformat is imported only here.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

from grader.fs import SKIP_DIRS

MAX_NOTEBOOK_BYTES = 20 * 1024 * 1024


class NotebookError(Exception):
    """A notebook that cannot be read; the message is for the student."""


def applies(source: Path) -> bool:
    """Whether ``source`` is a notebook submission (rather than Python files)."""
    if source.is_symlink():
        return False
    if source.is_file():
        return source.suffix == ".ipynb"
    return source.is_dir() and not (source / "solution.py").exists() and _notebook_in(source) is not None


def _notebook_in(folder: Path) -> Path | None:
    if (folder / "solution.ipynb").is_file():
        return folder / "solution.ipynb"
    found = [p for p in folder.glob("*.ipynb") if p.is_file() and not p.is_symlink()]
    return found[0] if len(found) == 1 else None


def _line(text: str) -> str:
    stripped = text.lstrip()
    return f"# (notebook-only) {text}" if stripped.startswith(("%", "!")) else text


def _unreadable(path: Path, why: str) -> NotebookError:
    return NotebookError(f"{path.name} is not a readable Jupyter notebook ({why[:200]}); "
                         "open it in Jupyter and save it again, or submit solution.py")


def _read(path: Path) -> Any:
    """The notebook as nbformat version 4, or :class:`NotebookError` for anything else (even valid JSON)."""
    import nbformat

    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text)
    except (ValueError, OSError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _unreadable(path, first) from None
    if not isinstance(doc, dict) or "nbformat" not in doc:
        raise _unreadable(path, "it is JSON but not a notebook: it has no nbformat version")
    try:
        with warnings.catch_warnings():  # a missing cell id is nbformat's nag, not the student's problem
            warnings.simplefilter("ignore")
            return nbformat.reads(text, as_version=4)
    except (ValueError, TypeError, AttributeError, KeyError, nbformat.ValidationError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise _unreadable(path, first) from None


def _cell_source(path: Path, number: int, cell: Any) -> str:
    source = cell.get("source", "")
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    if not isinstance(source, str):
        raise _unreadable(path, f"code cell {number} has a source that is not text")
    return source


def to_source(path: Path) -> str:
    """The Python source of a notebook's code cells, in order; raises :class:`NotebookError`."""
    if path.stat().st_size > MAX_NOTEBOOK_BYTES:
        raise NotebookError(f"{path.name} is over {MAX_NOTEBOOK_BYTES // 10**6} MB")
    nb = _read(path)
    cells = nb.get("cells")
    if not isinstance(cells, list) or not all(isinstance(c, dict) for c in cells):
        raise _unreadable(path, "its cells are not a list of cells")
    code = [c for c in cells if c.get("cell_type") == "code"]
    if not code:
        raise NotebookError(f"{path.name} has no code cells; put your solution in code cells")
    parts = []
    for number, cell in enumerate(code, 1):
        source = _cell_source(path, number, cell)
        parts.append(f"# --- cell {number} ---\n" + "\n".join(_line(t) for t in source.splitlines()))
    return "\n\n".join(parts) + "\n"


def materialize(source: Path, folder: Path) -> tuple[Path, str]:
    """Write ``folder/solution.py`` from the notebook in ``source`` (plus a folder's other files).

    :returns: the folder to stage instead of ``source``, and a problem for the student or ``""``
    """
    notebook = source if source.is_file() else _notebook_in(source)
    if notebook is None:
        return source, f"no solution.py or notebook in {source.name}/"
    try:
        text = to_source(notebook)
    except NotebookError as exc:
        return source, str(exc)
    if source.is_dir():
        shutil.copytree(source, folder, symlinks=True, ignore=shutil.ignore_patterns(*SKIP_DIRS, "*.ipynb"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "solution.py").write_text(text, encoding="utf-8")
    return folder, ""
