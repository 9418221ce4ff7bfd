"""What a check records while it runs, the per-check seed, and the files it hands to student code.

The grader's pytest plugin (:mod:`grader.checks.checking`) starts and reads the record; check files reach
these through :mod:`grader.testing`, their public import path.
"""

from __future__ import annotations

import random
from pathlib import Path, PurePosixPath
from typing import Any

#: the details of the check now running (one record; a list so it is never rebound)
DETAILS: list[dict[str, Any]] = []


def current() -> dict[str, Any]:
    if not DETAILS:
        DETAILS.append({})
    return DETAILS[-1]


def begin_details() -> dict[str, Any]:
    """Start a fresh details record (the grader's pytest plugin calls this per check)."""
    DETAILS.clear()
    DETAILS.append({})
    return DETAILS[-1]


def record(key: str, value: Any) -> None:
    """Attach JSON-able structured data to the current check (shown in results.json and the report).

    A list of numbers under ``series/<name>`` is drawn as a curve in the HTML report.
    """
    current()[key] = value


def seed_everything(seed: int) -> None:
    """Seed python, numpy (if imported) and torch (if imported) in the trusted process."""
    import sys

    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


class JobFiles:
    """The ``job_files`` fixture: files a check hands to the student's code, and a folder both sides write.

    ``in/`` is read-only inside the sandbox, so a submission cannot change the data it is graded on;
    ``shared/`` is writable by both (a Unix socket the student's server listens on, files the student's
    code writes for the check to read).  Paths given to student code are the paths *it* sees.
    """

    def __init__(self, root: Path, mount: str | None) -> None:
        self.root = root
        self._mount = mount  # where the sandbox shows ``root``; None: at its host path

    @property
    def isolated(self) -> bool:
        """Whether the sandbox enforces ``in/`` as read-only (the weak ``process`` backend cannot)."""
        return self._mount is not None

    def _inside(self, host: Path) -> str:
        if self._mount is None:
            return str(host)
        return str(PurePosixPath(self._mount) / host.relative_to(self.root).as_posix())

    def write(self, relpath: str, data: bytes | str, encoding: str = "utf-8") -> str:
        """Write ``data`` to ``in/<relpath>`` and return the path the student's code reads it at."""
        rel = PurePosixPath(relpath)
        if rel.is_absolute() or ".." in rel.parts or not rel.parts:
            raise ValueError(f"job_files.write needs a relative path inside the folder, got {relpath!r}")
        host = self.root / "in" / rel
        host.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        host.write_bytes(data.encode(encoding) if isinstance(data, str) else data)
        host.chmod(0o644)
        return self._inside(host)

    def path(self, relpath: str = "") -> str:
        """The student-side path of ``in/<relpath>`` (a folder written with :meth:`write`, say)."""
        return self._inside(self.root / "in" / relpath) if relpath else self._inside(self.root / "in")

    def shared_dir(self) -> tuple[Path, str]:
        """``(host path, student-side path)`` of the folder both sides may write."""
        host = self.root / "shared"
        return host, self._inside(host)
