"""Registers exercises from the course folders named in ``$GRADER_EXERCISES`` (a student pack, a course repo).

``GRADER_EXERCISES`` holds one or more folders separated by ``os.pathsep`` (``:`` on Linux).  Each is
laid out like this project or a student pack from ``grader export-student``::

    FOLDER/exercises/<id>/exercise.toml, stub/, checks/public/ [, checks/hidden/]
    FOLDER/reference/<id>/solution.py      (an instructor's course)  or
    FOLDER/answers/<id>/solution.py        (a student pack: recorded answers, no reference code)

An id that another plugin already registered (the packaged copy of the same exercise) is left to it.
"""

from __future__ import annotations

import os
from pathlib import Path

from grader import hookimpl
from grader.registry import ExerciseRegistry

ENV = "GRADER_EXERCISES"


def folders() -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip()]


@hookimpl
def grader_register_exercises(registry: ExerciseRegistry) -> None:
    for root in folders():
        base = root / "exercises"
        if not base.is_dir():
            continue
        for folder in sorted(p for p in base.iterdir() if (p / "exercise.toml").is_file()):
            if folder.name in registry:
                continue
            reference = next((d for d in (root / "reference" / folder.name, root / "answers" / folder.name)
                              if (d / "solution.py").is_file()), None)
            registry.add_folder(folder, reference=reference)
