"""Warm trusted runners: a fork server that has imported python, pytest and torch once.

A cold job starts ``python -m grader.checks.runner`` and pays for importing pytest, torch and grader (about 3 s
of CPU on these machines, 4.5 s with transformers) before its first check runs. A :class:`RunnerPool`
keeps fork servers (``python -m grader.checks.warm``) that import all of that once and then fork one fresh
runner per job. The fork server never runs a check or any torch operation itself, so no intra-op or
OpenMP thread pool exists at the fork; the runner it forks is the same trusted process a cold job
starts (it only talks to student code through its sandboxed worker, started per job as before), runs
one job, and exits: nothing of one job is left in the process the next one forks from.

Each child gets the requester's environment and working folder, a new session (the grader kills its
process group on a timeout, as for a cold runner) and ``PR_SET_PDEATHSIG``, so it dies with its fork
server, which dies with the grader. A server whose start environment differs from a request's is
replaced, since some libraries read their environment at import (``HF_HUB_OFFLINE``). Anything wrong
with the pool itself (a server that will not start or dies) falls back to a cold runner: the pool may
cost speed, never a result.

Protocol (JSON lines over the server's stdin/stdout): the server writes ``{"ready": pid}`` once, then
for each request ``{"cfg", "env", "cwd", "log"}`` writes ``{"pid": N}`` when the child exists and
``{"pid": N, "status": S}`` when it has exited (``S`` the exit code, or minus the signal).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from grader.checks.runner_config import RunnerConfig
from grader.sandbox import Limits, WorkerSpec, templates

#: imported by every fork server: what every runner needs
PRELOAD = ("torch", "pytest", "grader.checks.checking", "grader.sandbox.remote", "grader.checks.runner",
           "grader.testing")
#: imported as well when installed (cheap, and most checks use them)
OPTIONAL = ("numpy", "safetensors.torch")
#: imported when installed, once, before the first job whose checks import the key (`RunnerConfig.runner_preload`):
#: transformers alone costs seconds, which a server grading attention or tokenization never needs to pay
ON_DEMAND = {"transformers": ("transformers", "transformers.modeling_utils")}
START_TIMEOUT_S = 120.0
#: warm worker templates a fork server keeps (each holds a python with torch, and transformers where preloaded)
TEMPLATES_KEPT = 3
#: environment keys that change from job to job and that no library reads at import, so they never force a
#: new server (the job's fork still gets them): pytest names the running test in PYTEST_CURRENT_TEST, which
#: otherwise made every grading under pytest (the curriculum self-test, the hostile suite) start a new server
PER_JOB = ("GRADER_PARENT_PID", "PYTEST_CURRENT_TEST")


class ServerGone(Exception):
    """The fork server died or answered nonsense: the job falls back to a cold runner."""


class ForkServer:
    """One ``python -m grader.checks.warm`` process, used by one job at a time."""

    def __init__(self, env: dict[str, str], first: Path | None = None) -> None:
        """``first``: the runner.json of the job the server is started for: it starts that job's worker
        template before its own imports, so the two cold starts overlap."""
        self.env = env
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "grader.checks.warm", *([str(first)] if first else [])], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={**env, "GRADER_PARENT_PID": str(os.getpid())},
            start_new_session=True,
        )
        self._buffer = b""
        ready = self._reply(time.monotonic() + START_TIMEOUT_S)
        if ready is None or "ready" not in ready:
            self.close()
            raise ServerGone("the warm runner did not start")

    def _reply(self, deadline: float) -> dict[str, Any] | None:
        """The next JSON line, or None at the deadline; ServerGone when the server has closed its output."""
        stdout = self.proc.stdout
        assert stdout is not None
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, _, _ = select.select([stdout], [], [], min(left, 1.0))
            if readable:
                chunk = os.read(stdout.fileno(), 65536)
                if not chunk:
                    raise ServerGone("the warm runner exited")
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            reply = json.loads(line)
        except ValueError:
            raise ServerGone(f"the warm runner said {line[:200]!r}") from None
        if not isinstance(reply, dict):
            raise ServerGone(f"the warm runner said {line[:200]!r}")
        return reply

    def run(self, cfg_path: Path, timeout: float, env: dict[str, str]) -> tuple[int | None, str]:
        """Run one job's runner; (exit code or None on timeout, the tail of its output)."""
        log = cfg_path.parent / "runner.log"
        request = {"cfg": str(cfg_path), "env": env, "cwd": os.getcwd(), "log": str(log)}
        stdin = self.proc.stdin
        assert stdin is not None
        try:
            stdin.write((json.dumps(request) + "\n").encode())
            stdin.flush()
        except OSError as exc:
            raise ServerGone(f"the warm runner cannot be reached: {exc}") from None
        deadline = time.monotonic() + timeout
        started = self._reply(time.monotonic() + START_TIMEOUT_S)
        if started is None or not isinstance(started.get("pid"), int):
            raise ServerGone("the warm runner did not fork")
        pid = started["pid"]
        try:
            done = self._reply(deadline)
        except BaseException:  # Ctrl-C: take the runner and its sandbox down with us
            _kill_group(pid)
            raise
        if done is None:  # past the deadline: kill the runner's session; the server reaps it
            _kill_group(pid)
            self._reply(time.monotonic() + 30.0)
            return None, _tail(log)
        status = done.get("status")
        return (int(status) if isinstance(status, int) else 70), _tail(log)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _kill_group(pid: int) -> None:
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def _tail(log: Path) -> str:
    try:
        with log.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(fh.tell() - 4000, 0))
            return fh.read().decode(errors="replace")
    except OSError:
        return ""


