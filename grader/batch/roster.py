"""Finding what a class handed in: ``ROSTER/<student>/<exercise-id>/`` or an LMS-style zip of that.

A submission is whatever ``grader grade`` takes (a folder with solution.py, a .py file, a .zip) or a
notebook (``<exercise-id>.ipynb``).  Each gets a content hash, so a rerun can tell a resubmission from
work it already graded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from grader.engine.archives import ArchiveError, ArchiveLimits, safe_extract
from grader.errors import GraderError
from grader.fs import SKIP_DIRS, files_under

#: limits for a whole class archive (a single submission has its own, smaller ones)
MAX_ARCHIVE_ENTRIES = 50_000
MAX_ARCHIVE_FILE_BYTES = 50 * 1024 * 1024
MAX_ARCHIVE_TOTAL_BYTES = 4 * 1024**3
MAX_RATIO = 200
SUFFIXES = (".py", ".zip", ".ipynb")


@dataclass(frozen=True)
class Submission:
    """One student's work for one exercise, found in a roster."""

    student: str
    exercise_id: str
    path: Path
    digest: str
    submitted_at: str  # ISO 8601, UTC: the newest modification time among its files


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip(".") or "student"


def content_hash(path: Path) -> str:
    """sha256 over (relative name, bytes) of every file a grader would stage; stable across copies."""
    h = hashlib.sha256()
    files = [path] if path.is_file() else files_under(path, SKIP_DIRS)
    for file in files:
        rel = file.name if file == path else file.relative_to(path).as_posix()
        h.update(rel.encode() + b"\0")
        h.update(hashlib.sha256(file.read_bytes()).digest())
    return h.hexdigest()


def _mtime(path: Path) -> str:
    stamps = [path.stat().st_mtime] if path.is_file() else [p.stat().st_mtime for p in path.rglob("*") if p.is_file()]
    return datetime.fromtimestamp(max(stamps, default=0.0), UTC).isoformat(timespec="seconds")


def _exercise_of(entry: Path, known: set[str]) -> str | None:
    if entry.is_dir() and entry.name in known:
        return entry.name
    if entry.is_file() and entry.suffix in SUFFIXES and entry.stem in known:
        return entry.stem
    return None


def discover(roster: Path, known: set[str], only: set[str] | None = None) -> tuple[list[Submission], list[str]]:
    """Every submission under ``roster``, and a note for each entry that is not one.

    :param known: the registered exercise ids (anything else is reported, not graded)
    :param only: restrict to these exercise ids
    """
    if not roster.is_dir():
        raise GraderError(f"{roster} is not a folder (expected ROSTER/<student>/<exercise-id>/ or a .zip of it)")
    found: list[Submission] = []
    notes: list[str] = []
    folders: list[Path] = []
    for student_dir in sorted(p for p in roster.iterdir() if not p.name.startswith((".", "__"))):
        if not student_dir.is_dir() or student_dir.is_symlink():
            notes.append(f"{student_dir.name}: not a student folder, ignored")
        else:
            folders.append(student_dir)
    _refuse_collisions(folders, lambda p: safe_name(p.name), "student folders {} would be graded as one student, "
                       "{!r}: rename them so they differ in letters, digits, '-', '_' or '.'")
    for student_dir in folders:
        student = safe_name(student_dir.name)
        entries = []
        for entry in sorted(student_dir.iterdir()):
            if entry.name.startswith(".") or entry.is_symlink():
                continue
            exercise = _exercise_of(entry, known)
            if exercise is None:
                notes.append(f"{student_dir.name}/{entry.name}: not a known exercise id, ignored")
            elif not only or exercise in only:
                entries.append((entry, exercise))
        _refuse_collisions([e for e, _ in entries], lambda e: _exercise_of(e, known) or "",
                           f"{student_dir.name} hands in {{}} for the same exercise, {{!r}}: keep one of them")
        found += [Submission(student, ex, e, content_hash(e), _mtime(e)) for e, ex in entries]
    if not found:
        raise GraderError(f"no submissions found in {roster}: expected ROSTER/<student>/<exercise-id>/ "
                          f"(known exercises: {', '.join(sorted(known)) or 'none'})")
    return found, notes


def _refuse_collisions(paths: list[Path], key: Callable[[Path], str], message: str) -> None:
    """Refuse, naming them, paths that would be graded under one name (two students merged into one)."""
    groups: dict[str, list[str]] = {}
    for path in paths:
        groups.setdefault(key(path), []).append(path.name)
    for name, members in groups.items():
        if len(members) > 1:
            raise GraderError(message.format(" and ".join(repr(m) for m in members), name))


def extract_class_archive(archive: Path, dest_root: Path) -> Path:
    """Unpack an LMS export into ``dest_root/.roster`` safely and return that folder.

    Refused: absolute or ``..`` paths (zip-slip), links, too many entries, oversized members or
    totals (counted while reading, never trusted from headers), suspicious compression ratios.
    The archive is unpacked next to its final place and renamed in, so a kill leaves no half roster.
    """
    dest_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".roster-", dir=dest_root))
    limits = ArchiveLimits(MAX_ARCHIVE_ENTRIES, MAX_ARCHIVE_FILE_BYTES, MAX_ARCHIVE_TOTAL_BYTES, MAX_RATIO)
    try:
        try:  # keep the LMS's times: late penalties use them
            safe_extract(archive, tmp, limits, keep_times=True)
        except ArchiveError as exc:
            raise GraderError(str(exc)) from None
        final = dest_root / ".roster"
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def roster_root(folder: Path, known: set[str]) -> Path:
    """The folder whose children are students: exports often wrap them in one or two top folders."""
    for _ in range(3):
        if any(_exercise_of(entry, known) for student in folder.iterdir() if student.is_dir()
               for entry in student.iterdir()):
            return folder
        entries = [p for p in folder.iterdir() if p.name not in SKIP_DIRS and p.name != "__MACOSX"]
        if len(entries) != 1 or not entries[0].is_dir():
            break
        folder = entries[0]
    return folder
