"""A real `grader serve` on loopback, driven by the real `grader submit` / `grader status` client.

One server (2 workers) is shared by most tests; the rate-limit and kill -9 tests start their own.
Submissions use the small test exercises (sample-add: 4 points, public + hidden + message-only checks;
hostile-target: 3 points), so a grading takes a few seconds.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fixtures.bad_inputs import MALFORMED_ZIPS, write_zip
from fixtures.class_roster import make_class  # tests/ is on sys.path under pytest

pytestmark = pytest.mark.slow
GRADER = [sys.executable, "-m", "grader"]
STUDENTS = ("alice", "bob", "carol", "dave", "erin")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@dataclass
class Server:
    url: str
    db: Path
    root: Path
    tokens: dict[str, str]
    env: dict[str, str]
    args: list[str]
    proc: subprocess.Popen[bytes] | None = None
    context: ssl.SSLContext | None = None

    def start(self) -> None:
        with (self.root / "serve.log").open("ab") as log:
            self.proc = subprocess.Popen([*GRADER, "serve", *self.args], env=self.env, stdout=log, stderr=log,
                                         cwd=self.root)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root / "serve.log").read_text()
            with contextlib.suppress(OSError):
                urllib.request.urlopen(self.url + "/api/health", timeout=2, context=self.context).close()
                return
            time.sleep(0.2)
        raise AssertionError("the server did not answer within 60 s")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)

    def rows(self, sql: str) -> list[tuple]:
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()

    def cli(self, *args: str, token: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = dict(self.env, GRADER_SERVER=self.url, GRADER_CONFIG_DIR=str(self.root / "client-config"))
        env.pop("GRADER_TOKEN", None)
        if token is not None:
            env["GRADER_TOKEN"] = token
        return subprocess.run([*GRADER, *args], env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root)

    def call(self, method: str, path: str, token: str | None = None, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict, dict]:
        request = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        if token:
            request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.loads(answer.read() or b"{}"), dict(answer.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)

    def wait_done(self, ids: list[str], timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        marks = ",".join(f"'{i}'" for i in ids)
        while time.monotonic() < deadline:
            states = self.rows(f"SELECT state FROM submissions WHERE id IN ({marks})")
            if len(states) == len(ids) and all(s == ("done",) for s in states):
                return
            time.sleep(0.5)
        raise AssertionError(f"not graded in {timeout} s: {self.rows('SELECT id, state FROM submissions')}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_server(root: Path, *extra: str, class_file: str | None = None, tls: Path | None = None) -> Server:
    """A server over the test course; with ``tls`` (a folder holding cert.pem and key.pem), on https."""
    course = make_class.make_course(root / "course")
    broken = course / "exercises" / "broken-checks"  # sample-add whose check code crashes: a grader bug
    shutil.copytree(course / "exercises" / "sample-add", broken)
    shutil.copytree(course / "reference" / "sample-add", course / "reference" / "broken-checks")
    toml = broken / "exercise.toml"
    toml.write_text(toml.read_text().replace('id = "sample-add"', 'id = "broken-checks"'))
    (broken / "checks" / "conftest.py").write_text("raise RuntimeError('a bug in the check code')\n")
    (root / "roster.csv").write_text("student,email\n" + "".join(f"{s},{s}@uni.test\n" for s in STUDENTS),
                                     encoding="utf-8")
    env = dict(os.environ, GRADER_EXERCISES=str(course), GRADER_WORK_DIR=str(root / "jobs"),
               PYTHONDONTWRITEBYTECODE="1")
    db = root / "course-data" / "gradebook.sqlite"
    issued = subprocess.run([*GRADER, "tokens", "issue", "roster.csv", "--db", str(db), "--instructor", "prof",
                             "--out", "tokens.csv"], env=env, cwd=root, capture_output=True, text=True, check=True)
    assert "issued 6 token(s)" in issued.stderr
    assert (root / "tokens.csv").stat().st_mode & 0o777 == 0o600
    with (root / "tokens.csv").open() as fh:
        tokens = {r["student"]: r["token"] for r in csv.DictReader(fh)}
    port = _free_port()
    args = ["--roster", "roster.csv", "--db", str(db), "--port", str(port), *extra]
    if class_file is not None:
        (root / "class.toml").write_text(class_file, encoding="utf-8")
        args += ["--class-file", "class.toml"]
    context = None
    if tls is not None:
        args += ["--tls-cert", str(tls / "cert.pem"), "--tls-key", str(tls / "key.pem")]
        context = ssl.create_default_context(cafile=str(tls / "cert.pem"))
    server = Server(f"{'https' if tls else 'http'}://127.0.0.1:{port}", db, root, tokens, env, args, context=context)
    server.start()
    return server


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("server"), "--workers", "2")
    yield srv
    srv.stop()


def _solution(root: Path, name: str, source: str) -> Path:
    folder = root / "work" / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "solution.py").write_text(source, encoding="utf-8")
    (folder / "__pycache__").mkdir(exist_ok=True)
    (folder / "__pycache__" / "junk.pyc").write_bytes(b"\0" * 10)
    return folder


def test_server_students_submit_concurrently_with_the_cli(server):
    work = {
        "alice": (make_class.GOOD, "4/4"),
        "bob": (make_class.SCALE_WRONG, "2/4"),
        "carol": (make_class.SYNTAX, "0/4"),
    }
    procs = {}
    for student, (source, _) in work.items():
        folder = _solution(server.root, student, source)
        env = dict(server.env, GRADER_SERVER=server.url, GRADER_TOKEN=server.tokens[student],
                   GRADER_CONFIG_DIR=str(server.root / "nowhere"))
        procs[student] = subprocess.Popen([*GRADER, "submit", "sample-add", str(folder)], env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for student, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{student}: {out}\n{err}"
        assert f"Score: {work[student][1]}" in out, out
        assert f"{server.url}/reports/" in out
        assert server.tokens[student] not in out + err
    runs = server.rows("SELECT student, score, kind FROM runs WHERE kind = 'submit' ORDER BY student")
    assert [r[:2] for r in runs if r[0] in work] == [("alice", 4.0), ("bob", 2.0), ("carol", 0.0)]
    graded = dict(server.rows("SELECT runs.student, runs.score FROM grades JOIN runs ON runs.id = grades.run_id"))
    assert graded["alice"] == 4.0, "a server submission is published in the gradebook like a batch run"
    status = server.cli("status", "--json", token=server.tokens["alice"])
    assert status.returncode == 0, status.stderr
    assert {s["student"] for s in json.loads(status.stdout)} == {"alice"}, "a student sees only their own"
    table = server.cli("status", "sample-add", token=server.tokens["alice"]).stdout
    assert table.startswith("ID") and "STUDENT" not in table and "done (pass)" in table and "4/4" in table
    everyone = server.cli("status", token=server.tokens["prof"]).stdout
    assert "STUDENT" in everyone and all(name in everyone for name in work), everyone


def test_server_leaderboard_shows_a_student_their_own_name_and_pseudonyms_for_the_rest(server):
    """sample-add ranks scale()'s max error (lower is better): alice's right answer first, bob's wrong one after."""
    status, body, _ = server.call("GET", "/api/leaderboards?exercise=sample-add", token=server.tokens["alice"])
    assert status == 200, body
    (board,) = body["leaderboards"]
    assert (board["exercise"], board["name"], board["order"]) == ("sample-add", "scale() max error", "asc")
    mine = [r for r in board["rows"] if r["mine"]]
    assert [(r["who"], r["rank"], r["value"]) for r in mine] == [("alice", 1, 0.0)]
    others = [r["who"] for r in board["rows"] if not r["mine"]]
    assert others and not set(others) & set(server.tokens), "no other student's name reaches a student"
    status, body, _ = server.call("GET", "/api/leaderboards", token=server.tokens["prof"])
    names = [r["who"] for b in body["leaderboards"] if b["exercise"] == "sample-add" for r in b["rows"]]
    assert names[0] == "alice" and "bob" in names, names


