"""Exports read the published grades: CSV for an LMS, JUnit XML for CI, Gradescope results.json."""

from __future__ import annotations

import csv
import importlib.util
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from grader.errors import GraderError
from grader.gradebook import Gradebook, Run
from grader.reports.exports import export

_spec = importlib.util.spec_from_file_location(
    "make_class", Path(__file__).parent / "fixtures" / "class_roster" / "make_class.py")
assert _spec and _spec.loader
make_class = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_class)


@pytest.fixture
def graded(tmp_path):
    make_class.synthetic_results(tmp_path, students=5, exercises=("ex-a", "ex-b"), checks=3)
    return tmp_path


def test_exports_csv_one_row_per_student_one_column_per_exercise(graded):
    path = export(graded, "csv")
    assert path == graded / "exports" / "grades.csv"
    with path.open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["student", "ex-a", "ex-b", "total"]
    assert len(rows) == 6
    for row in rows[1:]:
        assert float(row[3]) == pytest.approx(float(row[1]) + float(row[2]))


def test_exports_junit_is_valid_xml_even_with_control_characters(graded):
    doc_path = graded / "s0000" / "ex-a" / "results.json"
    doc = json.loads(doc_path.read_text())
    doc["tests"][0]["output"] = "bad \x00\x1b[31m bytes <&>"
    doc["tests"][0]["extra_data"]["status"] = "fail"
    doc_path.write_text(json.dumps(doc))
    root = ET.parse(export(graded, "junit")).getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 10 and all(int(s.get("tests")) == 3 for s in suites)
    first = next(s for s in suites if s.get("name") == "s0000/ex-a")
    assert first.find("testcase/failure").text.startswith("bad ?")


def test_exports_gradescope_uses_the_published_score_after_policies(graded):
    with Gradebook.open(graded) as gb:
        row = gb.grades()[0]
        gb.record(Run(**{**{k: row[k] for k in Run.__dataclass_fields__}, "final_score": 0.5,
                         "policy_note": "late by 30.0 h (2 days): -20%"}), publish=True)
    export(graded, "gradescope")
    exported = graded / "exports" / "gradescope" / row["student"] / row["exercise"] / "results.json"
    doc = json.loads(exported.read_text())
    assert doc["score"] == 0.5 and "late by 30.0 h" in doc["output"]
    assert doc["extra_data"]["raw_score"] == row["score"]


def test_exports_grader_errors_never_reach_the_lms(tmp_path):
    with Gradebook.open(tmp_path) as gb:
        gb.record(Run(student="bob", exercise="ex", submission_path="/s", submission_hash="h", exercise_version="1",
                      checks_hash="c", grader_version="0", profile="cpu", sandbox="bwrap", status="grader_error",
                      score=0, max_score=4, final_score=0, started_at="t", finished_at="t", result_dir="",
                      results_sha256=""), publish=True)
    with pytest.raises(GraderError, match="no published grades"):
        export(tmp_path, "csv")
