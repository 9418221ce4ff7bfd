"""Commands for exercise authors: ``new-exercise``, ``check-exercise``, ``exercise-schema``."""

from __future__ import annotations

import functools
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from grader.exercise_spec import LEVELS


@click.command("new-exercise")
@click.argument("exercise_id", metavar="ID")
@click.option("--level", type=click.Choice(LEVELS), required=True, help="Where it sits in the roadmap.")
@click.option("--points", type=click.IntRange(min=3), required=True,
              help="Total points, at least 3 (split over two public checks and a hidden one).")
@click.option("--title", help="One-line title (default: the id in words).")
@click.option("--course", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
              help="The course folder: exercises/, reference/ and tests/curriculum/ are written under it.")
def new_exercise(exercise_id: str, level: str, points: int, title: str | None, course: Path) -> None:
    """Scaffold exercise ID: toml, teaching stub, reference, checks, wrong solutions; it already grades.

    \b
    Then:  GRADER_EXERCISES=COURSE grader check-exercise ID --discrimination
    """
    from grader.authoring.scaffold import new_exercise as scaffold

    for path in scaffold(course, exercise_id, level, points, title):
        click.echo(f"  created {path}")
    click.echo(f"Next: GRADER_EXERCISES={course} grader check-exercise {exercise_id} --discrimination")


@click.command("check-exercise")
@click.argument("exercise_id", metavar="ID")
@click.option("--discrimination", is_flag=True,
              help="Also grade the reference (must score 100 %), the stub (0 %), every wrong solution "
                   "(each must lose the checks its `loses` names) and every right solution (full marks on "
                   "the checks its `keeps` names, or on all).")
@click.option("--sandbox", metavar="NAME", help="Sandbox backend for the discrimination run.")
@click.option("--only", "only", metavar="NAME", multiple=True,
              help="Grade only these wrong or right solutions (wrong_x, right_y).")
def check_exercise(exercise_id: str, discrimination: bool, sandbox: str | None, only: tuple[str, ...]) -> None:
    """Check exercise ID against the authoring contract, without grading (unless --discrimination).

    Reports problems with markers, points, visibility, layout and kept solutions; exit code 1 if any.
    """
    from grader import api
    from grader.config import Settings

    registries = api.load()
    problems = _static_problems(registries, exercise_id)
    for line in problems:
        click.secho(f"  ✘ {line}", fg="red")
    if problems:
        sys.exit(1)
    exercise = registries.exercises.get(exercise_id)
    click.secho(f"  ✔ {exercise_id}: layout, markers ({exercise.points:g} points), wrong and right solutions",
                fg="green")
    if not discrimination:
        return
    with tempfile.TemporaryDirectory(prefix="grader-check-exercise-") as work:
        settings = Settings.load({"work_dir": Path(work) / "jobs", "sandbox": sandbox})
        failed = _discriminate(registries, exercise, settings, Path(work), set(only))
    sys.exit(1 if failed else 0)


def _static_problems(registries: Any, exercise_id: str) -> list[str]:
    from grader.authoring import discrimination
    from grader.errors import GraderError
    from grader.exercise_spec import leaderboard_problems, static_checks

    try:
        exercise = registries.exercises.get(exercise_id)
    except GraderError as exc:
        return [str(exc)]
    problems = []
    if not (exercise.stub_dir / "solution.py").is_file():
        problems.append(f"{exercise.stub_dir}/solution.py is missing")
    if exercise.reference_dir is None:
        problems.append("no reference solution (reference/<id>/solution.py beside exercises/<id>/)")
    checks, marker_problems = static_checks(exercise.checks_dir)
    problems += marker_problems
    for check in checks:
        text = check.file.read_text(encoding="utf-8")
        if not check.hidden and 'visibility("message-only")' in text:
            problems.append(f"{check.file.name}: message-only checks belong under checks/hidden/")
    if not any(not c.hidden for c in checks):
        problems.append("no public check: students could check nothing before submitting")
    problems += leaderboard_problems(exercise.checks_dir, exercise.leaderboard)
    try:
        wrongs = discrimination.wrong_solutions(discrimination.curriculum_dir(exercise))
        rights = discrimination.right_solutions(discrimination.curriculum_dir(exercise))
    except GraderError as exc:
        return [*problems, str(exc)]
    problems += discrimination.unknown_losses(exercise, wrongs)
    problems += discrimination.unknown_losses(exercise, rights)
    problems += discrimination.coverage_problems(exercise, wrongs) if wrongs else [
        f"no wrong solutions in {discrimination.curriculum_dir(exercise)}"]
    return problems


