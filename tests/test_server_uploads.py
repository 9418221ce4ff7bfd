"""Uploads a real server must survive: malformed archives and notebooks, stalled bodies, odd report links.

The app runs under uvicorn in a thread on loopback (no grading workers: nothing here is graded), so
each test speaks real HTTP without starting `grader serve`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass

import pytest
import uvicorn
from fixtures.bad_inputs import MALFORMED_ZIPS, NOT_NOTEBOOKS  # tests/ is on sys.path under pytest

from grader.server.app import create_app
from grader.server.service import Service, open_service


@dataclass
class Live:
    url: str
    port: int
    token: str
    service: Service


@pytest.fixture
def live(registries, settings, tmp_path) -> Iterator[Live]:
    roster = tmp_path / "roster.csv"
    roster.write_text("student\nalice\n", encoding="utf-8")
    service = open_service(tmp_path / "gradebook.sqlite", roster, registries, settings, None)
    service.upload_idle_s, service.upload_total_s = 0.5, 3.0
    token = service.store.issue("alice", "student")
    assert token
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning",
                                           backlog=1024))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield Live(f"http://127.0.0.1:{port}", port, token, service)
    server.should_exit = True
    thread.join(10)


def _post(live: Live, filename: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(f"{live.url}/api/submissions?exercise=sample-add&filename={filename}",
                                     data=body, method="POST", headers={"Authorization": f"Bearer {live.token}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.mark.parametrize("kind", sorted(MALFORMED_ZIPS))
def test_server_uploads_malformed_zip_is_a_422_naming_the_member(live, kind):
    build, words = MALFORMED_ZIPS[kind]
    code, body = _post(live, f"{kind}.zip", build())
    assert code == 422, body
    assert "archive was refused" in body["detail"] and words in body["detail"] and f"{kind}.zip" in body["detail"]
    assert live.service.store.counts()["queued"] == 0, "nothing refused is queued"


@pytest.mark.parametrize("kind", sorted(NOT_NOTEBOOKS))
def test_server_uploads_json_that_is_no_notebook_is_a_422(live, kind):
    code, body = _post(live, "work.ipynb", NOT_NOTEBOOKS[kind].encode())
    assert code == 422, body
    assert "notebook was refused" in body["detail"] and "work.ipynb" in body["detail"], body
    assert "not a notebook" in body["detail"]
    assert live.service.store.counts()["queued"] == 0


@pytest.mark.parametrize("sig", ["%C3%A9", "%E2%82%AC" * 3, "%ED%A0%80", "x" * 64])
def test_server_uploads_report_link_with_any_sig_is_a_404(live, sig):
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(f"{live.url}/reports/abc?view=student&expires=9999999999&sig={sig}", timeout=30)
    assert answer.value.code == 404
    assert "unknown or has expired" in json.loads(answer.value.read())["detail"]


def _stalled(live: Live) -> socket.socket:
    """A connection that announces a 1 kB upload, sends 10 bytes of it and then nothing."""
    sock = socket.create_connection(("127.0.0.1", live.port), timeout=30)
    sock.sendall((f"POST /api/submissions?exercise=sample-add&filename=solution.py HTTP/1.1\r\n"
                  f"Host: x\r\nAuthorization: Bearer {live.token}\r\nContent-Length: 1000\r\n\r\n"
                  "x = 1     ").encode())
    return sock


def _answer(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_server_uploads_stalled_body_is_dropped_with_a_408(live):
    started = time.monotonic()
    with closing(_stalled(live)) as sock:
        answer = _answer(sock)  # returns once the server closes the connection
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"stalled" in answer
    assert time.monotonic() - started < 10
    assert not any((live.service.data / ".incoming").iterdir()), "the half upload is not kept"


def test_server_uploads_hundreds_of_stalled_connections_do_not_starve_a_student(live):
    socks = [_stalled(live) for _ in range(300)]
    try:
        started = time.monotonic()
        code, body = _post(live, "solution.py", b"def add(a, b):\n    return a + b\n")
        assert code == 202, body
        assert time.monotonic() - started < 5, "a real upload waited behind the stalled ones"
        answers = [_answer(s) for s in socks]
    finally:
        for s in socks:
            s.close()
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers), {a[:30] for a in answers}
