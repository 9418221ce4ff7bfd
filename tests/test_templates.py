"""Workers forked from a warm template: what a cold bwrap worker sees, nothing from the job before, no way back.

A template (:mod:`grader.sandbox.template`) has imported torch once inside a bubblewrap sandbox of its own and
forks each job's worker into a sandbox built for that job. These tests drive real templates and real sessions
on bwrap (run as root, where templates exist) and compare every worker with a cold one.
"""

from __future__ import annotations

import os
import select
import shutil
import time
import uuid
from pathlib import Path

import pytest

from grader.sandbox import Limits, WorkerSpec, count_user_processes, install_worker
from grader.sandbox.remote import StudentProxy, WorkerOOM, WorkerSession
from grader.sandbox.templates import TemplatedSandbox
from tests.conftest import skip_unless_required


@pytest.fixture(scope="module")
def bwrap():
    from grader.builtin.sandbox_bwrap import BwrapSandbox

    sandbox = BwrapSandbox()
    if not shutil.which("bwrap") or not sandbox.available()[0]:
        skip_unless_required("BWRAP", "bubblewrap is not available here")
    if os.geteuid() != 0:
        pytest.skip("worker templates need the grader to run as root (elsewhere workers start cold)")
    return sandbox


def _spec_factory(folder: Path, source: str, memory_mb: int = 2048):
    folder.mkdir(parents=True)
    for level in (folder, *folder.parents):  # the job's uid must reach its files, as under the engine's job folder
        if str(level).startswith("/tmp/"):
            level.chmod(level.stat().st_mode | 0o711)
    sub = folder / "submission"
    sub.mkdir()
    (sub / "solution.py").write_text(source)
    worker_dir = install_worker(folder / "worker")
    files = folder / "files"
    (files / "in").mkdir(parents=True)
    (files / "shared").mkdir()
    os.chmod(files / "shared", 0o1777)
    job_id = uuid.uuid4().hex[:12]

    def spec() -> WorkerSpec:
        scratch = folder / f"scratch-{uuid.uuid4().hex[:6]}"
        scratch.mkdir(mode=0o777)
        return WorkerSpec(job_id=job_id, submission_dir=sub, scratch_dir=scratch, worker_dir=worker_dir,
                          limits=Limits(memory_mb=memory_mb), files_dir=files)

    return spec


@pytest.fixture(scope="module")
def template(bwrap, tmp_path_factory):
    spec = _spec_factory(tmp_path_factory.mktemp("template") / "t", "")()
    made = bwrap.template(spec, ("torch",))
    assert made is not None
    yield made
    made.close()


def _session(sandbox, folder: Path, source: str, memory_mb: int = 2048) -> WorkerSession:
    return WorkerSession(sandbox, _spec_factory(folder, source, memory_mb), 60.0)


def _student(session: WorkerSession) -> StudentProxy:
    return StudentProxy(session, time.monotonic() + 60)


LOOK = '''
import multiprocessing, multiprocessing.process, os, sys
def look():
    status = open("/proc/self/status").read()
    pids = sorted(p for p in os.listdir("/proc") if p.isdigit())
    spawned = multiprocessing.get_context("spawn").Process(target=len, args=((),))  # re-runs __main__'s file
    spawned.start()
    spawned.join(60)
    return {
        "main": sys.modules["__main__"].__file__, "path": sys.path, "spawned": spawned.exitcode,
        "mp_dir": multiprocessing.process.ORIGINAL_DIR,
        "pid": os.getpid(), "root": sorted(os.listdir("/")),
        "pids": pids,
        "cwd": os.getcwd(), "env": sorted(k for k in os.environ if k != "GRADER_JOB"), "home": os.environ["HOME"],
        "tmp": os.listdir("/tmp"), "shm": os.listdir("/dev/shm"), "scratch": os.listdir("."),
        "caps": status.split("CapEff:")[1].split()[0], "bounding": status.split("CapBnd:")[1].split()[0] != "0",
        "no_new_privs": status.split("NoNewPrivs:")[1].split()[0], "uid_is_root": os.getuid() == 0,
        "groups": os.getgroups(), "fds": sorted(os.listdir("/proc/self/fd")), "argv0": sys.argv[0],
        "job_files": sorted(os.listdir("/job-files")), "submission": sorted(os.listdir("/submission")),
        "write_usr": os.access("/usr", os.W_OK), "write_shm": os.access("/dev/shm", os.W_OK),
        "write_dev": os.access("/dev", os.W_OK), "write_tmp": os.access("/tmp", os.W_OK),
        "write_submission": os.access("/submission", os.W_OK),
        "host": os.path.exists("/host"), "newroot": os.path.exists("/newroot"),
    }
'''


def test_a_forked_worker_sees_what_a_cold_worker_sees(bwrap, template, tmp_path):
    views = {}
    for name, sandbox in (("cold", bwrap), ("warm", TemplatedSandbox(bwrap, template))):
        session = _session(sandbox, tmp_path / name, LOOK)
        try:
            views[name] = _student(session).look()
            if name == "warm":
                assert sandbox.forked == 1 and not sandbox.fallbacks, sandbox.fallbacks
                assert "warm template" in session.isolation["notes"]
        finally:
            session.close()
    assert views["warm"] == views["cold"]
    assert views["warm"]["pids"] == ["1", "2"] and views["warm"]["caps"] == "0000000000000000"
    assert not views["warm"]["uid_is_root"] and not views["warm"]["host"] and not views["warm"]["newroot"]


