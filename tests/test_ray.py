"""The ray executor against a real local Ray cluster on loopback (`ray start --head`), never a mock.

CI starts the head and exports GRADER_RAY_ADDRESS (and GRADER_REQUIRE_RAY=1, so an unreachable
cluster fails instead of skipping); elsewhere this module starts a private head when Ray is installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from fixtures.class_roster import make_class  # tests/ is on sys.path under pytest

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _unavailable(why: str) -> None:
    if os.environ.get("GRADER_REQUIRE_RAY") == "1":
        pytest.fail(f"CI asked for Ray tests but {why}")
    pytest.skip(why)


def _ready(ray_bin: str, address: str) -> bool:
    done = subprocess.run([ray_bin, "status", f"--address={address}"], capture_output=True, text=True, timeout=60)
    return done.returncode == 0


@pytest.fixture(scope="module")
def ray_address():
    """The cluster from CI, or a private head on loopback stopped (by its process group) afterwards."""
    if os.environ.get("GRADER_RAY_ADDRESS"):
        yield os.environ["GRADER_RAY_ADDRESS"]
        return
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    if importlib.util.find_spec("ray") is None or not ray_bin:
        _unavailable("Ray is not installed (pip install 'grader[ray]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    temp = tempfile.mkdtemp(prefix="gr-ray-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}", "--num-cpus=2",
         "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _ready(ray_bin, address):
            if head.poll() is not None or time.monotonic() > deadline:
                _unavailable(f"a local Ray head did not start on {address}")
            time.sleep(1)
        yield address
    finally:
        head.send_signal(signal.SIGTERM)  # the head drains, then stops what it started
        try:
            head.wait(timeout=40)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGKILL)  # whatever of the head's group outlived it
        shutil.rmtree(temp, ignore_errors=True)


def _grades(out: Path) -> dict[tuple[str, str], tuple[float, str]]:
    con = sqlite3.connect(out / "gradebook.sqlite")
    try:
        rows = con.execute("SELECT runs.student, runs.exercise, runs.score, runs.status FROM grades "
                           "JOIN runs ON runs.id = grades.run_id").fetchall()
    finally:
        con.close()
    return {(s, e): (score, status) for s, e, score, status in rows}


def test_ray_executor_grades_the_same_jobs_into_the_same_gradebook(ray_address, tmp_path):
    course = make_class.make_course(tmp_path / "course")
    expected = make_class.make_class(tmp_path / "roster", students=6, sample=1)
    env = dict(os.environ, GRADER_EXERCISES=str(course), GRADER_WORK_DIR=str(tmp_path / "jobs"))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "grader", "batch", str(tmp_path / "roster"), "--out", str(out)]
    done = subprocess.run([*cmd, "--executor", "ray", "--address", ray_address], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _grades(out) == expected
    for (student, exercise) in expected:
        assert (out / student / exercise / "results.json").is_file()
        assert (out / student / exercise / "report.html").is_file()
    again = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and f"{len(expected)} already graded" in again.stdout, again.stdout


def test_serve_grades_each_submission_as_a_ray_task(ray_address, tmp_path):
    from test_server import _solution, make_server

    srv = make_server(tmp_path, "--executor", "ray", "--address", ray_address, "--workers", "2")
    try:
        work = {"alice": (make_class.GOOD, 4.0), "bob": (make_class.SCALE_WRONG, 2.0)}
        ids = {}
        for student, (source, _) in work.items():
            body = (_solution(tmp_path, student, source) / "solution.py").read_bytes()
            code, answer, _ = srv.call("POST", "/api/submissions?exercise=sample-add&filename=solution.py",
                                       srv.tokens[student], body)
            assert code == 202, answer
            ids[student] = answer["id"]
        srv.wait_done(list(ids.values()), timeout=300)
        scores = dict(srv.rows("SELECT student, score FROM runs WHERE kind = 'submit'"))
        assert scores == {s: score for s, (_, score) in work.items()}
        log = (tmp_path / "serve.log").read_text()
        assert "on Ray cluster" in log and log.count(" node ") >= 2, log  # each grading names its Ray node
        shown = srv.cli("submit", "sample-add", str(tmp_path / "work" / "alice"), "--json", token=srv.tokens["alice"])
        assert shown.returncode == 0, shown.stdout + shown.stderr
        result = json.loads(shown.stdout)
        assert result["score"] == 4.0
        with urllib.request.urlopen(result["report_url"], timeout=30) as page:  # the document the task wrote
            assert b"sample-add" in page.read()
    finally:
        srv.stop()
