"""The sandbox contract: how a backend starts a worker, and what it hands back.

A backend (``bwrap``, ``process``, ``docker`` ...) is a plugin object with a ``name``, an
``available()`` probe and a ``start(spec)`` method.  ``start`` launches ``python -I -B
<worker>/_grader_worker.py`` with the submission read-only and a writable scratch directory, and
returns a :class:`Worker` whose stdin/stdout are the channel and whose stderr carries the
student's output.  Everything that decides a verdict stays outside.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

#: where a backend that isolates the filesystem mounts :attr:`WorkerSpec.files_dir` (read-only, except its
#: ``shared/`` folder); a backend that does not isolate it leaves the folder at its host path
JOB_FILES = "/job-files"


@dataclass(frozen=True)
class Limits:
    """Resource limits for one worker."""

    memory_mb: int = 3072
    max_processes: int = 128
    cpu_seconds: int = 600
    file_size_mb: int = 64
    tmp_mb: int = 128
    threads: int = 2
    open_files: int = 256


@dataclass(frozen=True)
class Isolation:
    """What a backend actually enforced; recorded in results.json and shown in reports."""

    backend: str
    filesystem: bool
    network: bool
    pid_namespace: bool
    user: str
    limits: tuple[str, ...] = ()
    notes: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "backend": self.backend,
            "filesystem": self.filesystem,
            "network": self.network,
            "pid_namespace": self.pid_namespace,
            "user": self.user,
            "limits": list(self.limits),
            "notes": self.notes,
        }



@dataclass(frozen=True)
class WorkerSpec:
    """Everything a backend needs to start one worker.

    Host paths; the backend decides where they appear inside the sandbox and reports it back
    through :attr:`Worker.submission_path`.
    """

    job_id: str
    submission_dir: Path
    scratch_dir: Path
    worker_dir: Path
    limits: Limits = field(default_factory=Limits)
    env: Mapping[str, str] = field(default_factory=dict)
    secret_paths: tuple[Path, ...] = ()
    readonly_paths: tuple[Path, ...] = ()
    python: str = sys.executable
    device: str = "cpu"
    #: files the checks hand to the student (``in/``, read-only there) and a ``shared/`` folder both sides write
    files_dir: Path | None = None


@dataclass(frozen=True)
class ExitInfo:
    """How a worker ended."""

    returncode: int | None
    oom_killed: bool = False

    def describe(self) -> str:
        if self.oom_killed:
            return "was killed for using more memory than allowed"
        code = self.returncode
        if code is None:
            return "is still running"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"was killed by {name}"
        return f"exited with code {code}"


@runtime_checkable
class Worker(Protocol):
    """A running worker; the grader talks to it over ``stdin``/``stdout``."""

    stdin: IO[bytes]
    stdout: IO[bytes]
    stderr: IO[bytes]
    submission_path: str
    isolation: Isolation

    def kill(self) -> None:
        """Stop the worker and everything it started; idempotent."""

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the worker to end; ``None`` if it is still running after ``timeout``."""

    def exit_info(self) -> ExitInfo:
        """How it ended (after :meth:`kill` or :meth:`wait`)."""


@runtime_checkable
class Sandbox(Protocol):
    """A sandbox backend, registered through ``grader_register_sandboxes`` (subclass :class:`SandboxBase`)."""

    name: str
    #: lower is preferred when the user names no backend
    priority: int
    #: whether a worker sees only what it is given rather than the host's files (None: the backend does not
    #: say); `grader serve` refuses a backend that says False (its workers could read other students' uploads)
    #: and warns about one that does not say
    isolates_filesystem: bool | None
    #: whether the backend can hand a leased GPU to a worker
    supports_gpu: bool

    def available(self) -> tuple[bool, str]:
        """Whether this backend can run here, and why not."""

    def start(self, spec: WorkerSpec) -> Worker:
        """Start a worker for ``spec``."""

    def cleanup(self, job_id: str) -> int:
        """Stop whatever of job ``job_id`` is left (a runner killed mid-job); how many things it stopped."""


class SandboxBase:
    """The optional parts of :class:`Sandbox` with their defaults: a backend sets ``name``, ``priority`` and
    what it can do, and implements ``available`` and ``start``."""

    name: str = ""
    priority: int = 100
    isolates_filesystem: bool | None = None
    supports_gpu: bool = False

    def available(self) -> tuple[bool, str]:
        raise NotImplementedError

    def start(self, spec: WorkerSpec) -> Worker:
        raise NotImplementedError

    def cleanup(self, job_id: str) -> int:
        return 0


class _Completed(SandboxBase):
    """A backend written without :class:`SandboxBase`, completed with its defaults when it is registered."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.name, self.priority = str(backend.name), int(backend.priority)
        self.isolates_filesystem = getattr(backend, "isolates_filesystem", None)
        self.supports_gpu = bool(getattr(backend, "supports_gpu", False))

    def available(self) -> tuple[bool, str]:
        return self.backend.available()  # type: ignore[no-any-return]

    def start(self, spec: WorkerSpec) -> Worker:
        return self.backend.start(spec)  # type: ignore[no-any-return]

    def cleanup(self, job_id: str) -> int:
        own = getattr(self.backend, "cleanup", None)
        return int(own(job_id) or 0) if own is not None else 0


def completed(backend: Any) -> Sandbox:
    """``backend`` with every part of the protocol: itself when it subclasses :class:`SandboxBase`."""
    return backend if isinstance(backend, SandboxBase) else _Completed(backend)
