"""Batch grading a generated class of 32 students end to end: kill -9 mid-batch, resume, export, report.

One batch (``--workers 2``, in a subprocess, as an instructor runs it) is shared by the tests here.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from fixtures.class_roster import make_class  # tests/ is on sys.path under pytest

pytestmark = pytest.mark.slow
STUDENTS = 32


def grader_env(course: Path, work: Path) -> dict[str, str]:
    return dict(os.environ, GRADER_EXERCISES=str(course), GRADER_WORK_DIR=str(work), PYTHONDONTWRITEBYTECODE="1")


def _rows(db: Path, sql: str) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _wait_for_orphans(marker: str, timeout: float = 90.0) -> None:
    """Runners of the killed batch live in their own sessions; let them finish before the resume is timed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmd and "grader.checks.runner" in cmd:
                alive.append(pid)
        if not alive:
            return
        time.sleep(0.5)


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """The class graded with --workers 2, killed with SIGKILL after a few results, then resumed."""
    root = tmp_path_factory.mktemp("class")
    course = make_class.make_course(root / "course")
    expected = make_class.make_class(root / "roster", students=STUDENTS)
    env = grader_env(course, root / "jobs")
    out = root / "out"
    cmd = [sys.executable, "-m", "grader", "batch", str(root / "roster"), "--out", str(out), "--workers", "2"]
    first = subprocess.Popen(cmd, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    db = out / "gradebook.sqlite"
    deadline = time.monotonic() + 240
    while len(_rows(db, "SELECT id FROM runs")) < 8 and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert first.poll() is None, "the batch finished before it could be killed"
    first.send_signal(signal.SIGKILL)
    first.communicate()
    before_kill = _rows(db, "SELECT id, student, exercise, finished_at, score FROM runs ORDER BY id")
    killed_at = time.monotonic()
    _wait_for_orphans(str(root / "jobs"))
    print(f"orphans finished {time.monotonic() - killed_at:.1f} s after the kill")
    started = time.monotonic()
    resumed = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=600)
    print(f"resume took {time.monotonic() - started:.1f} s")
    return {"root": root, "out": out, "course": course, "expected": expected, "env": env, "cmd": cmd,
            "before_kill": before_kill, "resumed": resumed, "resume_s": time.monotonic() - started}


def test_batch_resume_after_kill_redoes_nothing_and_loses_nothing(graded_class):
    resumed, out = graded_class["resumed"], graded_class["out"]
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    before = graded_class["before_kill"]
    assert len(before) >= 8
    assert f"{len(before)} already graded" in resumed.stdout
    db = out / "gradebook.sqlite"
    after = _rows(db, "SELECT id, student, exercise, finished_at, score FROM runs ORDER BY id")
    assert after[: len(before)] == before, "a run finished before the kill was redone or changed"
    jobs = graded_class["expected"]
    assert len(after) == len(jobs), "a job is missing or was recorded twice"
    assert len({(r[1], r[2]) for r in after}) == len(jobs)
    grades = {(s, e): (score, status) for s, e, score, status in _rows(
        db, "SELECT runs.student, runs.exercise, runs.score, runs.status FROM grades JOIN runs ON runs.id = run_id")}
    assert grades == jobs


def test_batch_rerun_is_a_no_op_and_files_match_the_gradebook(graded_class):
    again = subprocess.run(graded_class["cmd"], env=graded_class["env"], cwd=graded_class["root"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0
    assert f"0 graded, {len(graded_class['expected'])} already graded" in again.stdout
    out = graded_class["out"]
    for student, exercise, rel, sha in _rows(out / "gradebook.sqlite",
                                             "SELECT student, exercise, result_dir, results_sha256 FROM runs"):
        assert rel == f"{student}/{exercise}"
        doc = (out / rel / "results.json").read_bytes()
        import hashlib

        assert hashlib.sha256(doc).hexdigest() == sha
        assert (out / rel / "report.html").is_file()
    assert not (out / ".staging").exists()


def test_batch_records_provenance_and_explains_broken_work(graded_class):
    out = graded_class["out"]
    row = _rows(out / "gradebook.sqlite", "SELECT grader_version, exercise_version, profile, sandbox, started_at, "
                "finished_at, submission_hash FROM runs LIMIT 1")[0]
    assert all(row) and len(row[-1]) == 64
    broken = json.loads((out / f"student{STUDENTS - 2:02d}" / "sample-add" / "results.json").read_text())
    assert "not a readable Jupyter notebook" in broken["output"]
    notebook = json.loads((out / f"student{STUDENTS - 1:02d}" / "sample-add" / "results.json").read_text())
    assert notebook["score"] == graded_class["expected"][(f"student{STUDENTS - 1:02d}", "sample-add")][0]


def test_batch_exports_all_three_formats(graded_class):
    out, env, root = graded_class["out"], graded_class["env"], graded_class["root"]
    for fmt in ("csv", "junit", "gradescope"):
        done = subprocess.run([sys.executable, "-m", "grader", "export", str(out), "--format", fmt], env=env,
                              cwd=root, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    with (out / "exports" / "grades.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == STUDENTS
    expected = graded_class["expected"]
    for row in rows:
        for ex in ("sample-add", "hostile-target"):
            want = expected.get((row["student"], ex))
            assert row[ex] == ("" if want is None else f"{want[0]:g}")
    suites = ET.parse(out / "exports" / "junit.xml").getroot().findall("testsuite")
    assert len(suites) == len(expected)
    assert sum(int(s.get("failures")) + int(s.get("errors")) for s in suites) > 0
    gs_path = out / "exports" / "gradescope" / f"student{STUDENTS - 1}" / "sample-add" / "results.json"
    gs = json.loads(gs_path.read_text())
    assert set(gs) >= {"score", "max_score", "tests", "output", "visibility"}
    assert all(set(t) <= {"name", "number", "score", "max_score", "status", "output", "visibility", "extra_data"}
               for t in gs["tests"])


def test_batch_class_report_loads_in_chromium(graded_class, tmp_path):
    from test_report_browser import CHROMIUM, _chromium

    out, env = graded_class["out"], graded_class["env"]
    done = subprocess.run([sys.executable, "-m", "grader", "report", str(out)], env=env, cwd=graded_class["root"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page = out / "class.html"
    html = page.read_text()
    assert html.count('<tr>') >= STUDENTS and "score-histogram" in html
    assert "http://" not in html and "https://" not in html and "<script" not in html
    if not CHROMIUM:
        pytest.skip("chromium is not installed")
    dom = _chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p1").stdout
    assert "Students by score" in dom and "student00" in dom
    shot = tmp_path / "class.png"
    _chromium(f"--screenshot={shot}", "--window-size=1200,1600", page.as_uri(), profile=tmp_path / "p2")
    assert shot.is_file() and shot.stat().st_size > 10_000
