"""Turning what a student hands in into a clean, bounded, read-only copy for the sandbox."""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_TOTAL_BYTES = 20 * 1024 * 1024
MAX_FILES = 200
SKIP_DIRS = {"__pycache__", ".git", ".ipynb_checkpoints", ".pytest_cache", ".venv", "venv"}


@dataclass(frozen=True)
class Staged:
    """A staged submission: ``problem`` is a message the student can act on, or empty."""

    name: str
    path: Path
    problem: str = ""


def submission_name(source: Path) -> str:
    name = source.stem if source.is_file() else source.resolve().name
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name) or "submission"


def _utf8_problem(rel: str, data: bytes) -> str:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (f"{rel} is not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset {exc.start}); "
                "save it with UTF-8 encoding")
    return ""


def _unzip(archive: Path, dest: Path) -> str:
    """Extract ``archive`` into ``dest`` safely; return a problem or "".

    Refused: absolute or ``..`` paths (zip-slip), links, more than MAX_FILES entries, files or totals
    over the size limits (checked while reading, not trusted from the header), suspicious ratios.
    """
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        return f"{archive.name} is not a readable zip archive ({exc})"
    with zf:
        members = zf.infolist()
        if len(members) > MAX_FILES:
            return f"{archive.name} holds {len(members)} entries; at most {MAX_FILES} are accepted"
        total = 0
        for info in members:
            name = info.filename
            parts = PurePosixPath(name).parts
            if name.startswith(("/", "\\")) or ".." in parts or ":" in name or "\\" in name:
                return f"{archive.name} contains the unsafe path {name!r}; archives must hold relative paths only"
            if stat.S_ISLNK(info.external_attr >> 16):
                return f"{archive.name} contains a symbolic link ({name}); submit regular files only"
            if info.is_dir():
                continue
            if info.file_size > MAX_FILE_BYTES or (info.compress_size and info.file_size / info.compress_size > 200):
                return f"{name} in {archive.name} is too large once unpacked"
            target = dest.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, target.open("wb") as out:
                while chunk := src.read(1 << 16):
                    total += len(chunk)
                    if total > MAX_TOTAL_BYTES:
                        return f"{archive.name} unpacks to more than {MAX_TOTAL_BYTES // 10**6} MB"
                    out.write(chunk)
    return ""


def _single_root(folder: Path) -> Path:
    """An archive of one folder (``alice/solution.py``) is graded from inside that folder."""
    entries = [p for p in folder.iterdir() if p.name not in SKIP_DIRS and p.name != "__MACOSX"]
    if len(entries) == 1 and entries[0].is_dir() and not (folder / "solution.py").exists():
        return entries[0]
    return folder


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
    files: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(source, followlinks=False):
        here = Path(dirpath)
        for d in list(dirnames):
            if d in SKIP_DIRS:
                dirnames.remove(d)
            elif (here / d).is_symlink():
                return [], f"{(here / d).relative_to(source)} is a symbolic link; submit regular files only"
        for f in filenames:
            path = here / f
            rel = str(path.relative_to(source))
            if path.is_symlink():
                return [], f"{rel} is a symbolic link (to {os.readlink(path)}); submit regular files only"
            if not path.is_file():
                return [], f"{rel} is not a regular file"
            files.append((rel, path))
    if not any(rel == "solution.py" for rel, _ in files):
        return [], f"no solution.py in {source.name}/: the exercise is graded from solution.py"
    return files, ""


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
    from grader import notebook  # a .ipynb (or a folder with one) becomes solution.py from its code cells

    if notebook.applies(source):
        source, problem = notebook.materialize(source, dest.parent / f"{dest.name}-notebook")
        if problem:
            dest.mkdir(parents=True, mode=0o755)
            return Staged(name=name, path=dest, problem=problem)
    files, problem = _collect(source)
    if len(files) > MAX_FILES:
        problem = f"the submission has {len(files)} files; at most {MAX_FILES} are accepted"
    total = 0
    for rel, path in files if not problem else []:
        size = path.stat().st_size
        total += size
        if size > MAX_FILE_BYTES:
            problem = f"{rel} is {size / 1e6:.1f} MB; files may be at most {MAX_FILE_BYTES // 10**6} MB"
        elif total > MAX_TOTAL_BYTES:
            problem = f"the submission is over {MAX_TOTAL_BYTES // 10**6} MB in all"
        if problem:
            break
    dest.mkdir(parents=True, mode=0o755)
    for rel, path in files if not problem else []:
        data = path.read_bytes()
        if rel.endswith(".py"):
            problem = _utf8_problem(rel, data)
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
