"""Registers ``sample-softmax``, the tiny exercise that ships with grader: what ``grader demo`` grades and
what ``grader new-exercise`` starts from.  The roadmap's exercises are a course of their own."""

from __future__ import annotations

from grader import hookimpl
from grader.authoring.scaffold import SAMPLE
from grader.registry import ExerciseRegistry

#: below every course, so a course may bring its own copy
RANK = -10


@hookimpl
def grader_register_exercises(registry: ExerciseRegistry) -> None:
    registry.source = "sample"
    registry.add_folder(SAMPLE / "exercise", reference=SAMPLE / "reference", rank=RANK)
