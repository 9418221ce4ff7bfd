"""Registers the course of a source checkout (``exercises/`` and ``reference/`` beside the package).

A developer's editable install grades the roadmap's exercises from the repository's folders.  An installed
grader wheel ships no course: the course is a distribution of its own (``grader export-course``,
``grader export-student``), registered through the same hook by its entry point.
"""

from __future__ import annotations

from grader import hookimpl
from grader.paths import exercises_root, reference_root
from grader.registry import ExerciseRegistry

#: a developer's checkout wins over installed course wheels (an instructor's is 1, a student's 0)
RANK = 2


@hookimpl
def grader_register_exercises(registry: ExerciseRegistry) -> None:
    root = exercises_root()
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if (p / "exercise.toml").is_file()):
        registry.add_folder(folder, reference=reference_root() / folder.name, rank=RANK)
