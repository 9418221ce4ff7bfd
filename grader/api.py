"""Library entry points; the CLI is a thin layer over these."""

from __future__ import annotations

import shutil
from pathlib import Path

from grader.config import Settings
from grader.engine.core import grade as _grade
from grader.errors import GraderError
from grader.fs import PYCACHE, files_under
from grader.models import GradeResult
from grader.plugins import Registries, make_plugin_manager


def load(extra_plugins: tuple[object, ...] = ()) -> Registries:
    """Build a plugin manager and collect everything plugins register."""
    return Registries.collect(make_plugin_manager(extra=extra_plugins))


def start(registries: Registries, exercise_id: str, dest: Path) -> list[Path]:
    """Copy the student stub of ``exercise_id`` into ``dest``; refuses to overwrite files."""
    exercise = registries.exercises.get(exercise_id)
    sources = files_under(exercise.stub_dir, PYCACHE)
    clashes = [dest / p.relative_to(exercise.stub_dir) for p in sources
               if (dest / p.relative_to(exercise.stub_dir)).exists()]
    if clashes:
        raise GraderError(f"{clashes[0]} already exists; choose another folder or move it away")
    written = []
    for src in sources:
        target = dest / src.relative_to(exercise.stub_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, target)
        written.append(target)
    return written


def grade(registries: Registries, exercise_id: str, submission: Path, settings: Settings,
          public_only: bool = False, out_dir: Path | None = None) -> GradeResult:
    """Grade one submission; with ``out_dir``, write every reporter's file there."""
    exercise = registries.exercises.get(exercise_id)
    if not submission.exists():
        raise GraderError(f"{submission} does not exist")
    result = _grade(exercise, submission, settings, registries, public_only=public_only, out_dir=out_dir)
    if out_dir is not None:
        write_reports(registries, result, out_dir)
    registries.pm.hook.grader_graded(result=result)
    return result


def write_reports(registries: Registries, result: GradeResult, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [reporter.write(result, out_dir) for reporter in registries.reporters]
