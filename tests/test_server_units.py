"""The grading server's parts without HTTP: token store, queue transactions, views, rate-limit timing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from grader.builtin.policy_rate_limit import RateLimit
from grader.errors import GraderError
from grader.gradebook import Run
from grader.models import CheckResult, Exercise, GradeResult, Status, Visibility
from grader.policies import ClassPolicy, JobInfo
from grader.server.service import read_roster
from grader.server.store import ServerStore
from grader.server.views import Release, checks_json, shape


def _run(student: str = "alice", status: str = "pass") -> Run:
    return Run(student=student, exercise="ex", submission_path="p", submission_hash="h", exercise_version="1",
               checks_hash="c", grader_version="0", profile="cpu", sandbox="bwrap", status=status, score=1.0,
               max_score=2.0, final_score=1.0, started_at="t0", finished_at="t1", result_dir="", results_sha256="",
               kind="submit")


def test_server_store_keeps_only_token_hashes(tmp_path):
    store = ServerStore(tmp_path / "gb.sqlite")
    token = store.issue("alice", "student")
    assert token and token.startswith("grd_")
    assert store.issue("alice", "student") is None, "a live token is not silently replaced"
    assert store.holder(token) == ("alice", "student")
    assert store.holder(token + "x") is None
    store.gradebook.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert token.encode() not in raw and token[4:].encode() not in raw
    fresh = store.issue("alice", "student", reissue=True)
    assert fresh and store.holder(token) is None and store.holder(fresh) == ("alice", "student")
    assert store.revoke("alice") == 1 and store.holder(fresh) is None


def _queued(store: ServerStore, sid: str, student: str = "alice") -> None:
    store.accept(student, "ex", "solution.py", Path("/nowhere"), "h", 1, sid=sid)


def test_server_store_records_a_submission_exactly_once(tmp_path):
    store = ServerStore(tmp_path / "gb.sqlite")
    _queued(store, "s1")
    row = store.claim()
    assert row is not None and row["id"] == "s1" and row["state"] == "running" and row["claims"] == 1
    assert store.claim() is None
    run_id = store.finish("s1", _run(), publish=True)
    with pytest.raises(RuntimeError, match="not recorded twice"):
        store.finish("s1", _run(), publish=True)
    runs = store.gradebook.runs()
    assert [r["id"] for r in runs] == [run_id], "the refused second result left nothing behind"
    assert store.get("s1")["state"] == "done" and store.get("s1")["run_id"] == run_id
    assert [g["id"] for g in store.gradebook.grades()] == [run_id]


def test_server_store_requeues_what_a_killed_server_was_grading(tmp_path):
    store = ServerStore(tmp_path / "gb.sqlite")
    for sid in ("a", "b"):
        _queued(store, sid)
    assert store.claim()["id"] == "a"
    restarted = ServerStore(tmp_path / "gb.sqlite")
    assert restarted.requeue_interrupted() == 1
    assert restarted.claim()["id"] == "a", "the interrupted one keeps its place at the head of the queue"
    assert restarted.get("a")["claims"] == 2


def test_server_store_retries_a_grader_error_without_publishing(tmp_path):
    store = ServerStore(tmp_path / "gb.sqlite")
    _queued(store, "s1")
    store.claim()
    store.retry("s1", _run(status="grader_error"))
    assert store.get("s1")["state"] == "queued"
    assert store.gradebook.grades() == [] and store.gradebook.runs()[0]["state"] == "failed"


def test_server_store_admit_refuses_inside_the_transaction(tmp_path):
    store = ServerStore(tmp_path / "gb.sqlite")
    _queued(store, "s1")

    def admit(received_at: str, earlier: list[str]) -> None:
        assert len(earlier) == 1 and earlier[0] <= received_at
        raise ValueError("over the limit")

    with pytest.raises(ValueError):
        store.accept("alice", "ex", "solution.py", Path("/x"), "h", 1, sid="s2", admit=admit)
    assert store.get("s2") is None and store.counts()["queued"] == 1


def test_server_store_times_concurrent_submissions_in_the_order_it_records_them(tmp_path):
    # a receive time taken before waiting for the write lock let a later-recorded upload look older, so a
    # rate limit counting "earlier" submissions missed it; the time is now taken inside the transaction
    import threading
    import time

    store = ServerStore(tmp_path / "gb.sqlite")

    def admit(received_at: str, earlier: list[str]) -> None:
        assert all(t <= received_at for t in earlier), "every submission already recorded arrived earlier"
        time.sleep(0.005)  # hold the lock a little, so the uploads queue up behind it

    errors: list[BaseException] = []

    def upload(i: int) -> None:
        try:
            ServerStore(tmp_path / "gb.sqlite").accept("alice", "ex", "solution.py", Path("/x"), "h", 1,
                                                       sid=f"s{i}", admit=admit)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    times = [r["received_at"] for r in reversed(store.listing(student="alice"))]
    assert len(times) == 8 and times == sorted(times)


def _result() -> GradeResult:
    ex = Exercise(id="ex", title="Ex", level="foundation", points=4, stub_dir=Path("."), checks_dir=Path("."))
    checks = (
        CheckResult("public/t.py::a", "public one", Status.FAIL, 0, 1, Visibility.PUBLIC, "off by one", "diff",
                    {"tensors": []}),
        CheckResult("hidden/t.py::b", "secret edge case", Status.FAIL, 0, 2, Visibility.HIDDEN, "n=0 fails", "tb"),
        CheckResult("hidden/t.py::c", "big inputs", Status.PASS, 1, 1, Visibility.MESSAGE_ONLY, "ok", "tb",
                    {"tensors": [1]}),
    )
    return GradeResult(exercise=ex, submission="alice", mode="grade", checks=checks, provenance={},
                       execution_time_s=1.0)


def test_server_views_before_release_count_hidden_checks_only():
    shown, hidden = checks_json(shape(_result(), instructor=False, released=False, after_release="full"))
    assert hidden == {"count": 1, "score": 0.0, "max_score": 2.0}
    assert [c["title"] for c in shown] == ["public one", "big inputs"]
    assert shown[0]["output"] == "diff" and shown[0]["message"] == "off by one"
    assert "output" not in shown[1] and "details" not in shown[1] and "name" not in shown[1]
    text = repr(shape(_result(), instructor=False, released=False, after_release="full"))
    assert "secret edge case" not in text and "n=0 fails" not in text and "hidden/t.py::b" not in text


@pytest.mark.parametrize(("after", "titles", "hidden_count"), [
    ("full", ["public one", "secret edge case", "big inputs"], 0),
    ("message-only", ["public one", "secret edge case", "big inputs"], 0),
    ("unchanged", ["public one", "big inputs"], 1),
])
def test_server_views_after_release_follow_the_instructor(after, titles, hidden_count):
    shown, hidden = checks_json(shape(_result(), instructor=False, released=True, after_release=after))
    assert [c["title"] for c in shown] == titles and hidden["count"] == hidden_count
    secret = next((c for c in shown if c["title"] == "secret edge case"), None)
    if after == "message-only":
        assert secret is not None and secret["message"] == "n=0 fails" and "output" not in secret
    if after == "full":
        assert secret is not None and secret["output"] == "tb"


def test_server_views_instructor_sees_everything():
    shown, hidden = checks_json(shape(_result(), instructor=True, released=False, after_release="unchanged"))
    assert hidden["count"] == 0 and all(c["visibility"] == "public" for c in shown)


def test_server_release_reads_the_class_file():
    policy = ClassPolicy.from_dict({"release": {"ex": "2026-03-01T00:00:00+00:00"},
                                    "visibility": {"after_release": "message-only"}})
    release = Release.from_policy(policy)
    assert release.after_release == "message-only"
    assert not release.released("ex", datetime(2026, 2, 28, tzinfo=UTC))
    assert release.released("ex", datetime(2026, 3, 1, 1, tzinfo=UTC))
    assert not release.released("other", datetime(2030, 1, 1, tzinfo=UTC)), "no release time: never released"
    with pytest.raises(GraderError, match="after_release"):
        Release.from_policy(ClassPolicy.from_dict({"visibility": {"after_release": "everything"}}))


def test_server_rate_limit_names_the_next_allowed_time():
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    earlier = (now - timedelta(minutes=50), now - timedelta(minutes=20), now - timedelta(minutes=5))
    job = JobInfo("alice", "ex", now, None, earlier)
    policy = RateLimit()
    options = {"max_submissions": 2, "per_hours": 1}
    assert "limit 2" in policy.admit(job, options)
    # two of the three are in the window already: the second newest must leave it
    assert policy.next_allowed(job, options) == now - timedelta(minutes=20) + timedelta(hours=1)
    assert policy.next_allowed(job, {"max_submissions": 5, "per_hours": 1}) is None


def test_server_read_roster_accepts_common_headers_and_refuses_odd_names(tmp_path):
    roster = tmp_path / "r.csv"
    roster.write_text("username,email\nbob,b@x\nalice,a@x\n\n", encoding="utf-8")
    assert read_roster(roster) == ["alice", "bob"]
    roster.write_text("name\nalice\n", encoding="utf-8")
    with pytest.raises(GraderError, match="'student' column"):
        read_roster(roster)
    roster.write_text("student\n../etc\n", encoding="utf-8")
    with pytest.raises(GraderError, match="letters, digits"):
        read_roster(roster)


def test_server_restart_clears_what_was_never_accepted(registries, settings, tmp_path):
    from grader.server.service import open_service

    roster = tmp_path / "roster.csv"
    roster.write_text("student\nalice\n", encoding="utf-8")
    service = open_service(tmp_path / "gradebook.sqlite", roster, registries, settings, None)
    _queued(service.store, "kept")
    for name in ("kept", "orphan"):  # "orphan": renamed into place, then the server died before the commit
        (tmp_path / "uploads" / name).mkdir(parents=True)
        (tmp_path / "uploads" / name / "solution.py").write_text("x = 1\n")
    (tmp_path / ".incoming").mkdir()
    (tmp_path / ".incoming" / "half").write_bytes(b"PK")
    service.store.claim()  # a grading under way when the server died
    assert service.recover() == 1
    assert service.store.get("kept")["state"] == "queued"
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == ["kept"]
    assert not (tmp_path / ".incoming").exists()


def test_server_rereads_the_roster_when_it_changes(registries, settings, tmp_path):
    import os

    from grader.server.service import Refusal, open_service

    roster = tmp_path / "roster.csv"
    roster.write_text("student\nalice\n", encoding="utf-8")
    service = open_service(tmp_path / "gradebook.sqlite", roster, registries, settings, None)
    token = service.store.issue("bob", "student")
    assert token is not None
    with pytest.raises(Refusal) as refused:
        service.authenticate(token)
    assert refused.value.status == 403 and "not on this course's roster" in refused.value.detail
    roster.write_text("student\nalice\nbob\n", encoding="utf-8")
    os.utime(roster, (1, 2_000_000_000))  # a new stamp even within the file system's time resolution
    assert service.authenticate(token).name == "bob", "added mid-term: no restart needed"
    roster.write_text("no header here\n", encoding="utf-8")
    os.utime(roster, (1, 2_000_000_100))
    assert service.authenticate(token).name == "bob", "a broken edit keeps the last good roster"
