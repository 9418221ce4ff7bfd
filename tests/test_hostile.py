"""Hostile submissions, against every sandbox backend available here.

Each must score 0 with a named status and a clear message, leak no reference text into results.json
or report.html, leave no process or file behind, and not disturb the next submission.
"""

from __future__ import annotations

import os
import socket
import threading
from contextlib import closing
from pathlib import Path

import pytest
from conftest import skip_unless_required
from fixtures.bad_inputs import MALFORMED_ZIPS, NOT_NOTEBOOKS, write_zip  # tests/ is on sys.path under pytest

from grader import api
from grader.checks import warm
from grader.config import Settings

FIXTURES = Path(__file__).parent / "fixtures"

SECRET = "7f3a-REFERENCE-SECRET-91c2"
REFERENCE = FIXTURES / "hostile_target" / "reference" / "solution.py"
BACKENDS = ["bwrap", "process", pytest.param("docker", marks=pytest.mark.docker)]
# the trusted runner started cold, or forked from a warm one (grader.checks.warm: batches and the server use it)
# (each grading is a job of its own, so scripts/test.sh grades these runs on parallel workers; each worker
# imports the same skeleton image under the same tag, which is harmless)
RUNS = [pytest.param("bwrap", "cold", marks=pytest.mark.parallel),
        pytest.param("bwrap", "warm", marks=pytest.mark.parallel),
        pytest.param("process", "cold", marks=pytest.mark.parallel),
        pytest.param("docker", "cold", marks=[pytest.mark.docker, pytest.mark.parallel]),
        pytest.param("docker", "warm", marks=[pytest.mark.docker, pytest.mark.parallel])]

pytestmark = pytest.mark.slow

ADD = "\ndef add(a, b):\n    return a + b\n"

