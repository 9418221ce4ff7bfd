"""What the process-tree backends (``bwrap``, ``process``) share: the worker's environment, rlimits, GPU
leases, a per-job uid and the worker process itself; the docker backend uses the environment and the worker files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import resource
import signal
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

from grader.sandbox.base import ExitInfo, Isolation, Limits, WorkerSpec
from grader.sandbox.gpus import GpuLease, NoGPU, Passthrough, acquire, passthrough

#: the worker's two files, copied into each job (see :func:`install_worker`)
WORKER_FILES = {"_grader_wire.py": "wire.py", "_grader_worker.py": "worker.py"}


def worker_env(spec: WorkerSpec, home: str) -> dict[str, str]:
    """The whole environment a worker sees: nothing inherited from the grader."""
    threads = str(spec.limits.threads)
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "OPENBLAS_NUM_THREADS": threads,
        "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": f"{home}/.hf",
        "CUDA_VISIBLE_DEVICES": "",
        "GRADER_JOB": spec.job_id,  # lets an operator (and the tests) find every process of a job
    }
    env.update(spec.env)
    return env


def gpu_lease(spec: WorkerSpec) -> tuple[GpuLease | None, Passthrough | None]:
    """For a ``cuda`` job, a lease on one GPU and what to bind for it; (None, None) for a CPU job."""
    if spec.device != "cuda":
        return None, None
    try:
        lease = acquire(1)
    except NoGPU as exc:
        raise RuntimeError(str(exc)) from None
    return lease, passthrough(lease)


def memory_limit_note(gpu: Passthrough | None) -> tuple[str, ...]:
    """How a process-tree worker's memory is bounded (see :func:`rlimit_preexec`), and its GPUs."""
    return ("rlimit-data (CUDA reserves address space)", gpu.summary()) if gpu else ("rlimit-as",)


def python_roots() -> list[Path]:
    """Folders outside /usr that the interpreter and its site-packages need, to mount read-only."""
    roots = {
        Path(sys.base_prefix).resolve(),
        Path(sys.prefix).resolve(),
        Path(sys.exec_prefix).resolve(),
        Path(sysconfig.get_paths()["purelib"]).resolve(),
        Path(os.path.realpath(sys.executable)).parent.parent,
    }
    return sorted(r for r in roots if not str(r).startswith("/usr/"))


def secrets_under(bound: list[Path], secrets: tuple[Path, ...]) -> list[Path]:
    """The secret paths that would be visible through ``bound`` mounts, and so must be masked."""
    out = []
    for secret in secrets:
        secret = Path(secret).resolve()
        if secret.exists() and any(secret.is_relative_to(b) for b in bound):
            out.append(secret)
    return out


def count_user_processes(uid: int) -> int:
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += 1
            except OSError:
                continue
    return count


def rlimit_preexec(limits: Limits, nproc_base: int = 0, gpu: bool = False) -> Callable[[], None]:
    """A ``preexec_fn`` setting hard and soft rlimits (the hard CPU limit: see SANDBOX_NOTES).

    Memory is bounded by address space, except for a GPU worker: CUDA reserves terabytes of address space
    it never touches, so there the bound is on the data segment (private writable memory) instead.
    """
    mem = limits.memory_mb * 1024 * 1024
    settings = [
        (resource.RLIMIT_DATA if gpu else resource.RLIMIT_AS, mem),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * 1024 * 1024),
        (resource.RLIMIT_NPROC, nproc_base + limits.max_processes),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ]

    def apply() -> None:
        for which, value in settings:
            try:
                resource.setrlimit(which, (value, value))
            except (ValueError, OSError):
                _soft, hard = resource.getrlimit(which)
                resource.setrlimit(which, (min(value, hard) if hard >= 0 else value, hard))

    return apply


class ProcessWorker:
    """A worker that is a local process tree, killed by process group (and uid where it has one)."""

    def __init__(
        self,
        argv: list[str],
        env: Mapping[str, str],
        cwd: Path,
        limits: Limits,
        submission_path: str,
        isolation: Isolation,
        sweep_uid: int | None = None,
        lease: GpuLease | None = None,
    ) -> None:
        nproc_base = 0 if sweep_uid is not None else count_user_processes(os.getuid())
        self._lease = lease  # released when the worker is killed (every job ends that way)
        self._proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env),
            cwd=str(cwd),
            start_new_session=True,
            preexec_fn=rlimit_preexec(limits, nproc_base, gpu=lease is not None),
            close_fds=True,
        )
        assert self._proc.stdin and self._proc.stdout and self._proc.stderr
        self.stdin: IO[bytes] = self._proc.stdin
        self.stdout: IO[bytes] = self._proc.stdout
        self.stderr: IO[bytes] = self._proc.stderr
        self.submission_path = submission_path
        self.isolation = isolation
        self.pid = self._proc.pid
        self._sweep_uid = sweep_uid
        self._killed = False

    def kill(self) -> None:
        if not self._killed:
            self._killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)
        if self._sweep_uid is not None:
            kill_uid(self._sweep_uid)
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for stream in (self.stdin, self.stdout):
            with contextlib.suppress(OSError):
                stream.close()
        if self._lease is not None:
            self._lease.release()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            return self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def exit_info(self) -> ExitInfo:
        return ExitInfo(self._proc.returncode)


def kill_uid(uid: int) -> int:
    """SIGKILL every process owned by ``uid`` (a sandbox-only uid); returns how many were found."""
    if uid == 0 or uid == os.getuid():
        return 0
    found = 0
    for _ in range(20):
        pids = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    if entry.stat().st_uid == uid:
                        pids.append(int(entry.name))
                except OSError:
                    continue
        if not pids:
            break
        found += len(pids)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    return found


def sandbox_uid(job_id: str) -> int:
    """A uid of its own for each job (when the grader runs as root), so jobs cannot signal each other."""
    return 61000 + int(hashlib.sha256(job_id.encode()).hexdigest(), 16) % 4000


def install_worker(dest: Path) -> Path:
    """Copy the worker's two files into ``dest``; the sandbox sees only these, never the grader."""
    here = Path(__file__).parent
    dest.mkdir(parents=True, exist_ok=True)
    for target, source in WORKER_FILES.items():
        (dest / target).write_bytes((here / source).read_bytes())
    os.chmod(dest, 0o755)
    return dest
