"""Which GPUs this host has, and leases on them so parallel jobs wait instead of oversubscribing.

A lease is an exclusive ``fcntl`` lock on one file per GPU in a lock folder shared by every grader
process on the host; it is released when the lease closes or its process dies, so a crashed grader
never strands a GPU.  ``GRADER_GPUS`` (e.g. ``"0,1"``, or ``""`` for none) overrides detection,
which is how the scheduling is tested on machines without GPUs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader.fs import Lock


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
    _locks: list[Lock] = field(default_factory=list, repr=False)

    def release(self) -> None:
        for lock in self._locks:
            lock.release()
        self._locks.clear()

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
        held: list[Lock] = []
        ids: list[str] = []
        for gpu in available:
            lock = Lock(lock_dir() / f"gpu-{gpu}.lock")
            if not lock.acquire(wait=False):
                continue
            held.append(lock)
            ids.append(gpu)
            if len(ids) == count:
                return GpuLease(ids, held)
        for lock in held:
            lock.release()
        if time.monotonic() >= deadline:
            raise NoGPU(f"no {count} GPU(s) became free within {timeout_s:.0f} s")
        time.sleep(poll_s)


#: where the NVIDIA device nodes live (a test points this at a folder of stand-ins)
DEV = Path("/dev")
#: the control nodes every CUDA process opens, beside its GPUs' own /dev/nvidia<N>
CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset")


@dataclass(frozen=True)
class Passthrough:
    """What a sandbox without Docker binds so a worker can use its leased GPUs, and nothing more.

    ``nodes``: (host path, path in the worker) of the leased GPUs' device nodes and of the control nodes
    that exist on this host;
    ``library_dirs``: folders outside /usr holding the driver's libraries (/usr itself is always bound
    read-only), from ``ld.so``'s view and LD_LIBRARY_PATH; ``env``: CUDA_VISIBLE_DEVICES naming the leased
    GPUs by host index, and the library path.
    """

    ids: tuple[str, ...]
    nodes: tuple[tuple[str, str], ...]
    library_dirs: tuple[str, ...]
    env: dict[str, str]

    def summary(self) -> str:
        return f"gpus {','.join(self.ids)} ({len(self.nodes)} device nodes bound)"


def _driver_library_dirs() -> list[str]:
    """Folders outside /usr with libcuda or libnvidia-* (cluster nodes often keep the driver in /opt or /usr/local)."""
    found: list[str] = []
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    try:
        listing = subprocess.run([ldconfig, "-p"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        listing = ""
    paths = [line.rsplit("=>", 1)[-1].strip() for line in listing.splitlines() if "=>" in line
             and ("libcuda." in line or "libnvidia-" in line)]
    paths += [str(Path(d) / "x") for d in os.environ.get("LD_LIBRARY_PATH", "").split(":") if d]
    for path in paths:
        folder = str(Path(path).parent)
        if folder.startswith("/usr/") or not Path(folder).is_dir() or folder in found:
            continue
        found.append(folder)
    return found


def passthrough(lease: GpuLease) -> Passthrough:
    """The binds and environment that give a bwrap or process worker the GPUs of ``lease``."""
    names = [f"nvidia{gpu}" for gpu in lease.ids if gpu.isdigit()] + list(CONTROL_NODES)
    nodes = tuple((str(DEV / n), f"/dev/{n}") for n in names if (DEV / n).exists())
    libs = tuple(_driver_library_dirs())
    # host indices, in nvidia-smi's (PCI bus) order: CUDA's own default order is fastest first
    env = {"CUDA_VISIBLE_DEVICES": ",".join(lease.ids), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    if libs:
        env["LD_LIBRARY_PATH"] = ":".join(libs)
    return Passthrough(tuple(lease.ids), nodes, libs, env)
