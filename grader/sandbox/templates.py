"""Warm worker templates, the trusted side: hand a job to a template and talk to the worker it forks.

A backend that can fork workers from a warm template (``bwrap`` run as root: see
:mod:`grader.sandbox.template`, the part that runs inside) returns a :class:`WorkerTemplate` from
``Sandbox.template(spec, preload)``. The warm fork server (:mod:`grader.checks.warm`) keeps a few, keyed by
what they preloaded and the workers' environment, and makes the right one :func:`current` before it forks a
job's runner; the runner wraps its sandbox with :func:`wrap`, so every worker of that job is forked from the
template, or, when the template cannot (dead, a GPU job, a setup step refused), started cold as before: a
template costs speed, never a result.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from grader.sandbox.base import ExitInfo, Isolation, Sandbox, SandboxBase, Worker, WorkerSpec
from grader.sandbox.process import install_worker, kill_uid, worker_env

#: where a template sees the host's files (read-only); a job's own root is built from them and this is detached
HOST = "/host"
#: the template's end of its control socket
CONTROL_FD = 3
#: how long a job waits for its template to fork it a worker (the first job also waits for the preloads)
START_TIMEOUT_S = 60.0


class TemplateUnavailable(Exception):
    """This worker cannot come from the template; the job starts it cold instead."""


def template_env(spec: WorkerSpec) -> dict[str, str]:
    """The environment a template for ``spec``'s workers starts with: theirs, less the job's name."""
    env = worker_env(spec, home="/tmp")
    env.pop("GRADER_JOB", None)
    return env


def template_key(spec: WorkerSpec, preload: tuple[str, ...]) -> str:
    """What decides whether a template can fork ``spec``'s worker: what it imported, and under what."""
    return json.dumps([spec.python, spec.device, sorted(template_env(spec).items()), list(preload)])


def install_template(dest: Path) -> Path:
    """The worker's files and the template's own, in ``dest`` (bound at the worker's place in the template)."""
    install_worker(dest)
    (dest / "_grader_template.py").write_bytes((Path(__file__).parent / "template.py").read_bytes())
    return dest