# name -> (source, statuses allowed for test_answer, needs filesystem isolation)
HOSTILE = {
    "read-reference-by-path": (
        f"def answer():\n    return open({str(REFERENCE)!r}).read().split('\"')[1]\n" + ADD,
        {"error"}, True),
    "walk-filesystem-for-reference": (
        "import os\n"
        "def answer():\n"
        "    for top in ('/', ):\n"
        "        for d, _, files in os.walk(top):\n"
        "            if d.startswith(('/proc', '/sys', '/usr', '/dev')):\n"
        "                continue\n"
        "            for f in files:\n"
        "                try:\n"
        "                    text = open(os.path.join(d, f), errors='ignore').read(200000)\n"
        "                except OSError:\n"
        "                    continue\n"
        "                if 'REFERENCE-SECRET' in text and 'def answer' in text:\n"
        "                    print(text)\n"
        "                    return text.split('\"')[1]\n"
        "    return 'not found'\n" + ADD,
        {"fail", "timeout"}, True),
    "read-proc-of-other-processes": (
        "import os, json\n"
        "def answer():\n"
        "    for pid in os.listdir('/proc'):\n"
        "        try:\n"
        "            cmd = open(f'/proc/{pid}/cmdline').read().split('\\0')\n"
        "        except OSError:\n"
        "            continue\n"
        "        for part in cmd:\n"
        "            if part.endswith('runner.json'):\n"
        "                cfg = json.load(open(part))\n"
        "                return open(cfg['reference_dir'] + '/solution.py').read().split('\"')[1]\n"
        "    return 'no runner visible'\n" + ADD,
        {"fail", "error"}, True),
    "network-to-loopback": (
        "import socket\n"
        "def answer():\n"
        "    s = socket.create_connection(('127.0.0.1', PORT), timeout=2)\n"
        "    return s.recv(100).decode()\n" + ADD,
        {"error"}, False),
    "fork-storm": (
        "import os, time\n"
        "def answer():\n"
        "    for _ in range(400):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(600)\n"
        "            os._exit(0)\n"
        "    return 'forked'\n" + ADD,
        {"error", "fail", "timeout"}, False),
    "allocate-30-gb": (
        "def answer():\n    x = bytearray(30 * 1024 ** 3)\n    return str(len(x))\n" + ADD,
        {"oom"}, False),
    "grow-memory-until-killed": (
        "def answer():\n    hog = []\n    while True:\n        hog.append(bytearray(64 * 1024 ** 2))\n" + ADD,
        {"oom"}, False),
    "loop-forever-at-call": (
        "def answer():\n    while True:\n        pass\n" + ADD,
        {"timeout"}, False),
    "loop-forever-at-import": (
        "while True:\n    pass\n" + ADD,
        {"timeout"}, False),
    "ignore-sigterm-and-sleep": (
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "def answer():\n    time.sleep(3600)\n" + ADD,
        {"timeout"}, False),
    "os-exit-zero": (
        "import os\ndef answer():\n    os._exit(0)\n" + ADD,
        {"error"}, False),
    "sys-exit-zero-at-import": (
        "import sys\nsys.exit(0)\n" + ADD,
        {"error"}, False),
    "print-and-write-fake-results": (
        "import json, os\n"
        "FAKE = json.dumps({'score': 3, 'max_score': 3, 'tests': [{'name': 'x', 'score': 3, 'status': 'passed'}]})\n"
        "def answer():\n"
        "    print(FAKE)\n"
        "    for p in ('results.json', '/submission/results.json', '../results.json'):\n"
        "        try:\n"
        "            open(p, 'w').write(FAKE)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 'all tests passed'\n" + ADD,
        {"fail"}, False),
    "double-fork-daemon": (
        "import os, time\n"
        "def answer():\n"
        "    if os.fork() == 0:\n"
        "        os.setsid()\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(3600)\n"
        "        os._exit(0)\n"
        "    return 'daemonised'\n" + ADD,
        {"fail"}, False),
    "kill-parent-and-everyone": (
        "import os, signal\n"
        "def answer():\n"
        "    for target in (os.getppid(), -1):\n"
        "        try:\n"
        "            os.kill(target, signal.SIGKILL)\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 'still here'\n" + ADD,
        {"fail", "error"}, True),
    "deep-recursion-crash": (
        "import sys\nsys.setrecursionlimit(10 ** 7)\n"
        "def f(n):\n    return f(n + 1) + 1\n"
        "def answer():\n    return f(0)\n" + ADD,
        {"error", "timeout", "oom"}, False),
    "stdout-flood": (
        "import sys\ndef answer():\n    for _ in range(20000):\n        sys.stdout.write('spam' * 1000)\n"
        "    return 'flooded'\n" + ADD,
        {"fail", "timeout"}, False),
    "write-outside-scratch": (
        "def answer():\n"
        "    for p in ('/tmp/../hostile-marker', '/usr/hostile-marker', '/opt/grader-worker/x'):\n"
        "        try:\n"
        "            open(p, 'w').write('x')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 'wrote'\n" + ADD,
        {"fail"}, True),
    "sys-exit-and-keyboard-interrupt-at-call": (
        "import sys\ndef answer():\n    try:\n        raise KeyboardInterrupt\n"
        "    finally:\n        sys.exit(0)\n" + ADD,
        {"error"}, False),
    "spin-threads": (
        "import threading\n"
        "def spin():\n    while True:\n        pass\n"
        "def answer():\n    for _ in range(16):\n        threading.Thread(target=spin, daemon=True).start()\n"
        "    spin()\n" + ADD,
        {"timeout"}, False),
    "fill-the-disk": (
        "import os\n"
        "def answer():\n"
        "    n = 0\n"
        "    for folder in ('/tmp', '.', '/scratch'):\n"
        "        for i in range(1000):\n"
        "            try:\n"
        "                with open(os.path.join(folder, f'fill{i}'), 'wb') as fh:\n"
        "                    fh.write(b'x' * (32 << 20))\n"
        "                n += 1\n"
        "            except OSError:\n"
        "                break\n"
        "    return f'wrote {n} files'\n" + ADD,
        {"fail", "timeout"}, True),
    "monkeypatch-pytest-and-grader": (
        "import sys, types\n"
        "fake = types.ModuleType('pytest')\nfake.main = lambda *a, **k: 0\nsys.modules['pytest'] = fake\n"
        "import builtins\nbuiltins.AssertionError = type('Nope', (Exception,), {})\n"
        "def answer():\n    return 'patched'\n" + ADD,
        {"fail"}, False),
    "forge-channel-frames": (
        "import os, json, struct\n"
        "def answer():\n"
        "    body = json.dumps({'ok': True, 'value': 'x', 'id': 1, 'blobs': []}).encode()\n"
        "    for fd in range(3, 12):\n"
        "        try:\n"
        "            os.write(fd, struct.pack('>I', len(body)) + body + b'garbage')\n"
        "        except OSError:\n"
        "            pass\n"
        "    return 'forged'\n" + ADD,
        {"fail", "error"}, False),
    "symlink-to-host-file": (lambda d: _with_file(d, "def answer():\n    return open('data.txt').read()\n",
                                                 "data.txt", link=REFERENCE), {"error"}, False),
    "huge-file": (lambda d: _with_file(d, "def answer():\n    return 'x'\n", "weights.bin", data=b"\0" * (6 << 20)),
                  {"error"}, False),
    "zip-slip-archive": (
        lambda d: _zip_slip(d),
        {"error"}, False),
    "reference-secret-in-environment": (
        "import os\n"
        "def answer():\n"
        "    blob = open('/proc/self/environ', 'rb').read().decode(errors='ignore')\n"
        "    blob += ''.join(open(f'/proc/{p}/environ', 'rb').read().decode(errors='ignore')\n"
        "                    for p in ('1', str(os.getppid())) if os.path.exists(f'/proc/{p}/environ'))\n"
        "    return blob if 'REFERENCE-SECRET' in blob else 'nothing'\n" + ADD,
        {"fail", "error"}, False),
}


