"""report.html in a real headless Chromium: it loads, renders the checks, runs no student script."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import skip_unless_required  # tests/ is on sys.path under pytest

from grader.builtin.report_html import HtmlReporter
from grader.models import CheckResult, Exercise, GradeResult, Status, Visibility

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _chromium():
    if not CHROMIUM:
        skip_unless_required("BROWSER", "chromium is not installed")


def _report(tmp_path: Path) -> Path:
    ex = Exercise(id="demo", title="Demo", level="foundation", points=3, stub_dir=Path("."), checks_dir=Path("."))
    details = {"tensors": [{"name": "out", "shape": [2, 3], "dtype": "float32", "max_abs_error": 0.5,
                            "worst_index": [1, 2], "mismatched": 1, "total": 6, "problem": "values"}],
               "series/loss": [3.0, 2.0, 1.0]}
    import torch

    from grader.testing import assert_tensor_close, begin_details, confusion, curve

    run = begin_details()
    curve("loss", [3.0 / (1 + i) for i in range(40)], reference=[2.5 / (1 + i) for i in range(40)], target=0.2)
    confusion("held-out", [0, 1, 1, 0], [0, 1, 0, 0], classes=["negative", "positive"])
    matrix = begin_details()
    want = torch.softmax(torch.randn(20, 20, generator=torch.Generator().manual_seed(0)), dim=-1)
    got = want.clone()
    got[4, 11] = 0.9
    with contextlib.suppress(AssertionError):
        assert_tensor_close(got, want, name="weights")
    checks = (
        CheckResult("public/t.py::a", "matches the reference", Status.FAIL, 0, 2, Visibility.PUBLIC,
                    "1 of 6 values differ", "<script>document.title='pwned'</script>", details),
        CheckResult("public/t.py::b", "rows sum to one", Status.PASS, 1, 1, Visibility.PUBLIC),
        CheckResult("public/t.py::c", "attention weights", Status.FAIL, 0, 1, Visibility.PUBLIC, "differs",
                    details=matrix),
        CheckResult("hidden/t.py::d", "trains to the target", Status.FAIL, 0, 1, Visibility.MESSAGE_ONLY,
                    "the loss stayed above the target", details=run),
    )
    result = GradeResult(exercise=ex, submission="alice", mode="grade", checks=checks,
                         provenance={"seed": 0, "isolation": {"backend": "bwrap"}}, execution_time_s=1.0,
                         stderr_tail="<img src=x onerror=\"document.title='pwned'\">")
    return HtmlReporter().write(result, tmp_path)


def _chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120)


def test_report_browser_renders_and_runs_no_student_script(tmp_path):
    page = _report(tmp_path)
    dom = _chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    assert "matches the reference" in dom and "rows sum to one" in dom
    assert "<title>Demo — alice: 1/5</title>" in dom, "a student script changed the page"
    assert dom.count('<polyline class="mine"') == 2 and dom.count('<polyline class="reference"') == 1
    assert '<line class="target"' in dom and "step 39: 0.075" in dom, "numbers on hover"
    assert dom.count('class="confusion"') == 1 and "true positive, predicted negative: 1 (50 % of true positive)" in dom
    assert dom.count('class="heatmap"') == 3 and dom.count('class="worst"') == 3, "expected, got, difference"
    assert "the worst element, at [4, 11]" in dom
    shot = tmp_path / "report.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,900", page.as_uri(), profile=tmp_path / "profile2")
    assert shot.is_file() and shot.stat().st_size > 10_000
