"""The reference curves the trusted side keeps: computed once, kept per reference and checks, never a verdict."""

from __future__ import annotations

import random

import torch

from grader.pictures import ReferenceCurves, tree_digest


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