def _with_file(folder: Path, source: str, name: str, link: Path | None = None, data: bytes = b"") -> Path:
    (folder / "solution.py").write_text(source + ADD)
    if link is not None:
        os.symlink(link, folder / name)
    else:
        (folder / name).write_bytes(data)
    return folder


def _zip_slip(folder: Path) -> Path:
    import zipfile

    archive = folder.parent / "slip.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("solution.py", "def answer():\n    return 'x'\n" + ADD)
        zf.writestr("../../../tmp/hostile-marker", "x")
    return archive


def _available(registries, name):
    ok, _ = registries.sandboxes.get(name).available()
    return ok


@pytest.fixture(scope="module")
def listener():
    """A loopback server that hands the secret to anyone who connects."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    srv.settimeout(0.5)
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            conn.sendall(SECRET.encode())
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield srv.getsockname()[1]
    stop.set()
    srv.close()


def _assert_forked_when_warm(result, backend: str, mode: str) -> None:
    """Warm on bwrap as root, the job's workers came from a warm template (so these runs prove that path)."""
    if backend == "bwrap" and mode == "warm" and os.geteuid() == 0:
        notes = result.provenance["isolation"].get("notes", "")
        assert "warm template" in notes, f"the worker was not forked from a template: {notes}"


def _job_processes(job_id: str) -> list[int]:
    """Processes still carrying the job's marker in their environment (workers and their children)."""
    marker = f"GRADER_JOB={job_id}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                env = Path(f"/proc/{entry.name}/environ").read_bytes()
            except OSError:
                continue
            if marker in env.split(b"\0"):
                found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def runner_pool():
    pool = warm.RunnerPool(1)
    yield pool
    pool.close()


@pytest.fixture
def runners(request, runner_pool):
    """Activates the module's warm pool for the test when its ``mode`` is warm."""
    mode = request.node.callspec.params.get("mode", "cold")
    if mode == "cold":
        yield None
        return
    with warm.activate(runner_pool):
        yield runner_pool
    assert not runner_pool.fallbacks, runner_pool.fallbacks