def start_template(key: str, argv: list[str], env: dict[str, str], home: Path) -> WorkerTemplate:
    """Start ``argv`` (a sandboxed ``_grader_template.py``) with its end of a control socket on fd 3."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    fd = theirs.fileno()

    def on_fd_3() -> None:
        os.dup2(fd, CONTROL_FD)

    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                env={"PATH": "/usr/bin:/bin"}, start_new_session=True, preexec_fn=on_fd_3,
                                pass_fds=(CONTROL_FD,))
    finally:
        theirs.close()
    return WorkerTemplate(key, proc, ours, env, home)


class WorkerTemplate:
    """A running template process and the grader's end of its control socket."""

    def __init__(self, key: str, proc: subprocess.Popen[bytes], control: socket.socket, env: dict[str, str],
                 home: Path | None = None) -> None:
        self.key = key
        self.proc = proc
        self.control = control
        self.env = env
        self.home = home
        self.used = 0

    def alive(self) -> bool:
        return self.proc.poll() is None

    def fork_worker(self, job: dict[str, Any], uid: int, submission_path: str, isolation: Isolation) -> Worker:
        """Send one job and wait until its worker runs: a :class:`TemplateWorker`, or TemplateUnavailable."""
        # (no poll of the process here: this runs in a runner forked from the template's owner, whose child it is not;
        # a template that has exited has closed its end, and the send fails)
        ends = [os.pipe() for _ in range(3)]  # stdin, stdout, stderr: (read, write) each
        # status: a socket, so the job's pid 1 sees this end close when the runner ends (then the job is ended)
        status_ours, status_theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        theirs = [ends[0][0], ends[1][1], ends[2][1], status_theirs.detach()]
        ours = [ends[0][1], ends[1][0], ends[2][0], status_ours.detach()]
        try:
            self.control.sendmsg([json.dumps(job).encode()],
                                 [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", theirs))])
        except OSError as exc:
            for fd in ours:
                os.close(fd)
            raise TemplateUnavailable(f"the worker template cannot be reached: {exc}") from None
        finally:
            for fd in theirs:
                os.close(fd)
        self.used += 1
        worker = TemplateWorker(ours, submission_path, isolation, uid)
        first = worker.status(START_TIMEOUT_S)
        if not first.get("ok"):
            worker.kill()
            raise TemplateUnavailable(f"the worker template could not start a worker: {first.get('error', first)}")
        return worker

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.control.close()
        if self.proc.poll() is None:
            self.proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)


class TemplateWorker:
    """A worker forked from a template: the three pipes of the wire, and a status socket for how it ended."""

    def __init__(self, fds: list[int], submission_path: str, isolation: Isolation, uid: int) -> None:
        self.stdin: IO[bytes] = os.fdopen(fds[0], "wb")
        self.stdout: IO[bytes] = os.fdopen(fds[1], "rb")
        self.stderr: IO[bytes] = os.fdopen(fds[2], "rb")
        self._status_fd = fds[3]
        self._buffer = b""
        self._returncode: int | None = None
        self._ended = False
        self.submission_path = submission_path
        self.isolation = isolation
        self._uid = uid
        self._killed = False

    def status(self, timeout: float) -> dict[str, Any]:
        """The next status line: ``{"ok": ...}`` once, then ``{"returncode": N}``; ``{}`` when the pipe closed."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or self._ended:
                return {}
            readable, _, _ = select.select([self._status_fd], [], [], left)
            if not readable:
                return {}
            chunk = os.read(self._status_fd, 4096)
            if not chunk:
                self._ended = True
                return {}
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        with contextlib.suppress(ValueError):
            message = json.loads(line)
            if isinstance(message, dict):
                return message
        return {}

    def kill(self) -> None:
        if not self._killed:
            self._killed = True
            kill_uid(self._uid)  # the job's own uid: its worker and all it started (the job's pid 1 then ends)
        self.wait(timeout=10)
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        if self._status_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self._status_fd)
            self._status_fd = -1
            self._ended = True

    def wait(self, timeout: float | None = None) -> int | None:
        if self._returncode is None and not self._ended and self._status_fd >= 0:
            message = self.status(1e9 if timeout is None else timeout)
            if "returncode" in message:
                self._returncode = int(message["returncode"])
            elif self._ended:  # the job's pid 1 died without a word: its worker was killed with it
                self._returncode = -9
        return self._returncode

    def exit_info(self) -> ExitInfo:
        return ExitInfo(self._returncode)


class TemplatedSandbox(SandboxBase):
    """A backend whose workers come from ``template`` when it can fork them, and are started cold otherwise."""

    def __init__(self, backend: Sandbox, template: WorkerTemplate) -> None:
        self.backend = backend
        self.template = template  # type: ignore[assignment]
        self.name, self.priority = backend.name, backend.priority
        self.isolates_filesystem, self.supports_gpu = backend.isolates_filesystem, backend.supports_gpu
        self.fallbacks: list[str] = []
        self.forked = 0

    def available(self) -> tuple[bool, str]:
        return self.backend.available()

    def start(self, spec: WorkerSpec) -> Worker:
        fork = getattr(self.backend, "start_from_template", None)
        if fork is not None:
            try:
                worker: Worker = fork(self.template, spec)
                self.forked += 1
                return worker
            except TemplateUnavailable as exc:
                self.fallbacks.append(str(exc))
        return self.backend.start(spec)

    def cleanup(self, job_id: str) -> int:
        return self.backend.cleanup(job_id)


_CURRENT: WorkerTemplate | None = None


def make_current(template: WorkerTemplate | None) -> None:
    """The template the next forked runner uses (set by the fork server just before it forks)."""
    global _CURRENT
    _CURRENT = template


def current() -> WorkerTemplate | None:
    return _CURRENT


def wrap(sandbox: Sandbox) -> Sandbox:
    """``sandbox`` with this process's template in front of it, when there is one for it."""
    template = _CURRENT
    if template is None or not template.key.startswith(f"{sandbox.name}:"):
        return sandbox
    return TemplatedSandbox(sandbox, template)
