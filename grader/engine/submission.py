"""Turning what a student hands in into a clean, bounded, read-only copy for the sandbox."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from grader.engine.archives import ArchiveError, ArchiveLimits, safe_extract
from grader.fs import SKIP_DIRS

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_TOTAL_BYTES = 20 * 1024 * 1024
MAX_FILES = 200


@dataclass(frozen=True)
class Staged:
    """A staged submission: ``problem`` is a message the student can act on, or empty."""

    name: str
    path: Path
    problem: str = ""


def submission_name(source: Path) -> str:
    name = source.stem if source.is_file() else source.resolve().name
    return _clean(name) or "submission"


def _clean(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def result_names(sources: list[Path]) -> list[str]:
    """A distinct result name per submission: :func:`submission_name`, led by as many parent folders as it
    takes to tell same-named ones apart (``a/solution.py`` -> ``a-solution``), else numbered."""
    plain = [submission_name(source) for source in sources]
    names = list(plain)
    for name in dict.fromkeys(plain):
        group = [i for i, n in enumerate(plain) if n == name]
        parents = {i: [_clean(p.name) for p in sources[i].resolve().parents if p.name] for i in group}
        for depth in range(1, max(len(parents[i]) for i in group) + 1) if len(group) > 1 else ():
            tried = {i: "-".join([*reversed(parents[i][:depth]), name]) for i in group}
            if len(set(tried.values())) == len(group):
                names = [tried.get(i, n) for i, n in enumerate(names)]
                break
    seen: set[str] = set()
    for i, name in enumerate(names):  # the same submission given twice, or a prefixed name met again
        number = 1
        while names[i] in seen:
            number += 1
            names[i] = f"{name}-{number}"
        seen.add(names[i])
    return names


def _source_problem(rel: str, data: bytes) -> str:
    """Why Python could not even read ``rel`` (not UTF-8, NUL bytes), said with a place to look; or ""."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (f"{rel} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                "save it with UTF-8 encoding")
    if b"\0" in data:  # Python refuses the whole file, without a line number
        at = data.index(b"\0")
        line = data.count(b"\n", 0, at) + 1
        column = at - (data.rfind(b"\n", 0, at) + 1) + 1
        return (f"{rel} contains a NUL byte (line {line}, column {column}), which Python cannot read; "
                "delete it, or save the file again as plain UTF-8 text")
    return ""


def _unzip(archive: Path, dest: Path) -> str:
    """Extract ``archive`` into ``dest`` within the submission limits; return a problem or ""."""
    try:
        safe_extract(archive, dest, ArchiveLimits(MAX_FILES, MAX_FILE_BYTES, MAX_TOTAL_BYTES))
    except ArchiveError as exc:
        return str(exc)
    return ""


def _single_root(folder: Path) -> Path:
    """An archive of one folder (``alice/solution.py``) is graded from inside that folder."""
    entries = [p for p in folder.iterdir() if p.name not in SKIP_DIRS and p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and not (folder / "solution.py").exists():
        return entries[0]
    return folder


def regular_files(folder: Path, skip: frozenset[str] | set[str] = SKIP_DIRS) -> tuple[list[tuple[str, Path]], str]:
    """(relative name, path) of every file under ``folder``, sorted, skipping ``skip`` folders; or a problem
    naming the first symbolic link (never followed) or special file.  Shared by staging and `grader submit`."""
    files: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for d in dirnames:
            if (here / d).is_symlink():
                return [], f"{(here / d).relative_to(folder).as_posix()} is a symbolic link; submit regular files only"
        for f in sorted(filenames):
            path = here / f
            rel = path.relative_to(folder).as_posix()  # also the name inside a zip
            if path.is_symlink():
                return [], f"{rel} is a symbolic link (to {os.readlink(path)}); submit regular files only"
            if not path.is_file():
                return [], f"{rel} is not a regular file"
            files.append((rel, path))
    return files, ""


def _collect(source: Path) -> tuple[list[tuple[str, Path]], str]:
    """List (relative name, path) of the files to stage, or a problem."""
    if source.is_symlink():
        return [], f"{source.name} is a symbolic link; submit the file itself"
    if source.is_file():
        if source.suffix != ".py":
            return [], f"{source.name} is not a .py file; submit solution.py, a folder or a .zip holding it"
        return [("solution.py", source)], ""
    if not source.is_dir():
        return [], f"{source} does not exist"
    files, problem = regular_files(source)
    if problem:
        return [], problem
    if not any(rel == "solution.py" for rel, _ in files):
        return [], f"no solution.py in {source.name}/: the exercise is graded from solution.py"
    return files, ""


def _size_problem(files: list[tuple[str, Path]]) -> str:
    """Why ``files`` are too many or too large to accept, or ``""``."""
    if len(files) > MAX_FILES:
        return f"the submission has {len(files)} files; at most {MAX_FILES} are accepted"
    total = 0
    for rel, path in files:
        size = path.stat().st_size
        total += size
        if size > MAX_FILE_BYTES:
            return f"{rel} is {size / 1e6:.1f} MB; files may be at most {MAX_FILE_BYTES // 10**6} MB"
        if total > MAX_TOTAL_BYTES:
            return f"the submission is over {MAX_TOTAL_BYTES // 10**6} MB in all"
    return ""


def stage(source: Path, dest: Path) -> Staged:
    """Copy ``source`` (a folder with solution.py, or one .py file) into ``dest``, checking limits."""
    name = submission_name(source)
    if source.suffix == ".zip" and source.is_file() and not source.is_symlink():
        unpacked = dest.parent / f"{dest.name}-unzipped"
        unpacked.mkdir(parents=True)
        problem = _unzip(source, unpacked)
        if problem:
            dest.mkdir(parents=True, mode=0o755)
            return Staged(name=name, path=dest, problem=problem)
        source = _single_root(unpacked)
    from grader.engine import notebook  # a .ipynb (or a folder with one) becomes solution.py from its code cells

    if notebook.applies(source):
        source, problem = notebook.materialize(source, dest.parent / f"{dest.name}-notebook")
        if problem:
            dest.mkdir(parents=True, mode=0o755)
            return Staged(name=name, path=dest, problem=problem)
    files, problem = _collect(source)
    problem = problem or _size_problem(files)
    dest.mkdir(parents=True, mode=0o755)
    for rel, path in files if not problem else []:
        data = path.read_bytes()
        if rel.endswith(".py"):
            problem = _source_problem(rel, data)
            if problem:
                break
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.write_bytes(data)
        os.chmod(target, 0o644)
    if problem:
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True, mode=0o755)
    return Staged(name=name, path=dest, problem=problem)