@pytest.mark.parametrize("backend,mode", RUNS)
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_submission_scores_zero_and_leaves_nothing(registries, tmp_path, listener, backend, mode, case,
                                                           request, runners):
    if backend == "docker":
        request.getfixturevalue("docker_image")
    if not _available(registries, backend):
        skip_unless_required(backend.upper(), f"the {backend} sandbox is not available here")
    source, allowed, needs_fs = HOSTILE[case]
    sandbox = registries.sandboxes.get(backend)
    if needs_fs and backend == "process":
        pytest.skip("the process backend does not isolate the filesystem or other processes (documented)")
    if case == "network-to-loopback" and backend == "process":
        from grader.builtin.sandbox_process import _unshare_prefix

        if not _unshare_prefix():
            pytest.skip("no network namespace available to the process backend here")
    del sandbox
    sub = tmp_path / "hostile"
    sub.mkdir()
    if callable(source):
        sub = source(sub)
    else:
        (sub / "solution.py").write_text(source.replace("PORT", str(listener)))
    jobs = tmp_path / "jobs"
    settings = Settings.load({"work_dir": jobs, "sandbox": backend}, cwd=tmp_path)
    out = tmp_path / "out"
    result = api.grade(registries, "hostile-target", sub, settings, out_dir=out)

    answer = next(c for c in result.checks if c.name.endswith("test_answer"))
    assert answer.score == 0
    assert answer.status.value in allowed, (answer.status.value, answer.message)
    assert answer.message, "every lost point needs a reason"
    assert result.status.value != "grader_error", [(c.name, c.message) for c in result.checks]
    if result.provenance["isolation"].get("notes") != "no worker was started":
        _assert_forked_when_warm(result, backend, mode)
    for report in ("results.json", "report.html"):
        assert SECRET not in (out / report).read_text(), f"reference text leaked into {report}"
    assert not _job_processes(result.provenance["job_id"]), "a process of the job outlived it"
    if backend == "docker":
        from grader.builtin.sandbox_docker import LABEL, _client

        with closing(_client()) as client:
            left = client.containers.list(all=True, filters={"label": f"{LABEL}.job={result.provenance['job_id']}"})
        assert not left, "a container of the job was left behind"
    assert list(jobs.iterdir()) == [], "the job folder was left behind"
    assert not Path("/tmp/hostile-marker").exists()

    # the next submission grades normally
    good = tmp_path / "good.py"
    good.write_text("def answer():\n    return 'guess'\n" + ADD)
    after = api.grade(registries, "hostile-target", good, settings)
    assert [c.status.value for c in after.checks] == ["fail", "pass"]


PLANT_PLACES = ("/tmp", "/var/tmp", "/dev/shm", "~", ".", "/job-files/shared", "/job-files/in")
PLANT = f"""
import os, subprocess, sys
PLACES = {PLANT_PLACES!r}
for place in PLACES:
    try:
        with open(os.path.join(os.path.expanduser(place), "grader-plant"), "w") as fh:
            fh.write("from the job before")
    except OSError:
        pass
os.environ["GRADER_PLANT"] = "1"
os.putenv("GRADER_PLANT", "1")
try:  # a process meant to outlive the job and be seen by the next
    subprocess.Popen(["sleep", "600"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
except OSError:
    pass
sys.modules["grader_plant"] = sys
def answer():
    return "x"
def add(a, b):
    return a + b
"""
LOOK = f"""
import os, sys
PLACES = {PLANT_PLACES!r}
def found():
    seen = [p for p in PLACES if os.path.exists(os.path.join(os.path.expanduser(p), "grader-plant"))]
    if os.environ.get("GRADER_PLANT") or "grader_plant" in sys.modules:
        seen.append("environment or module")
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and open(f"/proc/{{pid}}/cmdline").read().split("\\0")[:2] == ["sleep", "600"]:
                seen.append("process")
        except OSError:
            pass
    return seen
def answer():
    return "x"
def add(a, b):
    return a + b if not found() else -1
"""


