"""Sandboxes: the contract a backend implements, and what the backends share.

``grader.sandbox`` is the public import path for backends and check files; it re-exports the contract
(:mod:`grader.sandbox.base`) and the process-tree helpers (:mod:`grader.sandbox.process`).  Beside them:
:mod:`~grader.sandbox.remote` (the trusted side of the channel), :mod:`~grader.sandbox.wire` (its format),
:mod:`~grader.sandbox.worker` (the sandboxed side), :mod:`~grader.sandbox.gpus` (GPU leases) and
:mod:`~grader.sandbox.images` (the docker backend's worker images).
"""

from grader.sandbox.base import (
    JOB_FILES,
    ExitInfo,
    Isolation,
    Limits,
    Sandbox,
    SandboxBase,
    Worker,
    WorkerSpec,
    completed,
)
from grader.sandbox.process import (
    WORKER_FILES,
    ProcessWorker,
    count_user_processes,
    gpu_lease,
    install_worker,
    kill_uid,
    memory_limit_note,
    python_roots,
    rlimit_preexec,
    sandbox_uid,
    secrets_under,
    worker_env,
)

__all__ = [
    "JOB_FILES", "WORKER_FILES", "ExitInfo", "Isolation", "Limits", "ProcessWorker", "Sandbox", "SandboxBase",
    "Worker", "WorkerSpec", "completed", "count_user_processes", "gpu_lease", "install_worker", "kill_uid",
    "memory_limit_note", "python_roots", "rlimit_preexec", "sandbox_uid", "secrets_under", "worker_env",
]
