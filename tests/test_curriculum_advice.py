"""The advice a wrong solution gets: what a check must tell the author of a known mistake.

Beside its wrong solutions (``wrong_*.py`` files and ``mutations.toml``), ``tests/curriculum/<id>/advice.toml``
pins, per wrong solution, the words a failing check's message must contain and the checks it must still pass:

    [[advice]]
    wrong = "wrong_ignores_norm_first"      # a file's stem, or a mutation's name
    check = "test_float64_matches_torch"
    says = "far more than rounding"

    [[keeps]]
    wrong = "normalised-embeddings"
    check = "test_held_out_accuracy"

A right score with advice that names the wrong cause sends a student the wrong way; an outcome check must
measure its outcome, not stop at a precondition the solution breaks on purpose.  Each wrong solution is
graded on its pinned checks only.
"""

from __future__ import annotations

import tomllib
from collections import defaultdict
from pathlib import Path

import pytest

from grader import api, discrimination
from grader.config import Settings

CURRICULUM = Path(__file__).parent / "curriculum"

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("warm_runners")]


def _name(wrong: str) -> str:
    """The discrimination name of a wrong solution: a file's stem, or ``wrong_`` + a mutation's name."""
    return wrong if wrong.startswith("wrong_") else "wrong_" + wrong.replace("-", "_")


def _pins(folder: Path) -> dict[str, tuple[list[tuple[str, str]], list[str]]]:
    """wrong solution name -> ([(check, words)], [checks it keeps]) from ``folder/advice.toml``."""
    table = tomllib.loads((folder / "advice.toml").read_text(encoding="utf-8"))
    unknown = set(table) - {"advice", "keeps"}
    assert not unknown, f"{folder}/advice.toml: unknown tables {sorted(unknown)}"
    pins: dict[str, tuple[list[tuple[str, str]], list[str]]] = defaultdict(lambda: ([], []))
    for entry in table.get("advice", []):
        assert set(entry) == {"wrong", "check", "says"} and entry["says"].strip(), f"{folder}: bad [[advice]] {entry}"
        pins[_name(entry["wrong"])][0].append((entry["check"], entry["says"]))
    for entry in table.get("keeps", []):
        assert set(entry) == {"wrong", "check"}, f"{folder}: bad [[keeps]] {entry}"
        pins[_name(entry["wrong"])][1].append(entry["check"])
    return dict(pins)


PINNED = sorted((folder.name, name) for folder in CURRICULUM.iterdir() if (folder / "advice.toml").is_file()
                for name in _pins(folder))


@pytest.fixture(scope="module")
def registries():
    return api.load()


def test_curriculum_advice_names_kept_wrong_solutions():
    """A pin for a wrong solution that is not kept would silently check nothing."""
    for folder in CURRICULUM.iterdir():
        if (folder / "advice.toml").is_file():
            kept = {w.name for w in discrimination.wrong_solutions(folder)}
            assert set(_pins(folder)) <= kept, f"{folder.name}: advice for {sorted(set(_pins(folder)) - kept)}"


@pytest.mark.parametrize("exercise_id,name", PINNED, ids=[f"{e}/{n}" for e, n in PINNED])
def test_curriculum_wrong_solution_gets_the_right_advice(registries, exercise_id, name, tmp_path):
    folder = CURRICULUM / exercise_id
    advice, keeps = _pins(folder)[name]
    wrong = next(w for w in discrimination.wrong_solutions(folder) if w.name == name)
    exercise = registries.exercises.get(exercise_id)
    path = wrong.materialize(exercise.reference_dir, tmp_path / name)
    only = discrimination.select_expression([check for check, _ in advice] + keeps)  # just the pinned checks
    result = api.grade(registries, exercise_id, path, Settings.load({"work_dir": tmp_path / "jobs", "select": only}))
    by_name = {c.name.rsplit("::", 1)[-1]: c for c in result.checks}
    for check, words in advice:
        assert check in by_name, f"{check} is not a check of {exercise_id}: {sorted(by_name)}"
        got = by_name[check]
        assert got.status.value != "pass", f"{name} should lose {check}"
        assert words in got.message, f"{name}, {check}: expected advice with {words!r}, got {got.message!r}"
    for check in keeps:
        assert check in by_name, f"{check} is not a check of {exercise_id}: {sorted(by_name)}"
        assert by_name[check].status.value == "pass", (
            f"{name} should keep {check}: {by_name[check].status.value}: {by_name[check].message}")
