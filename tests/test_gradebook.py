"""The gradebook: runs are appended, grades point at one run, grader errors never become scores."""

from __future__ import annotations

import sqlite3

import pytest

from grader.errors import GraderError
from grader.gradebook import Gradebook, Run, require


def _run(status: str = "pass", score: float = 4.0, digest: str = "h1", kind: str = "batch") -> Run:
    return Run(student="alice", exercise="ex", submission_path="/s", submission_hash=digest, exercise_version="1",
               checks_hash="c", grader_version="0.1.0", profile="cpu", sandbox="bwrap", status=status, score=score,
               max_score=4.0, final_score=score, started_at="t0", finished_at="t1", result_dir="alice/ex",
               results_sha256="x", kind=kind)


def test_gradebook_uses_wal_and_survives_reopening(tmp_path):
    with Gradebook.open(tmp_path) as gb:
        gb.record(_run(), publish=True)
    con = sqlite3.connect(tmp_path / "gradebook.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()
    with Gradebook.open(tmp_path) as gb:
        assert [r["score"] for r in gb.grades()] == [4.0]


def test_gradebook_grader_error_is_never_published_and_is_retried(tmp_path):
    with Gradebook.open(tmp_path) as gb:
        gb.record(_run(status="grader_error", score=0.0), publish=True)
        assert gb.grades() == []
        assert gb.finished("alice", "ex", "h1", "1") is None, "a grader_error must be retried"
        gb.record(_run(score=3.0), publish=True)
        assert gb.finished("alice", "ex", "h1", "1")["score"] == 3.0
        assert gb.finished("alice", "ex", "h1", "2") is None, "a new exercise version is graded again"


def test_gradebook_new_submission_supersedes_and_pending_waits(tmp_path):
    with Gradebook.open(tmp_path) as gb:
        first = gb.record(_run(score=1.0), publish=True)
        second = gb.record(_run(score=2.0, digest="h2"), publish=True)
        assert [r["id"] for r in gb.grades()] == [second]
        assert gb.runs(state="superseded")[0]["id"] == first
        pending = gb.record(_run(score=4.0, digest="h2", kind="regrade"), publish=False)
        assert gb.grades()[0]["score"] == 2.0, "a pending regrade must not change the published grade"
        gb.publish([pending], {pending: "alice/ex"})
        assert gb.grades()[0]["id"] == pending
        assert len(gb.submissions_of("alice", "ex")) == 2


def test_gradebook_missing_explains_how_to_make_one(tmp_path):
    with pytest.raises(GraderError, match="grader batch ROSTER"):
        require(tmp_path)
