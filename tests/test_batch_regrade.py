"""Regrade after a check changes: a per-student diff first, nothing published until --publish."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader import cli, hookimpl
from grader.batch.run import run_batch
from grader.cli.common import CliState
from grader.gradebook import Gradebook
from grader.plugins import Registries, make_plugin_manager

_spec = importlib.util.spec_from_file_location(
    "make_class", Path(__file__).parent / "fixtures" / "class_roster" / "make_class.py")
assert _spec and _spec.loader
make_class = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_class)

RIGHT = "def answer():\n    return 'no idea'\n\ndef add(a, b):\n    return a + b\n"
WRONG = "def answer():\n    return 'no idea'\n\ndef add(a, b):\n    return 4\n"


@pytest.fixture
def course_registries(tmp_path):
    course = make_class.make_course(tmp_path / "course")

    class Course:
        @hookimpl
        def grader_register_exercises(self, registry):
            for ex in ("sample-add", "hostile-target"):
                registry.add_folder(course / "exercises" / ex, reference=course / "reference" / ex)

    return course, Registries.collect(make_plugin_manager(extra=(Course(),), entry_points=False))


def test_batch_regrade_shows_diff_then_publishes_without_grading_again(course_registries, settings, tmp_path,
                                                                      monkeypatch):
    course, registries = course_registries
    roster = tmp_path / "roster"
    for name, source in (("ann", RIGHT), ("ben", WRONG), ("cat", RIGHT)):
        (roster / name / "hostile-target").mkdir(parents=True)
        (roster / name / "hostile-target" / "solution.py").write_text(source)
    out = tmp_path / "out"
    run_batch(registries, roster, out, settings, workers=2)
    # the check changes: add(3, 4) must be 7, so ben's `return 4` (right for add(2, 2)) now fails
    check = course / "exercises" / "hostile-target" / "checks" / "hidden" / "test_add.py"
    check.write_text(check.read_text().replace("student.add(2, 2) == 4", "student.add(3, 4) == 7"))
    (roster / "cat" / "hostile-target" / "solution.py").write_text(WRONG)  # a late change: not a regrade's business
    state = CliState(registries)
    monkeypatch.setenv("GRADER_WORK_DIR", str(settings.work_dir))
    dry = CliRunner().invoke(cli.main, ["regrade", str(out)], catch_exceptions=False, obj=state)
    assert dry.exit_code == 0, dry.output
    assert "note: cat/hostile-target:" in dry.output and "changed since it was graded" in dry.output
    assert "ben                  hostile-target         1 fail -> 0 fail  (-1)" in dry.output
    assert "ann   " not in dry.output, "unchanged students are listed only with --all"
    assert "2 grades regraded: 1 would change, 0 failed." in dry.output
    assert "Nothing was published" in dry.output and "--publish" in dry.output
    with Gradebook.open(out) as gb:
        assert {r["student"]: r["final_score"] for r in gb.grades()}["ben"] == 1.0
        runs_before = len(gb.runs())
    assert json.loads((out / "ben" / "hostile-target" / "results.json").read_text())["score"] == 1.0

    done = CliRunner().invoke(cli.main, ["regrade", str(out), "--publish"], catch_exceptions=False,
                              obj=state)
    assert done.exit_code == 0, done.output
    assert "Published 2 regraded result(s)" in done.output
    with Gradebook.open(out) as gb:
        assert len(gb.runs()) == runs_before, "--publish after a dry run must not grade again"
        assert {r["student"]: r["final_score"] for r in gb.grades()} == {"ann": 1.0, "ben": 0.0, "cat": 1.0}
        assert all(r["result_dir"] == f"{r['student']}/hostile-target" for r in gb.grades())
    assert json.loads((out / "ben" / "hostile-target" / "results.json").read_text())["score"] == 0.0
    assert not (out / ".regrade").exists()
