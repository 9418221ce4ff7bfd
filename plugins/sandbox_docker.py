"""The ``docker`` sandbox: one locked-down container per worker, driven through the Docker SDK.

Every container runs with no network, memory = memory+swap limit, a pids limit, a CPU quota (and
matching thread counts), a read-only root with bounded tmpfs for /tmp and /scratch, all capabilities
dropped, ``no-new-privileges``, an unprivileged user and the submission mounted read-only.  Nothing of
the grader, the exercises or the references is mounted.  GPUs are requested with device requests
when a job asks for them and the host has them, after a lease (:mod:`grader.sandbox.gpus`) so parallel jobs
wait rather than oversubscribe.

Two kinds of image work:

* a real image (``grader image build``, with Python and torch inside; label ``grader.python``);
* a registry-free skeleton (``grader image skeleton``; label ``grader.mount-host=1``) that mounts the
  host's /usr and interpreter read-only, for machines that cannot pull anything.

Containers carry ``grader.*`` labels; leftovers of a crashed grader are swept on the next start and
after every job.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any, cast

import click

from grader import hookimpl
from grader.sandbox import (
    JOB_FILES,
    ExitInfo,
    Isolation,
    Limits,
    SandboxBase,
    Worker,
    WorkerSpec,
    python_roots,
    secrets_under,
    worker_env,
)
from grader.sandbox.gpus import GpuLease, NoGPU, acquire

IMAGE_ENV = "GRADER_DOCKER_IMAGE"
DEFAULT_IMAGE = "grader-worker:latest"
SUBMISSION = "/submission"
SCRATCH = "/scratch"
WORKER = "/opt/grader-worker"
LABEL = "grader.sandbox.worker"
STALE_AFTER_S = 6 * 3600


def image_name() -> str:
    return os.environ.get(IMAGE_ENV, DEFAULT_IMAGE)


def _client() -> Any:
    import docker

    return docker.from_env(timeout=30)


def _unix_engine_problem() -> str:
    """Why a unix-socket engine cannot be reached, checked with a socket we close ourselves.

    (The SDK leaks its socket when a unix connection is refused.)  Other transports return "".
    """
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        return ""
    path = host.removeprefix("unix://")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(5)
        try:
            probe.connect(path)
        except OSError as exc:
            return f"no Docker engine at {host} ({exc.strerror or exc}); set DOCKER_HOST or start dockerd"
    return ""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(client: Any, job_id: str | None = None) -> int:
    """Remove containers of ``job_id``, or (without one) those whose grader died or that are stale."""
    filters = {"label": f"{LABEL}.job={job_id}" if job_id else LABEL}
    removed = 0
    for container in client.containers.list(all=True, filters=filters):
        labels = container.labels or {}
        owner = int(labels.get(f"{LABEL}.pid", "0") or 0)
        started = float(labels.get(f"{LABEL}.created", "0") or 0)
        if job_id or not _pid_alive(owner) or time.time() - started > STALE_AFTER_S:
            with contextlib.suppress(Exception):
                container.remove(force=True)
                removed += 1
    return removed


class _SocketWriter:
    """stdin of the container, written through the attach socket."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)


def _demux(sock: socket.socket, out_fd: int, err_fd: int) -> None:
    """Split Docker's multiplexed attach stream (8-byte headers) into two pipes."""
    buf = b""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
            while len(buf) >= 8:
                kind, size = buf[0], int.from_bytes(buf[4:8], "big")
                if len(buf) < 8 + size:
                    break
                payload, buf = buf[8 : 8 + size], buf[8 + size :]
                os.write(out_fd if kind == 1 else err_fd, payload) if payload else None
    except OSError:
        pass
    finally:
        for fd in (out_fd, err_fd):
            with contextlib.suppress(OSError):
                os.close(fd)


