"""A job's worker is started as its runner starts: the same worker, only earlier, with the same verdicts.

The runner calls :meth:`WorkerSession.prestart` before pytest collects the checks, so the worker's cold start
(python, torch, solution.py's imports) overlaps the runner's. These tests drive a real session on a real
backend (bwrap where it is installed, else the process sandbox) with the runner's work stood in by a sleep.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest

from grader.sandbox import Limits, WorkerSpec, install_worker
from grader.sandbox.remote import StudentProxy, SubmissionLoadError, WorkerSession, WorkerTimeout

IMPORT_S = 1.5  # what solution.py spends at import, standing in for torch


def _backend():
    from grader.builtin.sandbox_bwrap import BwrapSandbox
    from grader.builtin.sandbox_process import ProcessSandbox

    bwrap = BwrapSandbox()
    return bwrap if shutil.which("bwrap") and bwrap.available() else ProcessSandbox()


def _session(tmp_path: Path, source: str, import_timeout_s: float = 30.0) -> WorkerSession:
    sub = tmp_path / "submission"
    sub.mkdir()
    (sub / "solution.py").write_text(source)
    worker_dir = install_worker(tmp_path / "worker")
    job_id = uuid.uuid4().hex[:12]
    count = [0]

    def spec() -> WorkerSpec:
        count[0] += 1
        scratch = tmp_path / f"scratch-{count[0]}"
        scratch.mkdir(mode=0o777)
        return WorkerSpec(job_id=job_id, submission_dir=sub, scratch_dir=scratch, worker_dir=worker_dir,
                          limits=Limits(memory_mb=1024))

    tmp_path.chmod(0o755)
    return WorkerSession(_backend(), spec, import_timeout_s)


def _student(session: WorkerSession) -> StudentProxy:
    return StudentProxy(session, time.monotonic() + 60)


SLOW_IMPORT = f"import time\ntime.sleep({IMPORT_S})\n\ndef add(a, b):\n    return a + b\n"


def test_prestarted_worker_answers_without_the_checks_waiting_for_its_start(tmp_path):
    session = _session(tmp_path, SLOW_IMPORT)
    try:
        session.prestart()
        time.sleep(IMPORT_S + 1.0)  # the runner collecting checks meanwhile
        started = time.perf_counter()
        assert _student(session).add(2, 3) == 5
        first_call = time.perf_counter() - started
    finally:
        session.close()
    assert session.phases["starts"] == 1, "the first call used the worker started early"
    assert session.phases["worker_startup_s"] >= IMPORT_S
    assert session.phases["worker_wait_s"] < session.phases["worker_startup_s"] - 0.5
    assert first_call < IMPORT_S, f"the first call waited {first_call:.2f} s for a worker already started"


def test_without_prestart_the_first_call_waits_for_the_whole_start(tmp_path):
    session = _session(tmp_path, SLOW_IMPORT)
    try:
        assert _student(session).add(1, 1) == 2
    finally:
        session.close()
    assert session.phases["worker_wait_s"] == pytest.approx(session.phases["worker_startup_s"], abs=0.05)


def test_the_import_deadline_runs_from_the_early_start(tmp_path):
    """A solution.py that never finishes importing times out by the import limit counted from its start:
    the checks' later first call does not give it more time, and says what timed out."""
    session = _session(tmp_path, "import time\ntime.sleep(60)\n", import_timeout_s=2.0)
    try:
        session.prestart()
        time.sleep(1.0)
        started = time.perf_counter()
        with pytest.raises(WorkerTimeout, match=r"importing solution\.py"):
            _student(session).add(1, 1)
        assert time.perf_counter() - started < 2.0, "the deadline was counted from the first call"
        with pytest.raises(WorkerTimeout):  # the outcome stands for every later call
            _student(session).add(1, 1)
    finally:
        session.close()
    assert session.phases["starts"] == 1


def test_a_load_error_found_early_is_reported_by_the_first_call(tmp_path):
    session = _session(tmp_path, "def add(a, b)\n    return a + b\n")
    try:
        session.prestart()
        time.sleep(0.5)
        with pytest.raises(SubmissionLoadError, match="syntax error on line 1"):
            _student(session).add(1, 1)
    finally:
        session.close()


def test_a_worker_killed_by_a_call_is_restarted_cold_for_the_next(tmp_path):
    session = _session(tmp_path, "import os\n\ndef add(a, b):\n    return a + b\n\ndef die():\n    os._exit(3)\n")
    try:
        session.prestart()
        student = _student(session)
        assert student.add(1, 2) == 3
        with pytest.raises(Exception, match="exit"):
            student.die()
        assert student.add(2, 2) == 4
    finally:
        session.close()
    assert session.phases["starts"] == 2


SUBMISSIONS = {
    "right": "def add(a, b):\n    return a + b\n\n\ndef scale(t, k):\n    return t * k\n",
    "wrong": "def add(a, b):\n    return a - b\n\n\ndef scale(t, k):\n    return t * k\n",
    "broken": "def add(a, b)\n    return a + b\n",
}


@pytest.mark.parallel
@pytest.mark.parametrize("kind", SUBMISSIONS)
def test_a_job_grades_the_same_with_its_worker_started_early_or_late(registries, tmp_path, kind):
    from grader import api
    from grader.config import Settings

    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "solution.py").write_text(SUBMISSIONS[kind])
    results = {}
    for prestart in (True, False):
        settings = Settings.load({"work_dir": tmp_path / "jobs", "prestart": prestart}, cwd=tmp_path)
        result = api.grade(registries, "sample-add", sub, settings)
        results[prestart] = [(c.name, c.status, c.score, c.message) for c in result.checks]
    assert results[True] == results[False]
    if kind == "right":
        assert all(status.value == "pass" for _, status, _, _ in results[True])
