"""Grading the sample exercise end to end: bad inputs get named statuses, never points."""

from __future__ import annotations

import json
import os

import pytest

from grader import api
from grader.config import Settings
from grader.reports.results import to_results_json


def _statuses(result):
    return {c.name.rsplit("::", 1)[-1]: c.status.value for c in result.checks}


def test_engine_correct_solution_scores_full_marks(grade_sample, good_sample):
    result = grade_sample(good_sample)
    assert (result.score, result.max_score, result.status.value) == (4, 4, "pass")
    assert result.provenance["sandbox"] in ("bwrap", "process")
    assert result.provenance["isolation"]["backend"] == result.provenance["sandbox"]
    assert set(result.phases) >= {"sandbox_start_s", "worker_startup_s", "checks_s", "total_s"}


def test_engine_public_only_reports_hidden_not_run(grade_sample, good_sample):
    result = grade_sample(good_sample, public_only=True)
    assert result.mode == "check"
    assert len(result.checks) == 1 and result.score == 1
    assert (result.not_run, result.not_run_points) == (2, 3)


@pytest.mark.parametrize(
    "source,status,words",
    [
        ("def add(a, b)\n    return a + b\n", "error", "syntax error on line 1"),
        ("import numpyy_missing\n", "error", "ModuleNotFoundError"),
        ("raise RuntimeError('boom at import')\n", "error", "boom at import"),
        ("def scale(t, k):\n    return t * k\n", "error", "has no `add`"),
        ("def add(a):\n    return a\n\ndef scale(t, k):\n    return t * k\n", "error", "cannot be called"),
        ("def add(a, b):\n    return a - b\n\ndef scale(t, k):\n    return t * k\n", "fail", "add(2, 3) is wrong"),
        ("def add(a, b):\n    return 1 / 0\n\ndef scale(t, k):\n    return t * k\n", "error", "ZeroDivisionError"),
    ],
    ids=["syntax", "import-error", "raises-at-import", "missing-function", "wrong-signature", "wrong-answer",
         "raises-at-call"],
)
def test_engine_bad_submissions_get_named_status(grade_sample, source, status, words):
    result = grade_sample(source)
    add_small = next(c for c in result.checks if c.name.endswith("test_add_small"))
    assert add_small.status.value == status
    assert words in add_small.message
    assert result.score < result.max_score
    assert all(c.status.value != "grader_error" for c in result.checks)


def test_engine_rigged_return_types_cannot_score(grade_sample):
    source = (
        "import torch\n"
        "class Anything:\n    def __eq__(self, other):\n        return True\n\n"
        "class Sneaky(torch.Tensor):\n    pass\n\n"
        "def add(a, b):\n    return Anything()\n\n"
        "def scale(t, k):\n    return torch.zeros(2, 3).as_subclass(Sneaky)\n"
    )
    result = grade_sample(source)
    assert result.score == 0
    st = _statuses(result)
    assert st == {"test_add_small": "error", "test_scale": "error", "test_add_big": "error"}
    msg = next(c for c in result.checks if c.name.endswith("test_add_small")).message
    assert "Anything" in msg and "only None, bool" in msg


def test_engine_monkeypatched_torch_in_worker_does_not_reach_checks(grade_sample):
    source = (
        "import torch\n"
        "torch.allclose = lambda *a, **k: True\n"
        "torch.equal = lambda *a, **k: True\n"
        "torch.Tensor.__eq__ = lambda *a, **k: True\n"
        "def add(a, b):\n    return 0\n\n"
        "def scale(t, k):\n    return t\n"
    )
    result = grade_sample(source)
    assert result.score == 0


