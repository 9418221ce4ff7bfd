"""Small filesystem helpers shared by the engine, the asset cache and the pages grader writes."""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Any

#: folders that are never part of a submission (caches, environments, version control), wherever they stand
SKIP_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".pytest_cache", ".venv", "venv"})


def force_rmtree(path: Path) -> None:
    """Remove ``path`` even where a sandboxed job left read-only files or folders (chmod 000 and kin)."""

    def fix(func: Any, p: str, _exc: Any) -> None:
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
            func(p)

    if path.exists():
        shutil.rmtree(path, onerror=fix)


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> Path:
    """Write ``text`` to ``path`` so a reader sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path
