"""The student client against a real local HTTP server that fakes the contract in docs/server.md."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import click
import pytest
from click.testing import CliRunner

from grader.cli.client import COMMANDS
from grader.client import http as client_mod
from grader.client.http import AuthError, Client, Credentials, load_credentials, pack, save_credentials
from grader.errors import GraderError

TOKEN = "tok-S3CRET-4242-do-not-print"
RECEIVED = "2026-03-01T12:00:00.000+00:00"
NEXT_ALLOWED = "2026-03-01T13:00:00+00:00"


class FakeGrader(ThreadingHTTPServer):
    """The server's state: uploads as received, and how often each submission was polled."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.uploads: list[dict[str, Any]] = []
        self.subs: dict[str, dict[str, Any]] = {}
        self.polls: dict[str, int] = {}

    def new_submission(self, exercise: str, filename: str) -> dict[str, Any]:
        sid = f"{len(self.subs) + 1:04d}aaaabbbbcccc"
        self.subs[sid] = {"id": sid, "student": "alice", "exercise": exercise, "filename": filename,
                          "received_at": RECEIVED, "state": "queued", "position": 2, "status": None,
                          "score": None, "max_score": None, "final_score": None, "policy_note": None,
                          "finished_at": None, "report_url": None}
        return self.subs[sid]

    def finish(self, sid: str) -> None:
        self.subs[sid].update(
            state="done", position=None, status="fail", score=12.0, max_score=15.0, final_score=10.8,
            policy_note="late by 3.0 h (-10%)", finished_at=RECEIVED,
            report_url=f"{self.url}/reports/{sid}?view=student&expires=1&sig=abc",
            checks=[{"title": "output shape", "status": "pass", "score": 2.0, "max_score": 2.0,
                     "visibility": "public", "message": "", "output": "", "details": {}},
                    {"title": "causal mask", "status": "fail", "score": 0.0, "max_score": 3.0,
                     "visibility": "public", "message": "position 0 attends to position 3", "output": "",
                     "details": {}}],
            hidden={"count": 2, "score": 1.0, "max_score": 3.0})


class Handler(BaseHTTPRequestHandler):
    server: FakeGrader

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/html" if isinstance(payload, bytes) else "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _authorized(self) -> bool:
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            return True
        self._answer(401, {"detail": "unknown token; ask your instructor for yours"}, {"WWW-Authenticate": "Bearer"})
        return False

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self._authorized():
            return
        if url.path == "/api/me":
            return self._answer(200, {"name": "alice", "role": "student"})
        if url.path == "/api/submissions":
            wanted = parse_qs(url.query).get("exercise", [None])[0]
            subs = [s for s in reversed(self.server.subs.values()) if wanted in (None, s["exercise"])]
            return self._answer(200, {"submissions": subs})
        sid = url.path.rsplit("/", 1)[-1]
        if sid not in self.server.subs:
            return self._answer(404, {"detail": f"no submission {sid}"})
        self.server.polls[sid] = self.server.polls.get(sid, 0) + 1
        sub = self.server.subs[sid]
        if self.server.polls[sid] >= 2 and sub["exercise"] != "slow":
            self.server.finish(sid)
        else:
            sub.update(state="running" if self.server.polls[sid] > 1 else "queued")
        return self._answer(200, sub)

    def do_POST(self) -> None:
        query = parse_qs(urlsplit(self.path).query)
        body = self.rfile.read(int(self.headers["Content-Length"]))  # all of it: no reset under the client
        self.server.uploads.append({"query": query, "headers": dict(self.headers), "body": body})
        if not self._authorized():
            return
        exercise = query["exercise"][0]
        if exercise == "limited":
            return self._answer(429, {"detail": "10 submissions per hour to limited", "limit": 10,
                                      "window_hours": 1, "next_allowed_at": NEXT_ALLOWED}, {"Retry-After": "120"})
        refusals = {"big": (413, "the upload is over 20 MB"), "nope": (404, "unknown exercise 'nope'"),
                    "boom": (500, "internal server error")}
        if exercise in refusals:
            code, detail = refusals[exercise]
            return self._answer(code, {"detail": detail})
        if exercise == "garbage":
            return self._answer(202, b"<html>a captive portal</html>")
        return self._answer(202, self.server.new_submission(exercise, query["filename"][0]))


