"""The reference curves the trusted side keeps: computed once, kept per reference and checks, never a verdict."""

from __future__ import annotations

import random

import torch

from grader.checks.pictures import ReferenceCurves, tree_digest


def _curves(tmp_path, is_reference=False, identity=None):
    spent: list[float] = []
    curves = ReferenceCurves(str(tmp_path / "cache"), identity or {"exercise": "demo", "reference": "r1"},
                             is_reference, spent.append)
    return curves, spent


def test_the_reference_is_trained_once_then_read_back(tmp_path):
    calls = []

    def train():
        calls.append(1)
        torch.rand(3)  # consumes the RNG: the check's later inputs must not depend on a cache hit
        return [3.0, 2.0, float("nan")]

    curves, spent = _curves(tmp_path)
    torch.manual_seed(0)
    random.seed(0)
    assert curves("t.py::a", "loss", [9.0], train) == [3.0, 2.0, None]
    after_miss = (torch.rand(1).item(), random.random())
    assert len(spent) == 1, "the time spent on the reference is given back to the job"
    again, _ = _curves(tmp_path)
    torch.manual_seed(0)
    random.seed(0)
    assert again("t.py::a", "loss", [9.0], train) == [3.0, 2.0, None] and len(calls) == 1
    assert (torch.rand(1).item(), random.random()) == after_miss, "the RNG is where it was, hit or miss"
    assert again("t.py::b", "loss", [9.0], train) and len(calls) == 2, "per check"
    other, _ = _curves(tmp_path, identity={"exercise": "demo", "reference": "r2"})
    assert other("t.py::a", "loss", [9.0], train) and len(calls) == 3, "a changed reference is trained again"


def test_grading_the_reference_folder_keeps_its_own_curve(tmp_path):
    mine, _ = _curves(tmp_path, is_reference=True)
    assert mine("t.py::a", "loss", [2.0, 1.0]) == [2.0, 1.0]
    student, spent = _curves(tmp_path)
    assert student("t.py::a", "loss", [5.0, 4.0], lambda: 1 / 0) == [2.0, 1.0] and not spent


def test_a_reference_that_cannot_train_loses_the_line_not_a_point(tmp_path):
    curves, _ = _curves(tmp_path)
    assert curves("t.py::a", "loss", [1.0], lambda: 1 / 0) is None
    assert "ZeroDivisionError" in curves.problems[0]
    assert curves("t.py::a", "other", [1.0]) is None, "nothing to compute, nothing kept: no line"
    unkept = ReferenceCurves(None, {}, False, lambda s: None)
    assert unkept("t.py::a", "loss", [1.0], lambda: [1.0, 0.5]) == [1.0, 0.5]


def test_the_tree_digest_follows_content_and_names(tmp_path):
    (tmp_path / "solution.py").write_text("x = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "solution.pyc").write_bytes(b"\0")
    first = tree_digest(tmp_path)
    (tmp_path / "__pycache__" / "solution.pyc").write_bytes(b"\1")
    assert tree_digest(tmp_path) == first, "bytecode is not the reference"
    (tmp_path / "solution.py").write_text("x = 2\n")
    assert tree_digest(tmp_path) != first and tree_digest(None) == "none"


CURVE_CHECK = '''
import pytest
import torch

from grader.testing import confusion, curve, record


def _run(scale):
    return [float(scale(torch.tensor([2.0]), 0.9 ** step)[0]) for step in range(30)]


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_a_run(student, reference, reference_curve):
    mine = _run(student.scale)
    trained = []
    curve("run", mine, target=0.01, reference=reference_curve(
        "run", mine, lambda: trained.append(1) or _run(reference.scale)))
    confusion("signs", [0, 1, 1], [0, 1, 0], classes=["neg", "pos"])
    record("reference_trained", len(trained))
'''


def test_the_report_draws_the_reference_curve_kept_by_the_reference_folders_own_grading(
        registries, settings, tmp_path, good_sample, monkeypatch):
    """End to end through the engine and the sandbox: the reference folder's grading keeps its curve, a
    student's grading draws it without training the reference again; with no cache kept, the reference trains."""
    import dataclasses
    import shutil

    from grader.builtin.report_html import HtmlReporter
    from grader.engine.core import grade

    sample = registries.exercises.get("sample-add")
    checks = tmp_path / "checks"
    shutil.copytree(sample.checks_dir, checks)
    (checks / "hidden" / "test_curve_hidden.py").write_text(CURVE_CHECK)
    exercise = dataclasses.replace(sample, checks_dir=checks, points=sample.points + 1)
    monkeypatch.setenv("GRADER_REFERENCE_CACHE", str(tmp_path / "curves"))
    own = grade(exercise, sample.reference_dir, settings, registries)
    assert own.score == own.max_score, [c.message for c in own.checks]
    sub = tmp_path / "student"
    sub.mkdir()
    (sub / "solution.py").write_text(good_sample)
    result = grade(exercise, sub, settings, registries)
    run = next(c for c in result.checks if c.name.endswith("test_a_run"))
    kept = next(c for c in own.checks if c.name.endswith("test_a_run")).details["curve/run"]["values"]
    assert run.details["curve/run"]["reference"]["values"] == kept and len(kept) == 30
    assert run.details["reference_trained"] == 0, "the kept curve is read back, not trained again"
    html = HtmlReporter().write(result, tmp_path).read_text()
    assert 'polyline class="reference"' in html and 'class="target"' in html and 'class="confusion"' in html
    monkeypatch.setenv("GRADER_REFERENCE_CACHE", "")
    fresh = grade(exercise, sub, settings, registries)
    run = next(c for c in fresh.checks if c.name.endswith("test_a_run"))
    assert run.details["reference_trained"] == 1 and run.details["curve/run"]["reference"]["steps"] == 30
