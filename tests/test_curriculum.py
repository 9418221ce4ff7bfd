"""The curriculum self-test: reference 100 %, untouched stub 0 %, every wrong solution loses what it names,
every right solution (correct code written another way) keeps full marks.

Wrong solutions are graded only on the checks their ``loses`` names (see :mod:`grader.authoring.discrimination`);
the time each exercise takes is printed at the end of the run (also under pytest-xdist, which
scripts/test.sh uses for this file: every grading is a process of its own, so two cores grade two).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

import pytest

from grader import api
from grader.authoring import discrimination
from grader.config import Settings
from grader.paths import exercises_root

EXERCISES = sorted(p.name for p in exercises_root().iterdir() if (p / "exercise.toml").is_file())
CURRICULUM = Path(__file__).parent / "curriculum"
WRONG = [(ex, w) for ex in EXERCISES for w in discrimination.wrong_solutions(CURRICULUM / ex)]
RIGHT = [(ex, r) for ex in EXERCISES for r in discrimination.right_solutions(CURRICULUM / ex)]

def times_file(controller_pid: int) -> Path:
    """Where this run's grading times go (one file per run, shared by xdist workers and their controller)."""
    return Path(tempfile.gettempdir()) / f"grader-curriculum-times-{controller_pid}.jsonl"

pytestmark = [pytest.mark.slow, pytest.mark.parallel, pytest.mark.usefixtures("warm_runners")]


@pytest.fixture(scope="module")
def registries():
    return api.load()


@pytest.fixture
def settings(tmp_path):
    return Settings.load({"work_dir": tmp_path}, cwd=tmp_path)


def _timed(exercise_id, run):
    started = time.perf_counter()
    try:
        return run()
    finally:
        controller = os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()
        with times_file(controller).open("a", encoding="utf-8") as fh:
            fh.write(json.dumps([exercise_id, time.perf_counter() - started]) + "\n")


def test_curriculum_every_exercise_loads(registries):
    assert not registries.exercises.broken, registries.exercises.broken
    assert sorted(e.id for e in registries.exercises if e.source == "builtin") == EXERCISES


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_curriculum_reference_scores_full_marks(registries, exercise_id, settings):
    exercise = registries.exercises.get(exercise_id)
    outcome = _timed(exercise_id, lambda: discrimination.grade_reference(registries, exercise, settings))
    assert outcome.ok, outcome.problems


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_curriculum_stub_scores_zero(registries, exercise_id, settings):
    exercise = registries.exercises.get(exercise_id)
    outcome = _timed(exercise_id, lambda: discrimination.grade_stub(registries, exercise, settings))
    assert outcome.ok, outcome.problems


@pytest.mark.parametrize("exercise_id,wrong", WRONG, ids=[f"{e}/{w.name}" for e, w in WRONG])
def test_curriculum_wrong_solution_loses_points(registries, exercise_id, wrong, settings, tmp_path):
    exercise = registries.exercises.get(exercise_id)
    outcome = _timed(exercise_id,
                     lambda: discrimination.grade_wrong(registries, exercise, wrong, settings, tmp_path))
    assert outcome.ok, outcome.problems


@pytest.mark.parametrize("exercise_id,right", RIGHT, ids=[f"{e}/{r.name}" for e, r in RIGHT])
def test_curriculum_right_solution_keeps_full_marks(registries, exercise_id, right, settings, tmp_path):
    exercise = registries.exercises.get(exercise_id)
    outcome = _timed(exercise_id,
                     lambda: discrimination.grade_right(registries, exercise, right, settings, tmp_path))
    assert outcome.ok, outcome.problems


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_curriculum_every_check_is_discriminated(registries, exercise_id):
    """Each check is lost by at least one wrong solution kept in tests/curriculum, 8 or more of them (6 at first),
    and at least 2 right solutions written another way keep full marks."""
    exercise = registries.exercises.get(exercise_id)
    wrongs = [w for ex, w in WRONG if ex == exercise_id]
    assert not discrimination.coverage_problems(exercise, wrongs)
    least = 6 if exercise.level == "foundation" else 8
    assert len(wrongs) >= least, f"{exercise_id} keeps only {len(wrongs)} wrong solutions (at least {least})"
    rights = [r for ex, r in RIGHT if ex == exercise_id]
    assert len(rights) >= 2, (f"{exercise_id} keeps {len(rights)} right solutions written another way (at least 2: "
                              "a check that rejects a correct answer is as bad as one that passes a wrong one)")