def test_server_grades_a_notebook_submission(server):
    notebook = server.root / "work" / "my notebook.ipynb"
    notebook.parent.mkdir(parents=True, exist_ok=True)
    notebook.write_text(make_class.notebook(["import torch", make_class.GOOD]), encoding="utf-8")
    done = server.cli("submit", "sample-add", str(notebook), "--json", token=server.tokens["dave"])
    assert done.returncode == 0, done.stderr
    sub = json.loads(done.stdout)
    assert sub["score"] == 4.0 and sub["filename"] == "my_notebook.ipynb", sub


def test_server_gradebook_exports_like_a_batch(server):
    graded = dict(server.rows("SELECT runs.student, runs.final_score FROM grades JOIN runs ON runs.id = grades.run_id"))
    assert graded, "the concurrent test graded some submissions"
    exported = server.cli("export", str(server.db.parent), "--format", "csv")
    assert exported.returncode == 0, exported.stderr
    with (server.db.parent / "exports" / "grades.csv").open() as fh:
        rows = {r["student"]: float(r["sample-add"]) for r in csv.DictReader(fh) if r["sample-add"]}
    assert rows == {k: v for k, v in graded.items() if k in rows} and rows["alice"] == 4.0
    regraded = server.cli("regrade", str(server.db.parent))
    assert regraded.returncode == 0, regraded.stderr
    assert "changed since" not in regraded.stdout + regraded.stderr
    assert f"{len(graded)} grades regraded: 0 would change" in regraded.stdout + regraded.stderr, regraded.stdout