def test_engine_missing_solution_file(registries, settings, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = api.grade(registries, "sample-add", empty, settings)
    assert result.score == 0
    assert all(c.status.value == "error" and "no solution.py" in c.message for c in result.checks)
    assert result.note.startswith("no solution.py")


def test_engine_results_json_follows_gradescope_shape(grade_sample, tmp_path, registries):
    result = grade_sample("def add(a, b):\n    return a + b\n")
    doc = to_results_json(result)
    json.dumps(doc, allow_nan=False)
    assert {"score", "max_score", "execution_time", "tests", "grader"} <= set(doc)
    test = doc["tests"][0]
    assert {"name", "score", "max_score", "status", "output", "visibility"} <= set(test)
    assert doc["grader"]["provenance"]["seed"] == 0
    assert doc["grader"]["status"] == "error"
    by_vis = {t["extra_data"]["visibility"]: t for t in doc["tests"]}
    assert by_vis["hidden"]["visibility"] == "after_published"
    assert by_vis["message-only"]["visibility"] == "visible"
    assert by_vis["message-only"]["extra_data"]["details"] == {}
    assert by_vis["message-only"]["output"].startswith("[")


def test_engine_student_output_is_captured_and_bounded(grade_sample):
    source = (
        "import sys\nprint('hello from student')\n"
        "def add(a, b):\n    sys.stdout.write('x' * 300000)\n    return a + b\n\n"
        "def scale(t, k):\n    return t * k\n"
    )
    result = grade_sample(source)
    assert result.score == 4
    assert "hello from student" in result.stderr_tail
    assert len(result.stderr_tail) < 10_000


def test_engine_check_without_hidden_folder_still_counts_hidden_points(registries, settings, tmp_path, good_sample):
    """A student pack ships no hidden/ folder; the declared total still says what was not run."""
    import dataclasses
    import shutil

    exercise = registries.exercises.get("sample-add")
    pack = tmp_path / "pack"
    shutil.copytree(exercise.checks_dir / "public", pack / "checks" / "public")
    stripped = dataclasses.replace(exercise, checks_dir=pack / "checks")
    from grader.engine.core import grade

    sub = tmp_path / "s.py"
    sub.write_text(good_sample)
    result = grade(stripped, sub, settings, registries, public_only=True)
    assert result.score == 1 and (result.not_run, result.not_run_points) == (-1, 3)


def test_engine_sandbox_that_cannot_start_is_a_grader_error(registries, tmp_path, good_sample, monkeypatch):
    """A backend failure is the grader's problem: grader_error with the reason, no points lost."""
    from grader.engine.core import grade
    from grader.plugins import Registries, make_plugin_manager

    (tmp_path / "broken_sandbox.py").write_text(
        "from grader import hookimpl\n\n"
        "class Broken:\n    name, priority = 'broken', 1\n\n"
        "    def available(self):\n        return True, 'claims to work'\n\n"
        "    def start(self, spec):\n        raise OSError('cannot create namespaces')\n\n"
        "@hookimpl\ndef grader_register_sandboxes(registry):\n    registry.add(Broken())\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    monkeypatch.setenv("GRADER_PLUGINS", "broken_sandbox")
    regs = Registries.collect(make_plugin_manager(entry_points=False))
    assert "broken" in regs.sandboxes
    sub = tmp_path / "s.py"
    sub.write_text(good_sample)
    exercise = registries.exercises.get("sample-add")
    settings = Settings.load({"work_dir": tmp_path / "j", "sandbox": "broken"}, cwd=tmp_path)
    result = grade(exercise, sub, settings, regs)
    assert {c.status.value for c in result.checks} == {"grader_error"}
    assert all("could not start a worker: cannot create namespaces" in c.message for c in result.checks)


def test_engine_grader_error_output_never_shows_hidden_check_text(registries, settings, tmp_path, good_sample):
    import shutil

    from grader.builtin.report_html import HtmlReporter
    from grader.engine.core import grade
    from grader.registry import load_exercise

    sample = registries.exercises.get("sample-add")
    root = tmp_path / "broken"
    shutil.copytree(sample.checks_dir.parent, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "checks" / "hidden" / "test_broken.py").write_text("HIDDEN_SECRET_LINE = 1 / 0\n")
    exercise = load_exercise(root, sample.reference_dir, source="test")
    (tmp_path / "solution.py").write_text(good_sample)
    result = grade(exercise, tmp_path / "solution.py", settings, registries)
    assert result.status.value == "grader_error"
    errors = [c for c in result.checks if c.status.value == "grader_error"]
    assert errors and all(c.visibility.value == "message-only" for c in errors)
    assert any("HIDDEN_SECRET_LINE" in c.output for c in errors), "the instructor's copy keeps the traceback"
    shown = json.dumps(to_results_json(result)["tests"])
    assert "HIDDEN_SECRET_LINE" not in shown and "not your fault" in shown
    assert "HIDDEN_SECRET_LINE" not in HtmlReporter().write(result, tmp_path).read_text()
    checked = grade(exercise, tmp_path / "solution.py", settings, registries, public_only=True)
    assert checked.status.value == "grader_error", "`grader check` collects hidden checks to count their points"
    assert "HIDDEN_SECRET_LINE" not in json.dumps(to_results_json(checked)["tests"])


@pytest.mark.slow
@pytest.mark.parametrize("declared,jobs,seen,warm", [(1, 1, 1, False), (0, 1, 2, False), (8, 1, 2, False),
                                                     (0, 4, 1, False), (0, 4, 1, True)])
def test_an_exercise_may_lower_the_workers_threads_never_raise_them(tmp_path, monkeypatch, declared, jobs, seen,
                                                                    warm):
    """[limits] threads: small models run faster on one thread; 0 keeps the setting (2 here), more is capped;
    jobs side by side (a batch's or the server's workers) share the cores. The trusted side keeps to it too."""
    import contextlib

    from grader import api
    from grader.checks import warm as warm_runners
    from grader.config import Settings
    from grader.engine import core as engine

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    ex = tmp_path / "exercises" / "threads-x"
    (ex / "stub").mkdir(parents=True)
    (ex / "checks" / "public").mkdir(parents=True)
    (ex / "exercise.toml").write_text(f'id = "threads-x"\ntitle = "t"\nlevel = "foundation"\npoints = 1\n'
                                      f"[limits]\nthreads = {declared}\n")
    (ex / "stub" / "solution.py").write_text("import torch\n\n\ndef threads():\n    return torch.get_num_threads()\n")
    (ex / "checks" / "public" / "test_t.py").write_text(
        "import pytest\nimport torch\n\n\n@pytest.mark.points(1)\ndef test_threads(student):\n"
        "    assert False, f'threads={student.threads()} runner={torch.get_num_threads()}'\n")
    monkeypatch.setenv("GRADER_EXERCISES", str(tmp_path))
    with engine.sharing_cores(jobs), warm_runners.pool(1) if warm else contextlib.nullcontext():
        result = api.grade(api.load(), "threads-x", ex / "stub", Settings.load({"work_dir": tmp_path / "jobs",
                                                                                 "threads": 2}, cwd=tmp_path))
    assert result.checks[0].message.startswith(f"threads={seen} runner={seen}"), result.checks[0].message


def test_negative_limits_are_refused(tmp_path):
    from grader.errors import PluginError
    from grader.exercise_spec import parse

    with pytest.raises(PluginError, match="threads must not be negative"):
        parse({"id": "x", "title": "t", "level": "foundation", "points": 1, "limits": {"threads": -1}}, tmp_path)