class DockerWorker:
    """A worker in a container; :meth:`kill` stops it through the API and removes it."""

    def __init__(self, container: Any, sock: Any, isolation: Isolation, lease: GpuLease | None) -> None:
        self.container = container
        self.isolation = isolation
        self.submission_path = SUBMISSION
        self._lease = lease
        raw = sock._sock if hasattr(sock, "_sock") else sock
        r_out, w_out = os.pipe()
        r_err, w_err = os.pipe()
        self.stdin = _SocketWriter(raw)
        self.stdout = os.fdopen(r_out, "rb", buffering=0)
        self.stderr = os.fdopen(r_err, "rb", buffering=0)
        self._sock = raw
        self._attach = sock  # the SocketIO wrapper holds a reference: the socket closes with both
        self._demuxer = threading.Thread(target=_demux, args=(raw, w_out, w_err), daemon=True)
        self._demuxer.start()
        self._state: dict[str, Any] | None = None

    def _inspect(self) -> dict[str, Any]:
        with contextlib.suppress(Exception):
            self.container.reload()
            return dict(self.container.attrs.get("State", {}))
        return {}

    def kill(self) -> None:
        if self._state is None:
            with contextlib.suppress(Exception):
                self.container.kill()
            with contextlib.suppress(Exception):
                self.container.wait(timeout=20)
            self._state = self._inspect()
            with contextlib.suppress(Exception):
                self.container.remove(force=True)
            for closable in (self._attach, self._sock):
                with contextlib.suppress(OSError):
                    closable.close()
            self._demuxer.join(timeout=5)
            for stream in (self.stdout, self.stderr):
                with contextlib.suppress(OSError):
                    stream.close()
            if self._lease:
                self._lease.release()
            with contextlib.suppress(Exception):
                self.container.client.close()

    def wait(self, timeout: float | None = None) -> int | None:
        try:
            status = self.container.wait(timeout=timeout if timeout is not None else 10**6)
        except Exception:
            return None
        self._state = self._state or self._inspect()
        return int(status.get("StatusCode", -1))

    def exit_info(self) -> ExitInfo:
        state = self._state or self._inspect()
        code = state.get("ExitCode")
        if code is not None and code >= 128:
            code = -(code - 128)  # 137 = killed by SIGKILL, as subprocess reports it
        return ExitInfo(code, oom_killed=bool(state.get("OOMKilled")))