def test_server_hides_hidden_checks_from_students(server):
    folder = _solution(server.root, "dave", make_class.SCALE_WRONG)
    done = server.cli("submit", "sample-add", str(folder), "--json", token=server.tokens["dave"])
    assert done.returncode == 0, done.stderr
    sub = json.loads(done.stdout)
    titles = [c["title"] for c in sub["checks"]]
    assert sub["hidden"] == {"count": 1, "score": 0.0, "max_score": 2.0}, "scale() is hidden: counted only"
    assert "scale() multiplies a tensor" not in json.dumps(sub) and len(titles) == 2
    message_only = next(c for c in sub["checks"] if c["visibility"] == "message-only")
    assert set(message_only) == {"title", "status", "score", "max_score", "visibility", "message"}
    code, full, _ = server.call("GET", f"/api/submissions/{sub['id']}", server.tokens["prof"])
    assert code == 200 and full["hidden"]["count"] == 0 and len(full["checks"]) == 3, "the instructor sees all"
    with urllib.request.urlopen(sub["report_url"], timeout=30) as answer:
        html = answer.read().decode()
        assert "default-src 'none'" in answer.headers["Content-Security-Policy"]
    assert "hidden check" in html and "dave" in html


def test_server_grader_error_is_retried_never_published_and_not_blamed_on_the_student(server):
    folder = _solution(server.root, "erin", make_class.GOOD)
    done = server.cli("submit", "broken-checks", str(folder), "--json", token=server.tokens["erin"])
    assert done.returncode == 0, done.stderr
    sub = json.loads(done.stdout)
    assert sub["status"] == "grader_error" and "not a problem with your work" in sub["error"]
    assert "a bug in the check code" not in done.stdout, "internals are for the instructor"
    assert server.rows(f"SELECT claims FROM submissions WHERE id = '{sub['id']}'") == [(2,)], "retried once"
    runs = server.rows("SELECT status, state FROM runs WHERE exercise = 'broken-checks'")
    assert runs == [("grader_error", "failed")] * 2
    assert server.rows("SELECT * FROM grades WHERE exercise = 'broken-checks'") == [], "never a published grade"
    code, full, _ = server.call("GET", f"/api/submissions/{sub['id']}", server.tokens["prof"])
    assert code == 200 and any("a bug in the check code" in c.get("output", "") for c in full["checks"])
    text = server.cli("submit", "broken-checks", str(folder), token=server.tokens["erin"]).stdout
    assert "not a problem with your work" in text