@pytest.mark.parametrize("backend,mode", [run for run in RUNS if run.values != ("process", "cold")])
def test_hostile_nothing_planted_by_one_job_reaches_the_next(registries, tmp_path, backend, mode, request, runners):
    """Job N writes into every writable place it can reach, sets variables, starts a process; job N+1 finds none."""
    if backend == "docker":
        request.getfixturevalue("docker_image")
    if not _available(registries, backend):
        skip_unless_required(backend.upper(), f"the {backend} sandbox is not available here")
    settings = Settings.load({"work_dir": tmp_path / "jobs", "sandbox": backend}, cwd=tmp_path)
    (tmp_path / "plant.py").write_text(PLANT)
    (tmp_path / "look.py").write_text(LOOK)
    planted = api.grade(registries, "hostile-target", tmp_path / "plant.py", settings)
    assert [c.status.value for c in planted.checks] == ["fail", "pass"], [(c.name, c.message) for c in planted.checks]
    assert not _job_processes(planted.provenance["job_id"]), "the planted process outlived its job"
    _assert_forked_when_warm(planted, backend, mode)
    after = api.grade(registries, "hostile-target", tmp_path / "look.py", settings)
    _assert_forked_when_warm(after, backend, mode)
    add = next(c for c in after.checks if c.name.endswith("test_add"))
    assert add.status.value == "pass", f"the next job found what the one before planted: {add.message}"
    assert not any(Path(p, "grader-plant").exists() for p in ("/tmp", "/var/tmp", "/dev/shm")), "planted on the host"


@pytest.mark.parallel
@pytest.mark.parametrize("kind", [*(f"zip:{k}" for k in sorted(MALFORMED_ZIPS)), *(f"notebook:{k}" for k in
                                                                                  sorted(NOT_NOTEBOOKS))])
def test_hostile_malformed_input_is_the_students_error_never_a_crash(registries, tmp_path, kind):
    """Broken archives and JSON that is no notebook: every check `error`, with the reason, and nothing else."""
    what, name = kind.split(":")
    if what == "zip":
        sub = write_zip(tmp_path, name)
        words = MALFORMED_ZIPS[name][1]
    else:
        sub = tmp_path / f"{name}.ipynb"
        sub.write_text(NOT_NOTEBOOKS[name])
        words = "not a notebook"
    settings = Settings.load({"work_dir": tmp_path / "jobs"}, cwd=tmp_path)
    result = api.grade(registries, "hostile-target", sub, settings, out_dir=tmp_path / "out")
    assert result.score == 0 and result.status.value == "error"
    assert all(c.status.value == "error" and words in c.message for c in result.checks), \
        [(c.status.value, c.message) for c in result.checks]
    assert list((tmp_path / "jobs").iterdir()) == [], "the job folder was left behind"


@pytest.mark.parallel
def test_hostile_malformed_zips_in_a_batch_are_graded_once_as_errors(registries, tmp_path):
    from grader.batch.run import run_batch

    roster = tmp_path / "roster"
    for kind in MALFORMED_ZIPS:
        (roster / kind).mkdir(parents=True)
        (roster / kind / "hostile-target.zip").write_bytes(MALFORMED_ZIPS[kind][0]())
    settings = Settings.load({"work_dir": tmp_path / "jobs"}, cwd=tmp_path)
    summary = run_batch(registries, roster, tmp_path / "out", settings, workers=2)
    assert (summary.graded, summary.failed) == (len(MALFORMED_ZIPS), 0), "a student's broken zip is no grader_error"
    assert run_batch(registries, roster, tmp_path / "out", settings).skipped == len(MALFORMED_ZIPS)


@pytest.mark.parallel
def test_hostile_roster_names_that_collide_are_refused_before_grading(registries, monkeypatch, tmp_path):
    from click.testing import CliRunner

    from grader import cli
    from grader.cli.common import CliState

    monkeypatch.setenv("GRADER_WORK_DIR", str(tmp_path / "jobs"))
    for student in ("ann b", "ann_b", "ann?b"):
        (tmp_path / "roster" / student).mkdir(parents=True)
        (tmp_path / "roster" / student / "hostile-target.py").write_text("def answer():\n    return 'x'\n" + ADD)
    result = CliRunner().invoke(cli.main, ["batch", str(tmp_path / "roster"), "--out", str(tmp_path / "out")],
                                obj=CliState(registries))
    assert result.exit_code == 2, result.output
    assert "'ann b' and 'ann?b' and 'ann_b'" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out" / "ann_b").exists()
