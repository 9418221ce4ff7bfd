"""Small filesystem helpers shared by the engine, the asset cache and the pages grader writes."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import IO, Any

#: folders that are never part of a submission (caches, environments, version control), wherever they stand
SKIP_DIRS = frozenset({"__pycache__", ".git", ".ipynb_checkpoints", ".pytest_cache", ".venv", "venv"})
#: only Python's byte-code caches: what the fingerprints of checks and references leave out
PYCACHE = frozenset({"__pycache__"})


def files_under(root: Path, skip: Collection[str] = SKIP_DIRS, suffixes: Collection[str] | None = None) -> list[Path]:
    """Every file below ``root``, sorted, without those under a folder named in ``skip`` (at any depth below
    ``root``; where ``root`` itself lives does not matter) and, given ``suffixes``, only those ending so."""
    skipped = frozenset(skip)
    return sorted(p for p in root.rglob("*") if p.is_file() and skipped.isdisjoint(p.relative_to(root).parts)
                  and (suffixes is None or p.suffix in suffixes))


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


class Lock:
    """An exclusive lock on a file (``flock``): one holder across processes and threads, released with
    :meth:`release` or when the holder's process ends, even by kill -9, so a crash never leaves it stale."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def acquire(self, wait: bool = True) -> bool:
        """Take the lock; with ``wait=False``, False at once when someone holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> Lock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