def test_server_refuses_missing_wrong_and_foreign_tokens(server):
    code, body, headers = server.call("GET", "/api/submissions")
    assert code == 401 and headers.get("www-authenticate") == "Bearer" and "grader login" in body["detail"]
    assert server.call("GET", "/api/me", "grd_not-a-token")[0] == 401
    code, _, _ = server.call("GET", "/api/me", server.tokens["alice"])
    assert code == 200
    # alice's submission, asked for by bob, is answered exactly like an id that does not exist
    alice_ids = [r[0] for r in server.rows("SELECT id FROM submissions WHERE student = 'alice'")]
    assert alice_ids, "the concurrent test submitted for alice"
    foreign = server.call("GET", f"/api/submissions/{alice_ids[0]}", server.tokens["bob"])
    missing = server.call("GET", "/api/submissions/0123456789abcdef", server.tokens["bob"])
    assert foreign[0] == missing[0] == 404 and foreign[1] == missing[1]
    assert server.call("GET", "/api/submissions?student=alice", server.tokens["bob"])[0] == 403
    code, body, _ = server.call("GET", "/api/submissions?student=alice", server.tokens["prof"])
    assert code == 200 and {s["student"] for s in body["submissions"]} == {"alice"}
    # the real client: a wrong token is an auth error (exit 5) with a way out, and reveals nothing
    folder = _solution(server.root, "mallory", make_class.GOOD)
    bad = server.cli("submit", "sample-add", str(folder), token="grd_guessed")
    assert bad.returncode == 5, bad.stdout + bad.stderr
    assert "grader login" in bad.stderr and "grd_guessed" not in bad.stdout + bad.stderr
    assert server.call("GET", "/api/me", server.tokens["prof"])[1] == {"name": "prof", "role": "instructor"}


