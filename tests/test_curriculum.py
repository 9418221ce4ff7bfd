"""The curriculum self-test: reference 100 %, untouched stub 0 %, every wrong solution loses points."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from grader import api
from grader.config import Settings
from grader.paths import exercises_root, reference_root

CURRICULUM = Path(__file__).parent / "curriculum"
EXERCISES = sorted(p.name for p in exercises_root().iterdir() if (p / "exercise.toml").is_file())
WRONG = sorted(
    (p.parent.name, p) for p in CURRICULUM.glob("*/wrong_*.py")
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def registries():
    return api.load()


def _grade(registries, exercise_id: str, path: Path, tmp_path: Path):
    return api.grade(registries, exercise_id, path, Settings.load({"work_dir": tmp_path}))


def _summary(result) -> str:
    return "; ".join(f"{c.name}={c.status.value}: {c.message[:160]}" for c in result.checks if c.status.value != "pass")


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_curriculum_reference_scores_full_marks(registries, exercise_id, tmp_path):
    result = _grade(registries, exercise_id, reference_root() / exercise_id, tmp_path)
    assert result.max_score == registries.exercises.get(exercise_id).points
    assert result.score == result.max_score, _summary(result)
    assert result.status.value == "pass"


@pytest.mark.parametrize("exercise_id", EXERCISES)
def test_curriculum_stub_scores_zero(registries, exercise_id, tmp_path):
    exercise = registries.exercises.get(exercise_id)
    result = _grade(registries, exercise_id, exercise.stub_dir, tmp_path)
    assert result.score == 0, [c.name for c in result.checks if c.score]
    assert result.status.value in ("error", "fail")
    assert all(c.status.value != "grader_error" for c in result.checks), _summary(result)


def _expected_losses(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    lines = re.findall(r"^# loses: (.+)$", text, re.MULTILINE)  # may repeat, to keep lines short
    assert lines, f"{path} needs a '# loses: check_a, check_b' line"
    assert re.search(r"^# wrong: .+$", text, re.MULTILINE), f"{path} needs a '# wrong: ...' line"
    names = ",".join(line.split("#", 1)[0] for line in lines)
    return [name.strip() for name in names.split(",") if name.strip()]


@pytest.mark.parametrize("exercise_id,path", WRONG, ids=[f"{e}/{p.stem}" for e, p in WRONG])
def test_curriculum_wrong_solution_loses_points(registries, exercise_id, path, tmp_path):
    losses = _expected_losses(path)
    result = _grade(registries, exercise_id, path, tmp_path)
    assert result.score < result.max_score
    assert all(c.status.value != "grader_error" for c in result.checks), _summary(result)
    by_name = {c.name.rsplit("::", 1)[-1]: c for c in result.checks}
    for name in losses:
        assert name in by_name, f"{name} is not a check of {exercise_id}: {sorted(by_name)}"
        assert by_name[name].status.value != "pass", f"{path.name} should lose {name}"


def test_curriculum_every_check_is_discriminated():
    """Each check of each exercise is lost by at least one wrong solution kept in tests/curriculum."""
    for exercise_id in EXERCISES:
        names = set()
        for folder in ("public", "hidden"):
            for f in (exercises_root() / exercise_id / "checks" / folder).glob("test_*.py"):
                names |= set(re.findall(r"^def (test_\w+)\(", f.read_text(encoding="utf-8"), re.MULTILINE))
        lost = set()
        for ex, path in WRONG:
            if ex == exercise_id:
                lost |= set(_expected_losses(path))
        assert names, f"{exercise_id} has no checks"
        assert names <= lost, f"{exercise_id}: no wrong solution loses {sorted(names - lost)}"
