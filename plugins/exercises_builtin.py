"""Registers every exercise folder shipped with grader, through the same hook as third parties."""

from __future__ import annotations

from grader import hookimpl
from grader.paths import exercises_root, reference_root
from grader.registry import ExerciseRegistry


@hookimpl
def grader_register_exercises(registry: ExerciseRegistry) -> None:
    root = exercises_root()
    if not root.is_dir():
        return
    for folder in sorted(p for p in root.iterdir() if (p / "exercise.toml").is_file()):
        registry.add_folder(folder, reference=reference_root() / folder.name)
