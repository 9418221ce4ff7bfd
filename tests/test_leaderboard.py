"""Leaderboards: declared in exercise.toml, carried in results.json, ranked pseudonymously per best attempt."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import main
from grader.gradebook import Gradebook, Run
from grader.models import CheckResult, Exercise, GradeResult, Status, Visibility
from grader.registry import ExerciseRegistry
from grader.reports import leaderboard
from grader.reports.class_report import write_class_report
from grader.reports.results import to_results_json

BOARD = '\n[[leaderboard]]\nname = "max error"\ncheck = "test_softmax_matches_torch"\nvalue = "err.max"\n'


def _scaffold(tmp_path: Path, extra: str) -> Path:
    assert CliRunner().invoke(main, ["new-exercise", "demo-x", "--level", "foundation", "--points", "3",
                                     "--course", str(tmp_path)]).exit_code == 0
    toml = tmp_path / "exercises" / "demo-x" / "exercise.toml"
    toml.write_text(toml.read_text() + extra)
    return toml.parent


def _load(folder: Path) -> ExerciseRegistry:
    registry = ExerciseRegistry()
    registry.add_folder(folder, reference=folder.parent.parent / "reference" / folder.name)
    return registry


def test_leaderboard_entries_are_declared_and_checked(tmp_path):
    folder = _scaffold(tmp_path, BOARD + 'order = "asc"\n')
    assert _load(folder).get("demo-x").leaderboard == (
        {"name": "max error", "check": "test_softmax_matches_torch", "value": "err.max", "order": "asc"},)


@pytest.mark.parametrize("extra,says", [
    (BOARD + 'order = "up"\n', "order must be desc or asc"),
    (BOARD + 'ordr = "asc"\n', "unknown key 'ordr'"),
    ('\n[[leaderboard]]\nname = "x"\ncheck = "test_softmax_matches_torch"\n', "value must be a non-empty string"),
    (BOARD + BOARD, "two [[leaderboard]] entries are named 'max error'"),
])
def test_leaderboard_mistakes_are_refused_when_the_exercise_loads(tmp_path, extra, says):
    registry = _load(_scaffold(tmp_path, extra))
    assert says in registry.broken["demo-x"]


def test_leaderboard_naming_no_check_is_reported_by_check_exercise(tmp_path, monkeypatch):
    _scaffold(tmp_path, BOARD.replace("test_softmax_matches_torch", "test_nothing"))
    monkeypatch.setenv("GRADER_EXERCISES", str(tmp_path))
    result = CliRunner().invoke(main, ["check-exercise", "demo-x"])
    assert result.exit_code == 1
    assert "[[leaderboard]] 'max error': test_nothing is not a check of this exercise" in result.output


def _exercise(*entries: dict[str, str]) -> Exercise:
    return Exercise(id="ex", title="Ex", level="foundation", points=2, stub_dir=Path("."), checks_dir=Path("."),
                    leaderboard=entries)


def _check(name: str, details: dict, visibility: Visibility = Visibility.MESSAGE_ONLY) -> CheckResult:
    return CheckResult(f"hidden/t.py::{name}", name, Status.PASS, 1, 1, visibility, details=details)


def test_results_json_carries_gradescopes_leaderboard_array():
    ex = _exercise({"name": "accuracy", "check": "test_acc", "value": "held.acc", "order": "desc"},
                   {"name": "loss", "check": "test_loss", "value": "loss", "order": "asc"},
                   {"name": "never ran", "check": "test_gone", "value": "x", "order": "desc"})
    checks = (_check("test_acc", {"held": {"acc": 0.91}}), _check("test_loss", {"loss": float("nan")}))
    doc = to_results_json(GradeResult(ex, "alice", "grade", checks, {}, 1.0))
    assert doc["leaderboard"] == [{"name": "accuracy", "value": 0.91, "order": "desc"}]
    assert doc["tests"][0]["extra_data"]["details"] == {}, "a message-only check still shows no details"
    assert "leaderboard" not in to_results_json(GradeResult(_exercise(), "bob", "grade", checks, {}, 1.0))


def test_rank_takes_each_students_best_attempt_ties_by_who_got_there_first():
    board = [("ann", "2026-01-03", [{"name": "acc", "value": 0.8, "order": "desc"}]),
             ("ann", "2026-01-01", [{"name": "acc", "value": 0.7, "order": "desc"}]),
             ("bob", "2026-01-02", [{"name": "acc", "value": 0.8, "order": "desc"}]),
             ("cat", "2026-01-01", [{"name": "acc", "value": 0.9, "order": "desc"}]),
             ("dan", "2026-01-01", [{"name": "other", "value": 1.0}])]
    rows = leaderboard.rank(board, "acc", "k", me="ann")
    assert [(r.rank, r.value, r.mine) for r in rows] == [(1, 0.9, False), (2, 0.8, False), (2, 0.8, True)]
    assert rows[2].who == "ann" and rows[1].who == leaderboard.pseudonym("k", "bob")
    assert all("bob" not in r.who and "cat" not in r.who for r in rows)
    lower = leaderboard.rank([("a", "1", [{"name": "ppl", "value": 9.0, "order": "asc"}]),
                              ("b", "1", [{"name": "ppl", "value": 3.0, "order": "asc"}])], "ppl", "k")
    assert [r.value for r in lower] == [3.0, 9.0]


def test_pseudonyms_are_stable_keyed_and_distinct():
    assert leaderboard.pseudonym("k", "alice") == leaderboard.pseudonym("k", "alice")
    assert leaderboard.pseudonym("k", "alice") != leaderboard.pseudonym("other key", "alice")
    names = leaderboard.pseudonyms("k", [f"s{i:04d}" for i in range(3000)])
    assert len(set(names.values())) == 3000


def _run(out: Path, student: str, value: float, when: str, publish: bool = True) -> None:
    rel = f"{student}/ex-{when}"
    text = json.dumps({"score": 1.0, "max_score": 1.0, "execution_time": 1.0, "output": "", "tests": [],
                       "leaderboard": [{"name": "accuracy", "value": value, "order": "desc"}],
                       "grader": {"status": "pass"}})
    (out / rel).mkdir(parents=True)
    (out / rel / "results.json").write_text(text)
    (out / rel / "report.html").write_text("<!doctype html><title>r</title>")
    with Gradebook.open(out) as gradebook:
        gradebook.record(Run(student, "ex", "/nowhere", when, "1", "c", "0", "cpu", "bwrap", "pass", 1.0, 1.0, 1.0,
                             when, when, rel, hashlib.sha256(text.encode()).hexdigest(), kind="submit"),
                         publish=publish)


def test_class_report_board_ranks_best_attempts_under_pseudonyms(tmp_path):
    out = tmp_path / "out"
    _run(out, "alice", 0.95, "2026-01-01T00:00:00")  # superseded by a worse later attempt: still her best
    _run(out, "alice", 0.70, "2026-01-02T00:00:00")
    _run(out, "bobby", 0.80, "2026-01-01T00:00:00")
    html = write_class_report(out, tmp_path / "class.html").read_text()
    board = html[html.index('id="leaderboards"'):html.index('id="checks"')]
    with Gradebook.open(out) as gradebook:
        key = gradebook.get_meta("pseudonym_key")
    assert board.index(leaderboard.pseudonym(key, "alice")) < board.index(leaderboard.pseudonym(key, "bobby"))
    assert "0.95" in board and "0.7<" not in board and "alice" not in board and "bobby" not in board
    again = write_class_report(out, tmp_path / "again.html").read_text()
    assert leaderboard.pseudonym(key, "alice") in again, "pseudonyms stay the same from one report to the next"