@pytest.fixture
def server():
    fake = FakeGrader()
    thread = threading.Thread(target=fake.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield fake
    fake.shutdown()
    fake.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("GRADER_SERVER", raising=False)
    monkeypatch.delenv("GRADER_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(client_mod, "sleep", lambda s: None)  # polls back to back: the tests stay fast


@pytest.fixture
def run():
    from grader.cli import GraderGroup

    @click.group(cls=GraderGroup)
    def cli() -> None:
        pass

    for command in COMMANDS:
        cli.add_command(command)

    def invoke(*args: str, input: str | None = None):
        result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)
        assert TOKEN not in result.output and TOKEN not in result.stderr
        return result

    return invoke


def _folder(root: Path) -> Path:
    sub = root / "self-attention"
    (sub / "helpers").mkdir(parents=True)
    (sub / "solution.py").write_text("def attend(q, k, v):\n    return v\n")
    (sub / "helpers" / "util.py").write_text("X = 1\n")
    for junk in ("__pycache__/solution.cpython-311.pyc", ".git/config", "__MACOSX/._solution.py",
                 ".venv/lib/site.py", ".ipynb_checkpoints/x.ipynb", "helpers/__pycache__/util.pyc"):
        (sub / junk).parent.mkdir(parents=True, exist_ok=True)
        (sub / junk).write_text("junk")
    return sub


def test_client_pack_folder_zips_regular_files_skipping_junk(tmp_path):
    name, body = pack(_folder(tmp_path))
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert name == "submission.zip"
    assert sorted(archive.namelist()) == ["helpers/util.py", "solution.py"]
    assert archive.read("solution.py") == (tmp_path / "self-attention" / "solution.py").read_bytes()


@pytest.mark.parametrize("link", ["file", "dir"])
def test_client_pack_refuses_symlinks(tmp_path, link):
    sub = _folder(tmp_path)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key").write_text("private")
    target = tmp_path / "secret" / ("key" if link == "file" else "")
    (sub / "helpers" / "linked").symlink_to(target)
    with pytest.raises(GraderError, match=r"helpers/linked is a symbolic link"):
        pack(sub)


def test_client_pack_refuses_a_folder_without_solution_and_over_the_limits(tmp_path, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("todo")
    with pytest.raises(GraderError, match=r"neither solution\.py nor a notebook"):
        pack(empty)
    (empty / "solution.ipynb").write_text("{}")
    assert pack(empty)[0] == "submission.zip"  # a notebook alone will do
    monkeypatch.setattr(client_mod, "MAX_FILES", 1)
    with pytest.raises(GraderError, match="over 1 files"):
        pack(empty)


def test_client_pack_single_files(tmp_path):
    files = {"mine.py": b"x = 1\n", "work.ipynb": b"{}", "alice.zip": b"PK\x05\x06" + bytes(18), "notes.txt": b""}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert pack(tmp_path / "mine.py") == ("solution.py", b"x = 1\n")
    assert pack(tmp_path / "work.ipynb") == ("work.ipynb", b"{}")
    assert pack(tmp_path / "alice.zip") == ("alice.zip", files["alice.zip"])
    with pytest.raises(GraderError, match="cannot be submitted"):
        pack(tmp_path / "notes.txt")
    with pytest.raises(GraderError, match="does not exist"):
        pack(tmp_path / "missing")


def test_client_credentials_precedence(monkeypatch):
    save_credentials(Credentials("http://saved.example", "saved-token"))
    assert load_credentials(None, None) == Credentials("http://saved.example", "saved-token")
    monkeypatch.setenv("GRADER_TOKEN", "env-token")
    assert load_credentials(None, None).token == "env-token"
    assert load_credentials(None, "arg-token").token == "arg-token"
    monkeypatch.setenv("GRADER_SERVER", "https://env.example/")
    assert load_credentials(None, None) == Credentials("https://env.example", "env-token")
    assert load_credentials("https://arg.example/", None).server == "https://arg.example"
    monkeypatch.delenv("GRADER_TOKEN")
    with pytest.raises(AuthError, match=r"grader login --server https://env\.example"):
        load_credentials(None, None)  # the saved token belongs to the saved server only
    with pytest.raises(GraderError, match="not a server address"):
        load_credentials("ftp://files.example", "t")


def test_client_credentials_missing_server_is_a_usage_error():
    with pytest.raises(GraderError, match="--server") as info:
        load_credentials(None, None)
    assert info.value.exit_code == 2


def test_client_credentials_file_is_private(tmp_path):
    path = save_credentials(Credentials("https://grader.example", TOKEN))
    assert path == tmp_path / "config" / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text()) == {"server": "https://grader.example", "token": TOKEN}
    assert TOKEN not in repr(load_credentials(None, None))
    assert [p.name for p in path.parent.iterdir()] == ["credentials.json"]  # no temporary file left


def test_client_upload_body_arrives_intact_with_headers_and_progress(server):
    body = os.urandom(300 * 1024 + 7)
    sent: list[int] = []
    sub = Client(Credentials(server.url, TOKEN)).upload("self-attention", "my work.zip", body, sent.append)
    assert sub["state"] == "queued" and sub["filename"] == "my work.zip"
    upload = server.uploads[-1]
    assert upload["body"] == body
    assert upload["query"] == {"exercise": ["self-attention"], "filename": ["my work.zip"]}
    assert upload["headers"]["Content-Length"] == str(len(body))
    assert upload["headers"]["Authorization"] == f"Bearer {TOKEN}"
    assert upload["headers"]["Content-Type"] == "application/octet-stream"
    assert upload["headers"]["User-Agent"].startswith("grader/")
    assert sum(sent) == len(body) and len(sent) == 5


def test_client_wait_backs_off_to_3_s_then_times_out(monkeypatch):
    clock, slept, seen = [0.0], [], []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr(client_mod, "monotonic", lambda: clock[0])
    monkeypatch.setattr(client_mod, "sleep", sleep)
    monkeypatch.setattr(Client, "submission", lambda self, sid: {"id": sid, "state": "queued", "position": 1})
    with pytest.raises(client_mod.TransportError, match=r"still queued after 12 s.*grader status") as info:
        Client(Credentials("http://127.0.0.1:9", TOKEN)).wait("abc", 12.0, seen.append)
    assert info.value.exit_code == 4
    assert slept == [0.5, 0.75, 1.125, 1.6875, 2.53125, 3.0, 2.40625]  # the last one ends at the deadline
    assert len(seen) == len(slept) + 1


def test_client_submit_waits_and_prints_the_checks(server, run, tmp_path, monkeypatch):
    _folder(tmp_path)
    monkeypatch.setenv("GRADER_TOKEN", TOKEN)
    result = run("submit", "self-attention", "--server", server.url + "/")
    assert result.exit_code == 0, result.output
    assert "accepted: 0001aaaabbbbcccc (2 ahead in the queue)" in result.stdout
    assert " fail         0/3  causal mask" in result.stdout
    assert "position 0 attends to position 3" in result.stdout
    assert "2 hidden check(s): 1/3 points" in result.stdout
    assert "Score: 12/15 (fail); final score 10.8 after policy: late by 3.0 h (-10%)" in result.stdout
    assert f"Report: {server.url}/reports/0001aaaabbbbcccc?view=student" in result.stdout
    assert result.stderr.splitlines() == ["uploading submission.zip (" + f"{len(server.uploads[-1]['body']):,}"
                                          + " bytes)", "queued (2 ahead)", "done"]
    archive = zipfile.ZipFile(io.BytesIO(server.uploads[-1]["body"]))
    assert sorted(archive.namelist()) == ["helpers/util.py", "solution.py"]


def test_client_submit_no_wait_and_json(server, run, tmp_path, monkeypatch):
    (tmp_path / "mine.py").write_text("x = 1\n")
    monkeypatch.setenv("GRADER_SERVER", server.url)
    monkeypatch.setenv("GRADER_TOKEN", TOKEN)
    result = run("submit", "self-attention", "mine.py", "--no-wait")
    assert result.exit_code == 0, result.output
    assert "accepted: 0001aaaabbbbcccc" in result.stdout and "grader status self-attention" in result.stdout
    assert server.polls == {} and server.uploads[-1]["query"]["filename"] == ["solution.py"]
    result = run("submit", "self-attention", "mine.py", "--json")
    assert result.exit_code == 0, result.output
    final = json.loads(result.stdout)
    assert final["state"] == "done" and final["final_score"] == 10.8
    assert "accepted: 0002" in result.stderr


def test_client_login_then_status(server, run, tmp_path):
    result = run("login", "--server", server.url, "--token-stdin", input=TOKEN + "\n")
    assert result.exit_code == 0, result.output
    path = tmp_path / "config" / "credentials.json"
    assert result.stdout.strip() == f"logged in to {server.url} as alice (student); saved to {path}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "No submissions yet." in run("status").stdout
    server.finish(server.new_submission("self-attention", "submission.zip")["id"])
    server.new_submission("tokenizer", "solution.py")
    table = run("status").stdout.splitlines()
    assert table[0].split() == ["ID", "EXERCISE", "RECEIVED", "STATE", "SCORE", "REPORT"]
    assert table[1].split()[:2] == ["0002aaaa", "tokenizer"] and table[1].split()[-2:] == ["queued", "-"]
    assert "done (fail)  10.8/15" in table[2] and f"{server.url}/reports/0001aaaabbbbcccc" in table[2]
    only = json.loads(run("status", "tokenizer", "--json").stdout)
    assert [s["exercise"] for s in only] == ["tokenizer"]


def test_client_login_refuses_a_wrong_token(server, run, tmp_path):
    result = run("login", "--server", server.url, "--token-stdin", input="wrong\n")
    assert result.exit_code == 5
    assert "unknown token" in result.stderr and f"grader login --server {server.url}" in result.stderr
    assert not (tmp_path / "config" / "credentials.json").exists()


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(("exercise", "token", "code", "needles"), [
    ("self-attention", "wrong-token", 5, ["refused the token", "unknown token", "grader login --server"]),
    ("limited", TOKEN, 6, ["10 submissions per hour", f"next allowed at {NEXT_ALLOWED}", "in 120 s", "limit: 10"]),
    ("big", TOKEN, 6, ["HTTP 413", "the upload is over 20 MB"]),
    ("nope", TOKEN, 6, ["HTTP 404", "unknown exercise 'nope'"]),
    ("boom", TOKEN, 4, ["HTTP 500", "internal server error", "try again later"]),
    ("garbage", TOKEN, 4, ["not JSON"]),
    ("slow", TOKEN, 4, ["still running after 0.2 s", "grader status"]),
    ("closed", TOKEN, 4, ["connection refused"]),
], ids=["401", "429", "413", "404", "500", "not-json", "wait-timeout", "connection-refused"])
def test_client_submit_exit_codes(server, run, tmp_path, monkeypatch, exercise, token, code, needles):
    (tmp_path / "solution.py").write_text("x = 1\n")
    monkeypatch.setenv("GRADER_TOKEN", token)
    url = _closed_port() if exercise == "closed" else server.url
    result = run("submit", exercise, "solution.py", "--server", url, "--timeout", "0.2")
    assert result.exit_code == code, result.output
    assert result.stderr.count("error: ") == 1
    for needle in needles:
        assert needle in result.stderr


def test_client_without_token_exits_5(server, run, tmp_path):
    (tmp_path / "solution.py").write_text("x = 1\n")
    result = run("submit", "self-attention", "solution.py", "--server", server.url)
    assert result.exit_code == 5 and "GRADER_TOKEN" in result.stderr and server.uploads == []
    assert run("status").exit_code == 2  # no server configured at all


def test_client_help_says_where_the_token_comes_from(run):
    for command in ("submit", "login", "status"):
        text = run(command, "--help").stdout
        assert "GRADER_TOKEN" in text and "5  no token, or the server refused it" in text, command