def _zip(entries: dict[str, bytes], symlinks: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        for name in symlinks:
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


@pytest.mark.parametrize(("kind", "reason"), [
    ("zip-slip", "unsafe path '../../evil.py'"),
    ("symlink", "link"),
    ("bomb", "too large once unpacked"),
    ("many-files", "files"),
])
def test_server_refuses_hostile_archives(server, kind, reason):
    good = make_class.GOOD.encode()
    archive = {
        "zip-slip": lambda: _zip({"solution.py": good, "../../evil.py": b"x = 1\n"}),
        "symlink": lambda: _zip({"solution.py": good}, symlinks=("data.txt",)),
        "bomb": lambda: _zip({"solution.py": good, "zeros.bin": b"\0" * (60 * 1024 * 1024)}),
        "many-files": lambda: _zip({"solution.py": good, **{f"f{i}.txt": b"" for i in range(400)}}),
    }[kind]()
    path = server.root / f"{kind}.zip"
    path.write_bytes(archive)
    before = server.rows("SELECT COUNT(*) FROM submissions")[0][0]
    refused = server.cli("submit", "hostile-target", str(path), token=server.tokens["erin"])
    assert refused.returncode == 6, refused.stdout + refused.stderr
    assert reason in refused.stderr and "archive was refused" in refused.stderr and f"{kind}.zip" in refused.stderr
    assert server.rows("SELECT COUNT(*) FROM submissions")[0][0] == before, "nothing refused is queued"
    assert not (server.root / "course-data" / ".incoming").exists() or \
        not any((server.root / "course-data" / ".incoming").iterdir()), "refused uploads are not kept"


@pytest.mark.parametrize("kind", sorted(MALFORMED_ZIPS))
def test_server_refuses_malformed_archives_as_the_students_problem(server, kind):
    path = write_zip(server.root, kind)
    refused = server.cli("submit", "hostile-target", str(path), token=server.tokens["erin"])
    assert refused.returncode == 6, refused.stdout + refused.stderr
    assert "archive was refused" in refused.stderr and MALFORMED_ZIPS[kind][1] in refused.stderr
    assert "server failed" not in refused.stderr and "500" not in refused.stderr


def test_server_refuses_oversized_and_unknown_uploads(server):
    big = server.root / "big.zip"
    big.write_bytes(os.urandom(6 * 1024 * 1024))
    refused = server.cli("submit", "hostile-target", str(big), token=server.tokens["erin"])
    assert refused.returncode == 6 and "at most 5 MB" in refused.stderr, refused.stderr
    code, body, _ = server.call("POST", "/api/submissions?exercise=hostile-target&filename=a.exe",
                                server.tokens["erin"], b"MZ")
    assert code == 415 and ".py, .ipynb or .zip" in body["detail"]
    code, body, _ = server.call("POST", "/api/submissions?exercise=no-such&filename=solution.py",
                                server.tokens["erin"], b"x = 1\n")
    assert code == 404 and "no-such" in body["detail"]
    code, body, _ = server.call("POST", "/api/submissions?exercise=hostile-target", server.tokens["prof"], b"x=1\n")
    assert code == 403 and "instructor" in body["detail"]


def test_server_refuses_a_sandbox_that_shows_the_host_files(server):
    run = subprocess.run([*GRADER, "serve", "--roster", "roster.csv", "--db", str(server.root / "other.sqlite"),
                          "--port", str(_free_port()), "--sandbox", "process"], env=server.env, cwd=server.root,
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "could read other students' uploads" in run.stderr, run.stderr
    assert "--allow-unisolated" in run.stderr


def test_server_serves_its_openapi_schema(server):
    with urllib.request.urlopen(server.url + "/openapi.json", timeout=30) as answer:
        schema = json.loads(answer.read())
    assert {"/api/submissions", "/api/submissions/{sid}", "/api/me", "/reports/{sid}"} <= set(schema["paths"])


@pytest.mark.skipif(not CHROMIUM, reason="chromium is not installed")
def test_server_web_page_lists_a_students_attempts_in_chromium(server):
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--virtual-time-budget=15000"]

    def dom(url: str, profile: str) -> str:
        return subprocess.run([CHROMIUM, *flags, f"--user-data-dir={server.root / profile}", "--dump-dom", url],
                              capture_output=True, text=True, timeout=120).stdout

    page = dom(f"{server.url}/#token={server.tokens['alice']}", "chrome-a")
    assert "Signed in as alice (student)" in page, page[-2000:]
    assert "Leaderboards" in page and page.count('class="mine"') == 1, "alice's own row, marked"
    assert page.count('class="attempt"') == len(server.rows("SELECT id FROM submissions WHERE student='alice'"))
    assert "bob" not in page.split("<tbody", 1)[1], "another student's attempts are not listed"
    link = page.split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    assert link.startswith(f"{server.url}/reports/")
    report = dom(link, "chrome-b")
    assert "alice" in report and "hidden check" in report, report[-2000:]
    everyone = dom(f"{server.url}/#token={server.tokens['prof']}", "chrome-d")
    assert "Signed in as prof (instructor)" in everyone
    assert everyone.count('class="attempt"') == len(server.rows("SELECT id FROM submissions"))
    refused = dom(f"{server.url}/#token=grd_wrong", "chrome-c")
    assert "no valid token" in refused and 'id="login"' in refused


def test_server_rate_limit_holds_and_names_the_next_time(tmp_path):
    srv = make_server(tmp_path, "--workers", "1", "--rate-limit", "2", class_file=(
        '[deadlines]\n"*" = 2020-01-01T00:00:00+00:00\n[late_penalty]\nper_day = 0.5\ncap = 0.5\n'
        '[release]\n"*" = 2020-01-02T00:00:00+00:00\n[visibility]\nafter_release = "message-only"\n'))
    try:
        folder = _solution(tmp_path, "alice", "def answer():\n    return 'x'\n\ndef add(a, b):\n    return a + b\n")
        first = srv.cli("submit", "hostile-target", str(folder), "--json", token=srv.tokens["alice"])
        assert first.returncode == 0, first.stderr
        sub = json.loads(first.stdout)
        assert sub["score"] == 1.0 and sub["final_score"] == 0.5 and "late" in sub["policy_note"]
        assert sub["hidden"]["count"] == 0, "released: the hidden check is shown, as message-only"
        assert any(c["visibility"] == "message-only" and "output" not in c for c in sub["checks"])
        assert srv.cli("submit", "hostile-target", str(folder), "--no-wait", token=srv.tokens["alice"]).returncode == 0
        third = srv.cli("submit", "hostile-target", str(folder), "--no-wait", token=srv.tokens["alice"])
        assert third.returncode == 6 and "limit 2" in third.stderr and "next allowed at" in third.stderr, third.stderr
        code, body, headers = srv.call("POST", "/api/submissions?exercise=hostile-target&filename=solution.py",
                                       srv.tokens["alice"], b"x = 1\n")
        assert code == 429 and body["limit"] == 2 and int(headers["retry-after"]) > 3000 and body["next_allowed_at"]
        # four uploads at once from a student with none yet: exactly two get in
        codes: list[int] = []

        def upload() -> None:
            codes.append(srv.call("POST", "/api/submissions?exercise=hostile-target&filename=solution.py",
                                  srv.tokens["bob"], b"def add(a, b):\n    return a + b\n")[0])

        threads = [threading.Thread(target=upload) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [202, 202, 429, 429]
        events = srv.rows("SELECT student, kind FROM events")
        assert events.count(("alice", "refused")) == 2 and events.count(("bob", "refused")) == 2
    finally:
        srv.stop()


def _runners(marker: str) -> list[int]:
    pids = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue
        if "grader.checks.runner" in cmd and marker in cmd + cwd:
            pids.append(int(pid))
    return pids


def test_server_killed_mid_grading_loses_nothing_and_grades_nothing_twice(tmp_path):
    srv = make_server(tmp_path, "--workers", "1")
    try:
        ids = []
        for student in STUDENTS[:4]:
            folder = _solution(tmp_path, student, make_class.GOOD)
            code, body, _ = srv.call("POST", "/api/submissions?exercise=sample-add&filename=solution.py",
                                     srv.tokens[student], (folder / "solution.py").read_bytes())
            assert code == 202
            ids.append(body["id"])
        deadline = time.monotonic() + 60
        while not srv.rows("SELECT 1 FROM submissions WHERE state = 'running'") and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)  # mid-grading: the runner is importing and checking
        assert srv.rows("SELECT COUNT(*) FROM submissions WHERE state = 'running'")[0][0] == 1
        srv.stop(signal.SIGKILL)
        time.sleep(1.0)
        assert _runners(str(tmp_path / "jobs")) == [], "the killed server's runner died with it"
        srv.start()
        srv.wait_done(ids)
        per_submission = srv.rows("SELECT s.id, COUNT(r.id) FROM submissions s JOIN runs r "
                                  "ON r.submission_path = s.path GROUP BY s.id")
        assert sorted(per_submission) == sorted((i, 1) for i in ids), "each accepted submission graded once"
        assert srv.rows("SELECT COUNT(*) FROM runs")[0][0] == len(ids)
        assert srv.rows("SELECT MAX(claims) FROM submissions")[0][0] == 2, "the interrupted one was started again"
        assert {r[0] for r in srv.rows("SELECT score FROM runs")} == {4.0}
        assert "1 resumed after an interrupted run" in (tmp_path / "serve.log").read_text()
    finally:
        srv.stop()


@pytest.mark.docker
def test_server_grades_in_the_docker_sandbox(docker_image, tmp_path):
    srv = make_server(tmp_path, "--workers", "1", "--sandbox", "docker")
    try:
        folder = _solution(tmp_path, "alice", make_class.SCALE_WRONG)
        done = srv.cli("submit", "sample-add", str(folder), "--json", token=srv.tokens["alice"])
        assert done.returncode == 0, done.stdout + done.stderr
        assert json.loads(done.stdout)["score"] == 2.0
        assert srv.rows("SELECT sandbox, status FROM runs") == [("docker", "fail")]
    finally:
        srv.stop()


@pytest.mark.skipif(not shutil.which("openssl"), reason="openssl is not installed")
def test_server_speaks_https_and_the_client_verifies_it(tmp_path):
    tls = tmp_path / "tls"
    tls.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(tls / "key.pem"), "-out",
                    str(tls / "cert.pem")], check=True, capture_output=True, timeout=60)
    srv = make_server(tmp_path / "course", "--workers", "1", tls=tls)
    try:
        folder = _solution(tmp_path, "alice", make_class.GOOD)
        srv.env["SSL_CERT_FILE"] = str(tls / "cert.pem")  # the client trusts this self-signed certificate
        done = srv.cli("submit", "sample-add", str(folder), token=srv.tokens["alice"])
        assert done.returncode == 0 and "Score: 4/4" in done.stdout, done.stdout + done.stderr
        assert f"{srv.url}/reports/" in done.stdout and srv.url.startswith("https://")
        del srv.env["SSL_CERT_FILE"]
        untrusted = srv.cli("status", token=srv.tokens["alice"])
        assert untrusted.returncode == 4 and "TLS" in untrusted.stderr, untrusted.stderr
    finally:
        srv.stop()
