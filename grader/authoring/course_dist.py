"""The course as distributions of its own, apart from the engine: an instructor's and a student's.

Both are built from the same course folders and register through the exercise hook by entry point:

* the **instructor course** (``grader export-course``): exercises with hidden checks, references and
  hidden data;
* the **student course** (``grader export-student --wheel``): the student pack (stubs, public checks, the
  references' recorded answers), verified by :mod:`grader.authoring.leaks` before it is written.

A wheel is built offline from a generated project: ``<module>/_data/`` holds the course folder and
``<module>/__init__.py`` registers it.  When both are installed, the instructor's copy of an exercise
wins; a folder named in ``GRADER_EXERCISES`` wins over either (``grader list`` shows the source).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from grader import __version__
from grader.errors import GraderError
from grader.models import Exercise

INSTRUCTOR = ("grader-course", "grader_course", 1)
STUDENT = ("grader-course-student", "grader_course_student", 0)

PLUGIN = '''"""{summary}

Registered with grader by the entry point ``[project.entry-points.grader] {module} = "{module}"``.
"""

from __future__ import annotations

from pathlib import Path

from grader import hookimpl

ROOT = Path(__file__).resolve().parent / "_data"


@hookimpl
def grader_register_exercises(registry):
    registry.source = "{dist}"
    registry.add_course(ROOT, rank={rank})
'''

PYPROJECT = '''[build-system]
requires = ["setuptools>=77"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "{version}"
description = "{summary}"
requires-python = ">=3.11"
dependencies = ["grader>={core}"]

[project.entry-points.grader]
{module} = "{module}"

[tool.setuptools]
packages = ["{module}"]
include-package-data = false

[tool.setuptools.package-data]
"{module}" = ["_data/**/*"]
'''


def copy_instructor_course(exercises: list[Exercise], dest: Path) -> None:
    """``dest/exercises/<id>/`` (everything) and ``dest/reference/<id>/`` for each exercise."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for ex in exercises:
        if ex.reference_dir is None:
            raise GraderError(f"{ex.id} has no reference here, so it cannot go into an instructor course")
        shutil.copytree(ex.checks_dir.parent, dest / "exercises" / ex.id, ignore=ignore)
        shutil.copytree(ex.reference_dir, dest / "reference" / ex.id, ignore=ignore)


def build_wheel(course: Path, out: Path, kind: tuple[str, str, int], version: str, summary: str) -> Path:
    """Build the wheel of the course folder ``course`` into ``out`` (offline, no build isolation)."""
    dist, module, rank = kind
    with tempfile.TemporaryDirectory(prefix="grader-course-") as tmp:
        project = Path(tmp)
        package = project / module
        shutil.copytree(course, package / "_data", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        (package / "__init__.py").write_text(PLUGIN.format(summary=summary, module=module, dist=dist, rank=rank),
                                             encoding="utf-8")
        (project / "pyproject.toml").write_text(PYPROJECT.format(dist=dist, version=version, summary=summary,
                                                                 module=module, core=__version__), encoding="utf-8")
        out.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                               "--no-index", "-w", str(out), str(project)], capture_output=True, text=True,
                              timeout=900)
        if done.returncode != 0:
            raise GraderError(f"building the {dist} wheel failed: {(done.stderr or done.stdout).strip()[-500:]}")
    wheels = sorted(out.glob(f"{module}-{version}-*.whl"))
    if not wheels:
        raise GraderError(f"pip built no {dist} wheel in {out}")
    return wheels[-1]


def course_exercises(registries: object, ids: list[str]) -> list[Exercise]:
    """The exercises named, or every one that has a reference here except the core's sample."""
    reg = registries.exercises  # type: ignore[attr-defined]
    if ids:
        return [reg.get(i) for i in ids]
    return [e for e in reg.ordered() if e.source != "sample" and e.reference_dir is not None
            and (e.reference_dir / "solution.py").is_file() and not (e.reference_dir / "answers.json").exists()]
