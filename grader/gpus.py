"""Which GPUs this host has, and leases on them so parallel jobs wait instead of oversubscribing.

A lease is an exclusive ``fcntl`` lock on one file per GPU in a lock folder shared by every grader
process on the host; it is released when the lease closes or its process dies, so a crashed grader
never strands a GPU.  ``GRADER_GPUS`` (e.g. ``"0,1"``, or ``""`` for none) overrides detection,
which is how the scheduling is tested on machines without GPUs.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


def detect_gpus() -> list[str]:
    """GPU ids visible to the host: ``GRADER_GPUS`` if set, else ``nvidia-smi``, else none."""
    override = os.environ.get("GRADER_GPUS")
    if override is not None:
        return [g.strip() for g in override.split(",") if g.strip()]
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True, text=True,
                             timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def lock_dir() -> Path:
    path = Path(os.environ.get("GRADER_GPU_LOCKS", Path(tempfile.gettempdir()) / "grader-gpu-locks"))
    path.mkdir(parents=True, exist_ok=True)
    return path


class NoGPU(Exception):
    """No GPU exists here, or none became free in time."""


@dataclass
class GpuLease:
    """Exclusive use of ``ids`` until :meth:`release` (or the process ends)."""

    ids: list[str]
    _files: list[IO[str]] = field(default_factory=list, repr=False)

    def release(self) -> None:
        for fh in self._files:
            fh.close()  # closing drops the fcntl lock
        self._files.clear()

    def __enter__(self) -> GpuLease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire(count: int, timeout_s: float = 3600.0, poll_s: float = 0.5, gpus: list[str] | None = None) -> GpuLease:
    """Lease ``count`` GPUs, waiting up to ``timeout_s`` for them to be free."""
    available = detect_gpus() if gpus is None else gpus
    if count > len(available):
        raise NoGPU(f"the exercise needs {count} GPU(s) and this machine has {len(available)}")
    deadline = time.monotonic() + timeout_s
    while True:
        held: list[IO[str]] = []
        ids: list[str] = []
        for gpu in available:
            fh: IO[str] = (lock_dir() / f"gpu-{gpu}.lock").open("a")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            held.append(fh)
            ids.append(gpu)
            if len(ids) == count:
                return GpuLease(ids, held)
        for fh in held:
            fh.close()
        if time.monotonic() >= deadline:
            raise NoGPU(f"no {count} GPU(s) became free within {timeout_s:.0f} s")
        time.sleep(poll_s)