class RunnerPool:
    """Up to ``size`` fork servers, started on first use, shared by the threads of one grader process."""

    def __init__(self, size: int = 1) -> None:
        self.size = max(int(size), 1)
        self._idle: list[ForkServer] = []
        self._count = 0
        self._cond = threading.Condition()
        self.fallbacks: list[str] = []  # why a job ran cold (the pool's own trouble, never the student's)
        self.warm_jobs = 0
        self.closed = False

    def _take(self, env: dict[str, str], first: Path) -> ForkServer:
        with self._cond:
            while True:
                for server in self._idle:
                    if server.env == env and server.alive():
                        self._idle.remove(server)
                        return server
                stale = next((s for s in self._idle if s.env != env or not s.alive()), None)
                if stale is not None:  # another environment: replace it
                    self._idle.remove(stale)
                    self._count -= 1
                    stale.close()
                if self._count < self.size:
                    self._count += 1
                    break
                self._cond.wait()
        try:
            return ForkServer(env, first)
        except BaseException:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            raise

    def _give_back(self, server: ForkServer, keep: bool) -> None:
        with self._cond:
            if keep and server.alive() and not self.closed:
                self._idle.append(server)
            else:
                self._count -= 1
                server.close()
            self._cond.notify()

    def run(self, cfg_path: Path, timeout: float, env: dict[str, str]) -> tuple[int | None, str] | None:
        """The job's (exit code, output tail) from a warm runner, or None when the pool could not run it."""
        base = {k: v for k, v in env.items() if k not in PER_JOB}
        if self.closed:
            return None
        try:
            server = self._take(base, cfg_path)
        except ServerGone as exc:
            self.fallbacks.append(str(exc))
            return None
        keep = False
        try:
            result = server.run(cfg_path, timeout, {**base, "GRADER_PARENT_PID": str(server.proc.pid)})
            keep = True
            self.warm_jobs += 1
            return result
        except ServerGone as exc:
            self.fallbacks.append(str(exc))
            return None
        finally:
            self._give_back(server, keep)

    def close(self) -> None:
        with self._cond:
            self.closed = True
            servers, self._idle = self._idle, []
            self._count -= len(servers)
        for server in servers:
            server.close()


_ACTIVE: RunnerPool | None = None
_ACTIVE_LOCK = threading.Lock()


def active() -> RunnerPool | None:
    """The pool jobs of this process use now, if any (see :func:`pool`)."""
    return _ACTIVE


def install(size: int) -> RunnerPool | None:
    """Make a pool of ``size`` servers the process's, unless one is already (then None: it is not yours)."""
    global _ACTIVE
    with _ACTIVE_LOCK:
        if _ACTIVE is not None:
            return None
        _ACTIVE = RunnerPool(size)
        return _ACTIVE


def uninstall(mine: RunnerPool | None) -> None:
    """Close a pool :func:`install` returned (None: nothing to do)."""
    global _ACTIVE
    if mine is None:
        return
    with _ACTIVE_LOCK:
        if _ACTIVE is mine:
            _ACTIVE = None
    mine.close()


@contextlib.contextmanager
def activate(existing: RunnerPool) -> Iterator[RunnerPool]:
    """Jobs inside the block use ``existing``, which stays open after it (a pool kept for many blocks)."""
    global _ACTIVE
    with _ACTIVE_LOCK:
        if _ACTIVE is not None:
            raise RuntimeError("another runner pool is active")
        _ACTIVE = existing
    try:
        yield existing
    finally:
        with _ACTIVE_LOCK:
            _ACTIVE = None


@contextlib.contextmanager
def pool(size: int = 1, enabled: bool = True) -> Iterator[RunnerPool | None]:
    """Grade with warm runners inside the block (nested blocks share the outer pool); closed at the end."""
    mine = install(size) if enabled else None
    try:
        yield active() if enabled else None
    finally:
        uninstall(mine)


# -- the fork server itself ----------------------------------------------------------------------------------

