"""The class report: static HTML, inline SVG, escaped, links to each student's report; 1,000 students."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from grader.reports.class_report import histogram, write_class_report

_spec = importlib.util.spec_from_file_location(
    "make_class", Path(__file__).parent / "fixtures" / "class_roster" / "make_class.py")
assert _spec and _spec.loader
make_class = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_class)


def test_class_report_histogram_bins_every_student():
    bars = histogram([0, 5, 50, 99.9, 100, 100])
    assert [b["count"] for b in bars] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 3]
    assert max(b["h"] for b in bars) > 0 and all(b["y"] >= 0 for b in bars)


def test_class_report_is_self_contained_escaped_and_linked(tmp_path):
    out = tmp_path / "out"
    make_class.synthetic_results(out, students=12)
    page = write_class_report(out, tmp_path / "site" / "class.html")
    html = page.read_text()
    assert "<svg" in html and "score-histogram" in html
    assert "&lt;b&gt;escaped&lt;/b&gt;" in html and "<b>escaped</b>" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the page must load nothing from elsewhere"
    links = re.findall(r'href="([^"]+)"', html)
    assert len(links) == 36 and all((page.parent / link).is_file() for link in links)
    for section in ("Score distribution", "Exercises", "Checks: pass rates", "Slowest checks", "Students by score"):
        assert section in html


@pytest.mark.slow
def test_class_report_1000_students_loads_in_chromium(tmp_path):
    from test_report_browser import CHROMIUM, _chromium

    out = tmp_path / "out"
    make_class.synthetic_results(out, students=1000, exercises=("ex-a",))
    page = write_class_report(out, out / "class.html")
    assert page.read_text().count('<td class="num">') >= 2000
    if not CHROMIUM:
        pytest.skip("chromium is not installed")
    dom = _chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p1").stdout
    assert "s0999" in dom and "score-histogram" in dom
    shot = tmp_path / "class.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri(), profile=tmp_path / "p2")
    assert shot.is_file() and shot.stat().st_size > 10_000
