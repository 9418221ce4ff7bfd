"""Registers exercises from the course folders named in ``$GRADER_EXERCISES`` (a student pack, a course repo).

``GRADER_EXERCISES`` holds one or more folders separated by ``os.pathsep`` (``:`` on Linux).  Each is
laid out like this project or a student pack from ``grader export-student``::

    FOLDER/exercises/<id>/exercise.toml, stub/, checks/public/ [, checks/hidden/]
    FOLDER/reference/<id>/solution.py      (an instructor's course)  or
    FOLDER/answers/<id>/solution.py        (a student pack: recorded answers, no reference code)

A folder the user names is their choice: its copy of an exercise wins over an installed one (``grader
list`` says where each exercise comes from, and which copies are hidden).
"""

from __future__ import annotations

import os
from pathlib import Path

from grader import hookimpl
from grader.registry import ExerciseRegistry

ENV = "GRADER_EXERCISES"
#: above any installed course (see ExerciseRegistry.add)
RANK = 10


def folders() -> list[Path]:
    return [Path(p).expanduser() for p in os.environ.get(ENV, "").split(os.pathsep) if p.strip()]


@hookimpl
def grader_register_exercises(registry: ExerciseRegistry) -> None:
    for rank, root in enumerate(reversed(folders())):  # the first folder named wins over later ones
        registry.source = f"{ENV} {root}"
        registry.add_course(root, rank=RANK + rank)
