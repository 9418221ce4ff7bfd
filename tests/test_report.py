"""report.html: autoescaped, explains every lost point, draws series."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pytest
import torch

from grader.builtin.report_html import MAX_CONFUSIONS, MAX_CURVES, HtmlReporter
from grader.checks.pictures import MAX_POINTS, confusion_record, curve_record, downsample
from grader.models import CheckResult, Exercise, GradeResult, Status, Visibility
from grader.testing import assert_tensor_close, begin_details, confusion, curve


def _result(checks, output="") -> GradeResult:
    ex = Exercise(id="demo", title="Demo <b>", level="foundation", points=3, stub_dir=Path("."),
                  checks_dir=Path("."))
    return GradeResult(exercise=ex, submission="alice", mode="grade", checks=tuple(checks),
                       provenance={"seed": 0, "isolation": {"backend": "bwrap"}}, execution_time_s=1.0,
                       stderr_tail=output)


def _details_of_failed_comparison():
    details = begin_details()
    expected = torch.zeros(2, 3)
    actual = expected.clone()
    actual[1, 2] = 0.5
    actual[0, 0] = float("nan")
    try:
        assert_tensor_close(actual, expected, rtol=1e-5, atol=1e-6, name="encoding")
    except AssertionError as exc:
        return details, str(exc)
    raise AssertionError("the comparison should have failed")


def test_assert_tensor_close_reports_every_figure():
    details, message = _details_of_failed_comparison()
    entry = details["tensors"][0]
    assert entry["shape"] == [2, 3] and entry["dtype"] == "float32"
    assert entry["mismatched"] == 2 and entry["nan_count"] == 1
    # a NaN where a number was expected is the worst mismatch of all
    assert entry["worst_index"] == [0, 0] and entry["max_abs_error"] == 0.5
    assert "2 of 6 values" in message and "worst at index (0, 0)" in message and "NaN: 1" in message


def test_assert_tensor_close_shape_dtype_and_type():
    begin_details()
    for actual, words in ((torch.zeros(3), "shape"), (torch.zeros(2, 3, dtype=torch.float64), "dtype"),
                          ([0.0] * 6, "torch.Tensor")):
        try:
            assert_tensor_close(actual, torch.zeros(2, 3))
        except AssertionError as exc:
            assert words in str(exc)
        else:
            raise AssertionError("should fail")
    assert_tensor_close(torch.ones(2) + 1e-9, torch.ones(2))


def test_report_escapes_student_text_and_shows_details(tmp_path):
    details, message = _details_of_failed_comparison()
    details["series/loss"] = [3.0, 2.0, 1.5, 1.2]
    checks = [
        CheckResult("public/t.py::a", "encoding matches", Status.FAIL, 0, 2, Visibility.PUBLIC, message,
                    "<script>alert(1)</script>", details),
        CheckResult("hidden/t.py::b", "secret check", Status.FAIL, 0, 1, Visibility.HIDDEN, "hidden-msg-xyz",
                    "hidden-output-xyz"),
    ]
    path = HtmlReporter().write(_result(checks, output="<img src=x onerror=alert(2)>"), tmp_path)
    html = path.read_text()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html
    assert "Demo &lt;b&gt;" in html
    assert "hidden-msg-xyz" not in html and "hidden-output-xyz" not in html
    assert "<polyline" in html and "loss" in html
    assert "worst index" in html and "[0, 0]" in html


def _curve_details(steps=500, nan_at=40):
    details = begin_details()
    values = [3 * math.exp(-i / 80) + 0.05 * math.sin(i) for i in range(steps)]
    values[nan_at] = float("nan")
    curve("loss", values, reference=[2.9 * math.exp(-i / 70) for i in range(steps)], target=0.5)
    confusion("held-out", [0, 0, 1, 1, 1, 0, 1], [0, 1, 1, 1, 0, 0, 1], classes=["negative", "positive"])
    return details


def test_a_curve_keeps_a_bounded_number_of_points_and_its_gaps():
    rec = _curve_details()["curve/loss"]
    assert rec["steps"] == 500 and len(rec["x"]) == len(rec["values"]) == MAX_POINTS
    assert rec["x"][0] == 0 and rec["x"][-1] == 499 and rec["nonfinite"] == 1
    assert rec["reference"]["steps"] == 500 and rec["target"] == 0.5
    assert downsample([1.0, float("nan"), 3.0]) == ([0, 1, 2], [1.0, None, 3.0]), "short runs are kept whole"
    assert curve_record("not a list")["steps"] == 0 and curve_record([1, "x"])["values"] == [1.0, None]
    _, means = downsample([float("nan")] * 10 + [1.0] * 400)
    assert means[1] is None and means[-1] == 1.0, "a bucket of NaN stays a gap, never a number"


def test_a_confusion_matrix_counts_true_rows_by_predicted_columns():
    rec = _curve_details()["confusion/held-out"]
    assert rec["matrix"] == [[2, 1], [1, 3]] and rec["correct"] == 5 and rec["n"] == 7
    labels, predicted = [2, 0, 1, 1, 2, 0, 0], [2, 1, 1, 0, 2, 0, 2]
    oracle = torch.bincount(torch.tensor(labels) * 3 + torch.tensor(predicted), minlength=9).view(3, 3).tolist()
    assert confusion_record(labels, predicted, ["a", "b", "c"])["matrix"] == oracle
    odd = confusion_record(["cat", "dog"], ["cat", "bird"])
    assert odd["predicted"] == ["cat", "dog", "other"] and odd["matrix"] == [[1, 0, 0], [0, 0, 1]]
    with pytest.raises(ValueError, match="2 labels but 1"):
        confusion_record([0, 1], [0])


def test_message_only_checks_draw_their_curve_and_matrix_and_hidden_ones_draw_none(tmp_path):
    checks = [CheckResult("hidden/t.py::m", "trains", Status.FAIL, 0, 2, Visibility.MESSAGE_ONLY, "too high",
                          details=_curve_details()),
              CheckResult("hidden/t.py::h", "secret", Status.FAIL, 0, 1, Visibility.HIDDEN, "x",
                          details=_curve_details())]
    html = HtmlReporter().write(_result(checks), tmp_path).read_text()
    assert html.count('class="curve"') == 1 and html.count('class="confusion"') == 1, "never for a hidden check"
    assert html.count('class="mine"') == 2 and html.count('polyline class="mine"') == 2, "a NaN breaks the line"
    assert 'class="reference"' in html and 'class="target"' in html and "target 0.5" in html
    assert "1 step(s) gave NaN or inf" in html and html.count('class="pt"') == MAX_POINTS - 1
    assert "true negative, predicted positive: 1 (33 % of true negative)" in html and "5 of 7 right" in html


def test_a_reports_pictures_are_bounded(tmp_path):
    checks = [CheckResult(f"public/t.py::c{i}", f"run {i}", Status.FAIL, 0, 1, Visibility.PUBLIC, "x",
                          details=_curve_details()) for i in range(10)]
    page = HtmlReporter().write(_result(checks), tmp_path)
    html = page.read_text()
    assert html.count('class="curve"') == MAX_CURVES and html.count('class="confusion"') == MAX_CONFUSIONS
    assert page.stat().st_size < 1_000_000


def test_assert_tensor_close_nan_and_advice():
    import pytest

    begin_details()
    nan = torch.tensor([float("nan"), 1.0])
    with pytest.raises(AssertionError, match=r"^did you divide by zero\?\nout: 1 of 2"):
        assert_tensor_close(nan, nan.clone(), name="out", advice="did you divide by zero?")
    assert_tensor_close(nan, nan.clone(), equal_nan=True)


def _heatmap_details(shape=(3, 40, 50), worst=(1, 33, 7), nan=None):
    details = begin_details()
    expected = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    actual = expected.clone()
    actual[worst] += 5.0
    if nan is not None:
        actual[nan] = float("nan")
    try:
        assert_tensor_close(actual, expected, name="attention weights")
    except AssertionError:
        return details
    raise AssertionError("the comparison should have failed")


def test_a_failing_matrix_comparison_records_the_slice_holding_its_worst_element():
    h = _heatmap_details()["tensors"][0]["heatmap"]
    assert h["slice"] == [1] and h["shape"] == [40, 50] and h["cells"] == [16, 16]
    assert h["worst"] == [13, 2]
    flat = [v for row in h["diff"] for v in row]
    assert max(v for v in flat if v is not None) == 5.0, "block maxima keep a single bad value visible"
    assert flat.count(5.0) == 1 and all(v is not None for v in flat)
    with_nan = _heatmap_details(shape=(4, 6), worst=(0, 1), nan=(2, 5))["tensors"][0]["heatmap"]
    assert with_nan["worst"] == [2, 5], "a NaN where a number was expected is the worst element"
    assert with_nan["got"][2][5] is None and with_nan["diff"][2][5] is None and with_nan["diff"][0][1] == 5.0
    small = begin_details()
    with contextlib.suppress(AssertionError):
        assert_tensor_close(torch.ones(3), torch.zeros(3), name="v")
    assert "heatmap" not in small["tensors"][0], "a vector has no picture"


def test_report_draws_expected_got_and_difference_heatmaps_within_a_size_budget(tmp_path):
    checks = [CheckResult(f"public/t.py::c{i}", f"matrix {i}", Status.FAIL, 0, 1, Visibility.PUBLIC, "differs",
                          details=_heatmap_details()) for i in range(10)]
    checks.append(CheckResult("hidden/t.py::m", "secret matrix", Status.FAIL, 0, 1, Visibility.MESSAGE_ONLY,
                              "differs", details=_heatmap_details()))
    page = HtmlReporter().write(_result(checks), tmp_path)
    html = page.read_text()
    assert html.count('class="heatmaps"') == 6, "at most six pictures in one report"
    assert html.count('class="worst"') == 18 and "the worst element, at [1, 33, 7]" in html
    assert "attention weights expected, 40 x 50 in 16 x 16 blocks" in html and "|got - expected|" in html
    assert page.stat().st_size < 1_000_000
    assert "secret matrix" in html and html.count("attention weights[1]") == 6, "a message-only check draws none"