PLANT = '''
import multiprocessing, os, subprocess, signal
def authkey():  # what a job's multiprocessing authenticates with: its own, never the one before
    return bytes(multiprocessing.current_process().authkey).hex()
def plant():
    for place in ("/tmp", "/dev/shm", "/dev", ".", "/job-files/shared"):
        try:
            with open(os.path.join(place, "planted"), "w") as fh:
                fh.write("x")
        except OSError:  # not writable here (as for a cold worker)
            pass
    os.environ["PLANTED"] = "1"
    # a daemon in a session of its own, deaf to SIGTERM, meant to outlive the job
    deaf = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    quiet = subprocess.DEVNULL
    subprocess.Popen(["python3", "-c", deaf], start_new_session=True, stdout=quiet, stderr=quiet)
    return os.getuid()
def seen():
    found = [p for p in ("/tmp", "/dev/shm", "/dev", ".") if os.path.exists(os.path.join(p, "planted"))]
    if os.environ.get("PLANTED"):
        found.append("environment")
    for pid in os.listdir("/proc"):
        if pid.isdigit() and "time.sleep(600)" in open(f"/proc/{pid}/cmdline").read():
            found.append("process")
    return found
'''


def test_nothing_one_forked_job_leaves_reaches_the_next(bwrap, template, tmp_path):
    sandbox = TemplatedSandbox(bwrap, template)
    first = _session(sandbox, tmp_path / "first", PLANT)
    try:
        uid = _student(first).plant()
        first_key = _student(first).authkey()
    finally:
        first.close()
    deadline = time.monotonic() + 10
    while count_user_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not count_user_processes(uid), "a process of the job outlived it"
    second = _session(sandbox, tmp_path / "second", PLANT)
    try:
        assert _student(second).seen() == []
        assert _student(second).authkey() != first_key
    finally:
        second.close()
    assert sandbox.forked == 2 and not sandbox.fallbacks, sandbox.fallbacks


ESCAPE = '''
import ctypes, os
def escape():
    libc = ctypes.CDLL(None, use_errno=True)
    tried = {}
    tried["mount"] = libc.mount(b"tmpfs", b"/tmp", b"tmpfs", 0, None) == 0
    tried["umount_submission"] = libc.umount2(b"/submission", 2) == 0
    tried["unshare_user_then_umount"] = False
    if libc.unshare(0x10000000 | 0x20000) == 0:  # a user namespace of its own: capabilities there only
        tried["unshare_user_then_umount"] = libc.umount2(b"/submission", 2) == 0 or os.path.exists("/host")
    tried["kill_init"] = False
    try:
        os.kill(1, 9)
        tried["kill_init"] = True
    except OSError:
        pass
    tried["setuid_root"] = False
    try:
        os.setuid(0)
        tried["setuid_root"] = True
    except OSError:
        pass
    return tried
'''


def test_a_forked_worker_cannot_reach_back_into_its_template(bwrap, template, tmp_path):
    session = _session(TemplatedSandbox(bwrap, template), tmp_path / "escape", ESCAPE)
    try:
        tried = _student(session).escape()
    finally:
        session.close()
    assert not any(tried.values()), tried
    assert template.alive(), "the template must survive whatever a job does"


THREADS = '''
import torch
def matmul(n):
    torch.manual_seed(0)
    a = torch.randn(n, n)
    return [torch.get_num_threads(), float((a @ a).sum())]
'''


def test_multithreaded_torch_after_the_fork_gives_the_cold_answer(bwrap, template, tmp_path):
    answers = []
    for name, sandbox in (("cold", bwrap), ("warm", TemplatedSandbox(bwrap, template))):
        session = _session(sandbox, tmp_path / name, THREADS)
        try:
            answers.append(_student(session).matmul(512))  # intra-op threads made after the fork: no hang
        finally:
            session.close()
    assert answers[0] == answers[1]


def test_the_memory_limit_holds_in_a_forked_worker(bwrap, template, tmp_path):
    session = _session(TemplatedSandbox(bwrap, template), tmp_path / "mem",
                       "def grab():\n    return len(bytearray(3 * 1024 ** 3))\n", memory_mb=1536)
    try:
        with pytest.raises(WorkerOOM):
            _student(session).grab()
    finally:
        session.close()


def test_a_dead_template_costs_a_cold_start_never_a_result(bwrap, tmp_path):
    spec = _spec_factory(tmp_path / "t", "")()
    dying = bwrap.template(spec, ())
    assert dying is not None
    dying.proc.kill()
    dying.proc.wait()
    readable, _, _ = select.select([dying.control], [], [], 10)  # the template itself ends just after bwrap
    assert readable, "the template outlived its sandbox"
    sandbox = TemplatedSandbox(bwrap, dying)
    session = _session(sandbox, tmp_path / "job", "def add(a, b):\n    return a + b\n")
    try:
        assert _student(session).add(2, 3) == 5
    finally:
        session.close()
        dying.close()
    assert sandbox.forked == 0 and sandbox.fallbacks, "the worker should have started cold"


def test_a_forked_job_ends_when_its_runner_does(bwrap, template, tmp_path):
    """A runner killed on a timeout closes its end of the status socket: the job's pid 1 ends it, busy or not."""

    session = _session(TemplatedSandbox(bwrap, template), tmp_path / "orphan", "while True:\n    pass\n")
    session.prestart()  # the worker imports solution.py, which spins for ever
    worker = session.worker
    assert worker is not None
    uid = worker._uid
    deadline = time.monotonic() + 10
    while not count_user_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert count_user_processes(uid) == 1
    # a runner killed on a timeout: the kernel closes its files (the reader threads keep stdout and stderr here)
    os.close(worker.stdin.fileno())
    os.close(worker._status_fd)
    worker._status_fd = -1
    deadline = time.monotonic() + 10
    while count_user_processes(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not count_user_processes(uid), "the job outlived its runner"
    session.close()