def preload() -> None:
    """Import what every runner needs, and run nothing: no torch operation, so no thread pool yet."""
    for name in PRELOAD:
        importlib.import_module(name)
    for name in OPTIONAL:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    with contextlib.suppress(Exception):  # the plugins imported and the check files' points read once, not per job
        server_registries()


@functools.cache
def server_registries() -> Any:
    """The fork server's plugins, collected once: the templates' sandboxes come from them, and every fork finds
    the plugin modules imported and the check files parsed."""
    from grader.plugins import Registries, make_plugin_manager

    return Registries.collect(make_plugin_manager())


def preload_for(modules: list[str]) -> None:
    """Import, before the next fork, what a job's checks need and this server has not imported yet (each of
    :data:`ON_DEMAND` at most once); the forks after it find it imported."""
    wanted = [name for root in modules for name in ON_DEMAND.get(root, ()) if name not in sys.modules]
    for name in wanted:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    if wanted:
        gc.collect()
        gc.freeze()


def _job_config(request: dict[str, Any]) -> RunnerConfig | None:
    """The job's runner.json, or None (a path that is not a plain file is never opened: a fifo would block)."""
    try:
        path = Path(request["cfg"])
        return RunnerConfig.read(path) if path.is_file() else None
    except Exception:
        return None


def _serve(stdin: IO[bytes], stdout: IO[bytes], first: str | None = None) -> None:
    from grader.checks import runner

    runner.die_with_parent(int(os.environ.get("GRADER_PARENT_PID", "0") or 0))
    keeper = TemplateKeeper()
    if first:  # the first job's worker template imports torch in its sandbox while this server imports its own
        keeper.for_job(_job_config({"cfg": first}))
    preload()
    # what was preloaded stays put: a fork's collections never walk the server's heap (torch's is large), and
    # the pages it shares with the server are not written by the collector
    gc.collect()
    gc.freeze()
    server_pid = os.getpid()

    def say(message: dict[str, Any]) -> None:
        stdout.write((json.dumps(message) + "\n").encode())
        stdout.flush()

    say({"ready": server_pid})
    for line in stdin:
        request = json.loads(line)
        cfg = _job_config(request)
        if cfg is not None:
            preload_for(cfg.runner_preload)
        templates.make_current(keeper.for_job(cfg))  # the fork below uses it for its workers
        pid = os.fork()
        if pid == 0:
            _child(request, server_pid)  # never returns
        say({"pid": pid})
        _, status = os.waitpid(pid, 0)
        say({"pid": pid, "status": os.waitstatus_to_exitcode(status)})


class TemplateKeeper:
    """The fork server's warm worker templates (:mod:`grader.sandbox.templates`), one per kind of worker its
    jobs have needed, at most :data:`TEMPLATES_KEPT` (the least recently used is closed)."""

    def __init__(self) -> None:
        self.kept: dict[str, templates.WorkerTemplate] = {}

    def for_job(self, cfg: RunnerConfig | None) -> templates.WorkerTemplate | None:
        """The template the job's workers can be forked from (started now if there is none yet), or None: the job
        starts them cold (no readable runner.json, warm workers off, a backend without templates, any trouble
        starting one)."""
        try:
            if cfg is None or not cfg.warm_workers or cfg.load_problem or cfg.device != "cpu":
                return None
            sandbox = server_registries().sandboxes.get(cfg.sandbox)
            spec = WorkerSpec(job_id="template", submission_dir=Path(cfg.submission_dir),
                              scratch_dir=Path(cfg.job_dir), worker_dir=Path(cfg.job_dir), limits=Limits(**cfg.limits),
                              device=cfg.device)
            preload = tuple(cfg.worker_preload)
            key = f"{sandbox.name}:{templates.template_key(spec, preload)}"
            kept = self.kept.pop(key, None)
            if kept is not None and kept.alive():
                self.kept[key] = kept  # most recently used last
                return kept
            if kept is not None:
                kept.close()
            make = getattr(sandbox, "template", None)
            fresh = make(spec, preload) if make is not None else None
        except Exception:
            return None
        if fresh is None:
            return None
        self.kept[key] = fresh
        while len(self.kept) > TEMPLATES_KEPT:
            oldest = next(iter(self.kept))
            self.kept.pop(oldest).close()
        return fresh


def _child(request: dict[str, Any], server_pid: int) -> None:
    code = 70
    try:
        os.setsid()
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(devnull)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        from grader.checks import runner

        runner.die_with_parent(server_pid)
        code = runner.entry(Path(request["cfg"]))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 70
    except BaseException:  # a runner that cannot start is a grader error, reported by its exit code and log
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    _serve(sys.stdin.buffer, sys.stdout.buffer, sys.argv[1] if len(sys.argv) > 1 else None)