class DockerSandbox(SandboxBase):
    name = "docker"
    priority = 20
    isolates_filesystem = True
    supports_gpu = True

    def __init__(self) -> None:
        self._swept = False

    def available(self) -> tuple[bool, str]:
        problem = _unix_engine_problem()
        if problem:
            return False, problem
        try:
            client = _client()
        except Exception as exc:  # any failure means "not here"
            return False, f"no Docker engine reachable ({type(exc).__name__}); set DOCKER_HOST or start dockerd"
        with contextlib.closing(client):
            try:
                client.ping()
            except Exception as exc:
                return False, f"no Docker engine reachable ({type(exc).__name__}); set DOCKER_HOST or start dockerd"
            try:
                image = client.images.get(image_name())
            except Exception:
                return False, f"image {image_name()} not found: run `grader image build` or `grader image skeleton`"
            kind = "skeleton, host /usr mounted" if _mounts_host(image) else "self-contained"
            return True, f"engine reachable, image {image_name()} ({kind})"

    def cleanup(self, job_id: str) -> int:
        """Remove every container of ``job_id`` (called after each job, whatever happened)."""
        if _unix_engine_problem():
            return 0
        try:
            with contextlib.closing(_client()) as client:
                return sweep(client, job_id)
        except Exception:  # no engine, nothing to remove
            return 0

    def start(self, spec: WorkerSpec) -> Worker:
        import docker

        client = _client()
        if not self._swept:
            sweep(client)
            self._swept = True
        image = client.images.get(image_name())
        host = _mounts_host(image)
        python = spec.python if host else image.labels.get("grader.python", "python3")
        env = worker_env(spec, home="/tmp")
        lease, requests = _gpu_request(spec, env)
        mounts = _mounts(spec, host)
        limits = spec.limits
        mb = limits.memory_mb  # and no swap
        container = client.containers.create(
            image.id,
            command=[python, "-I", "-B", f"{WORKER}/_grader_worker.py"],
            stdin_open=True,
            tty=False,
            network_mode="none",
            mem_limit=f"{mb}m",
            memswap_limit=f"{mb}m",
            pids_limit=limits.max_processes,
            nano_cpus=int(limits.threads * 1e9),
            read_only=True,
            tmpfs={"/tmp": f"size={limits.tmp_mb}m,mode=1777", SCRATCH: f"size={limits.tmp_mb}m,mode=1777"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            user="65534:65534",
            mounts=mounts,
            environment=env,
            working_dir=SCRATCH,
            init=not host,  # docker-init cannot be mounted over the skeleton's /sbin link
            ulimits=[docker.types.Ulimit(name=name, soft=value, hard=value) for name, value in _ulimits(limits)],
            device_requests=requests or None,
            labels={LABEL: "1", f"{LABEL}.job": spec.job_id, f"{LABEL}.pid": str(os.getpid()),
                    f"{LABEL}.created": str(time.time())},
        )
        sock = container.attach_socket(params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        container.start()
        # its stdin is a socket writer, not a file: a Worker by what it does (write, flush, close)
        return cast(Worker, DockerWorker(container, sock, self._isolation(limits, lease, host), lease))

    def _isolation(self, limits: Limits, lease: GpuLease | None, host: bool) -> Isolation:
        return Isolation(
            backend=self.name, filesystem=True, network=True, pid_namespace=True, user="uid 65534 (nobody)",
            limits=(f"memory {limits.memory_mb} MiB (no swap)", f"pids {limits.max_processes}",
                    f"cpus {limits.threads}", "read-only root", f"/tmp and /scratch: tmpfs of {limits.tmp_mb} MiB",
                    "cap-drop ALL", "no-new-privileges") + ((f"gpus {','.join(lease.ids)}",) if lease else ()),
            notes=f"image {image_name()}" + (" (host /usr and interpreter mounted read-only)" if host else ""),
        )


def _ulimits(limits: Limits) -> list[tuple[str, int]]:
    return [("nofile", limits.open_files), ("fsize", limits.file_size_mb << 20), ("cpu", limits.cpu_seconds),
            ("core", 0)]


def _gpu_request(spec: WorkerSpec, env: dict[str, str]) -> tuple[GpuLease | None, list[Any]]:
    """For a ``cuda`` job, a lease on one GPU and docker's request for it (``env`` numbers it from 0)."""
    if spec.device != "cuda":
        return None, []
    import docker

    try:
        lease = acquire(1)
    except NoGPU as exc:
        raise RuntimeError(str(exc)) from None
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in range(len(lease.ids)))
    return lease, [docker.types.DeviceRequest(device_ids=lease.ids, capabilities=[["gpu"]])]


def _mounts_host(image: Any) -> bool:
    return (image.labels or {}).get("grader.mount-host") == "1"


def _mounts(spec: WorkerSpec, host: bool) -> list[Any]:
    from docker.types import Mount

    mounts = [
        Mount(SUBMISSION, str(spec.submission_dir), type="bind", read_only=True),
        Mount(WORKER, str(spec.worker_dir), type="bind", read_only=True),
    ]
    if spec.files_dir is not None:
        mounts += [Mount(JOB_FILES, str(spec.files_dir), type="bind", read_only=True),
                   Mount(f"{JOB_FILES}/shared", str(spec.files_dir / "shared"), type="bind", read_only=False)]
    extra = [Path(p).resolve() for p in spec.readonly_paths]
    bound: list[Path] = []
    if host:
        bound = [Path("/usr"), *python_roots()]
    for path in [*bound, *extra]:
        mounts.append(Mount(str(path), str(path), type="bind", read_only=True))
    for secret in secrets_under([*bound, *extra], spec.secret_paths):
        mounts.append(Mount(str(secret), None, type="tmpfs", tmpfs_size=1 << 20))
    return mounts


@hookimpl
def grader_register_sandboxes(registry):  # type: ignore[no-untyped-def]
    registry.add(DockerSandbox())


# -- `grader image ...`: this backend's own commands --------------------------------------------------------

@click.group("image")
def image() -> None:
    """Build worker images for the docker sandbox.

    \b
    grader image build           a real image: Python, CPU torch and the course libraries (needs a registry)
    grader image build --cuda    the GPU image, for hosts with the NVIDIA container toolkit
    grader image skeleton        no registry needed: an empty root that mounts the host's /usr and Python
    Select one with GRADER_DOCKER_IMAGE (default grader-worker:latest).
    """


@image.command("build")
@click.option("--cuda", is_flag=True, help="Build the CUDA variant (tag grader-worker:cuda).")
@click.option("--tag", help="Image tag (default grader-worker:latest, or grader-worker:cuda).")
def image_build(cuda: bool, tag: str | None) -> None:
    """Build the worker image from the packaged Dockerfile."""
    from grader.sandbox.images import build_image

    tag = tag or ("grader-worker:cuda" if cuda else "grader-worker:latest")
    click.echo(f"building {tag} (this pulls a base image and installs torch: minutes)...")
    click.echo(f"built {tag}: {build_image(_client(), tag, cuda=cuda)}")


@image.command("skeleton")
@click.option("--tag", default="grader-worker:latest", show_default=True)
def image_skeleton(tag: str) -> None:
    """Import a registry-free skeleton image that runs the host's own Python read-only."""
    from grader.sandbox.images import build_skeleton

    click.echo(f"imported {tag}: {build_skeleton(_client(), tag)}")


@hookimpl
def grader_register_commands(registry):  # type: ignore[no-untyped-def]
    registry.add(image)