def _discriminate(registries: Any, exercise: Any, settings: Any, work: Path, only: set[str]) -> bool:
    from grader.authoring import discrimination

    folder = discrimination.curriculum_dir(exercise)
    runs: list[Callable[[], discrimination.Outcome]] = [] if only else [
        lambda: discrimination.grade_reference(registries, exercise, settings),
        lambda: discrimination.grade_stub(registries, exercise, settings)]
    runs += [functools.partial(discrimination.grade_wrong, registries, exercise, w, settings, work)
             for w in discrimination.wrong_solutions(folder) if not only or w.name in only]
    runs += [functools.partial(discrimination.grade_right, registries, exercise, r, settings, work)
             for r in discrimination.right_solutions(folder) if not only or r.name in only]
    failed = False
    total = 0.0
    for run in runs:
        outcome = run()
        total += outcome.seconds
        mark, color = ("✔", "green") if outcome.ok else ("✘", "red")
        click.secho(f"  {mark} {outcome.label:<40} {outcome.score:g}/{outcome.max_score:g}  {outcome.seconds:5.1f} s",
                    fg=color)
        for problem in outcome.problems:
            click.echo(f"      {problem}")
        failed |= not outcome.ok
    click.echo(f"  {len(runs)} graded in {total:.1f} s")
    return failed


@click.command("exercise-schema")
@click.option("--markdown", is_flag=True, help="The field table of docs/authoring-exercises.md instead.")
def exercise_schema(markdown: bool) -> None:
    """Print the JSON Schema of exercise.toml (for editors), or its field table."""
    from grader.exercise_spec import json_schema, markdown_table

    click.echo(markdown_table() if markdown else json.dumps(json_schema(), indent=2))


@click.command("export-course", short_help="Build the instructor course (with references) as a folder and wheel.")
@click.argument("dest", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--exercise", "exercises", multiple=True, metavar="ID", help="Only this exercise (repeatable).")
@click.option("--wheel", "wheel_dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
              help="Also build it as an installable wheel in DIR.")
def export_course(dest: Path, exercises: tuple[str, ...], wheel_dir: Path | None) -> None:
    """Copy the instructor course to OUT: exercises with hidden checks and data, and their references.

    \b
    Graders install it beside grader:   pip install grader DIR/grader_course-*.whl
    Never give it to students: `grader export-student` builds theirs.
    """
    from grader import api
    from grader.authoring import course_dist
    from grader.errors import GraderError

    if dest.exists() and any(dest.iterdir()):
        raise GraderError(f"{dest} exists and is not empty; choose a new folder for the course")
    chosen = course_dist.course_exercises(api.load(), list(exercises))
    course_dist.copy_instructor_course(chosen, dest)
    click.echo(f"Instructor course: {dest} ({len(chosen)} exercises, with references and hidden checks)")
    if wheel_dir is not None:
        wheel = course_dist.build_wheel(dest, wheel_dir, course_dist.INSTRUCTOR, course_dist.__version__,
                                        "The instructor course: exercises, hidden checks and references.")
        click.echo(f"Instructor course wheel: {wheel}")


COMMANDS = [new_exercise, check_exercise, exercise_schema, export_course]
