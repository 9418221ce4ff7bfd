"""The ``process`` sandbox: an unprivileged subprocess with rlimits, kept as the fallback.

It isolates the network and process ids where the kernel lets it (``unshare``), drops to a uid of
its own when the grader runs as root and that uid can reach the interpreter, and always kills the
whole process group.  It does not hide the filesystem: results say so.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys

from grader import hookimpl
from grader.sandbox import (
    Isolation,
    ProcessWorker,
    SandboxBase,
    WorkerSpec,
    gpu_lease,
    memory_limit_note,
    sandbox_uid,
    worker_env,
)


@functools.cache
def _works(argv: tuple[str, ...]) -> bool:
    try:
        done = subprocess.run(
            [*argv, sys.executable, "-I", "-c", "import sys; print(sys.version)"],
            capture_output=True, timeout=20, check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    # the same interpreter must answer: an unreadable venv base can silently fall back to another Python
    return done.returncode == 0 and done.stdout.decode().strip() == sys.version.strip()


def _unshare_prefix() -> tuple[str, ...]:
    unshare = shutil.which("unshare")
    if not unshare:
        return ()
    argv: tuple[str, ...] = (unshare, "--net", "--pid", "--fork", "--kill-child", "--mount-proc")
    if os.geteuid() != 0:
        argv = (unshare, "--map-root-user", *argv[1:])
    return argv if _works(argv) else ()


def _setpriv_prefix(uid: int) -> tuple[str, ...]:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv:
        return ()
    argv = (setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs")
    return argv if _works(argv) else ()


class ProcessSandbox(SandboxBase):
    name = "process"
    priority = 50
    isolates_filesystem = False

    def available(self) -> tuple[bool, str]:
        return True, "always available"

    supports_gpu = True  # a process worker sees the host's devices; its lease names the GPU it may use

    def start(self, spec: WorkerSpec) -> ProcessWorker:
        uid = sandbox_uid(spec.job_id)
        ns = _unshare_prefix()
        drop = _setpriv_prefix(uid)
        if drop:
            for path in (spec.scratch_dir,):
                os.chown(path, uid, uid)
        user = f"uid {uid}" if drop else f"uid {os.getuid()} (the grader's own user)"
        notes = "filesystem not isolated: the worker can read what its user can read"
        if not drop and os.geteuid() == 0:
            notes += "; the interpreter is not reachable by an unprivileged uid, so it runs as root"
        lease, gpu = gpu_lease(spec)
        try:
            isolation = Isolation(
                backend=self.name,
                filesystem=False,
                network=bool(ns),
                pid_namespace=bool(ns),
                user=user,
                limits=(*memory_limit_note(gpu), "rlimit-cpu", "rlimit-nproc", "rlimit-fsize", "process-group-kill"),
                notes=notes,
            )
            argv = [*ns, *drop, spec.python, "-I", "-B", str(spec.worker_dir / "_grader_worker.py")]
            env = worker_env(spec, home=str(spec.scratch_dir))
            env.update(gpu.env if gpu else {})
            return ProcessWorker(
                argv, env, spec.scratch_dir, spec.limits, str(spec.submission_dir), isolation,
                sweep_uid=uid if drop else None, lease=lease,
            )
        except BaseException:
            if lease is not None:
                lease.release()
            raise


@hookimpl
def grader_register_sandboxes(registry):  # type: ignore[no-untyped-def]
    registry.add(ProcessSandbox())
