"""The ``bwrap`` sandbox (bubblewrap): the default wherever bubblewrap is installed.

The worker sees a fresh root holding only /usr, the interpreter, its site-packages, the submission
(read-only), a scratch directory and a bounded /tmp.  Network, pid, ipc and uts namespaces are new;
the grader's own package, exercises and reference are masked even where they sit under a bound
path.  Run as root, bwrap binds the paths and ``setpriv`` drops to a uid of the job's own inside
(as root, a user namespace alone left root-owned files readable: see SANDBOX_NOTES).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

from grader import hookimpl
from grader.sandbox import (
    JOB_FILES,
    Isolation,
    ProcessWorker,
    SandboxBase,
    WorkerSpec,
    gpu_lease,
    memory_limit_note,
    python_roots,
    sandbox_uid,
    secrets_under,
    worker_env,
)
from grader.sandbox.gpus import Passthrough

SUBMISSION = "/submission"
SCRATCH = "/scratch"
WORKER = "/opt/grader-worker"


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    for etc in ("/etc/ld.so.cache", "/etc/alternatives", "/etc/ssl/certs", "/etc/localtime"):
        args += ["--ro-bind-try", etc, etc]
    return args


def _parent_dirs(dests: list[str]) -> list[str]:
    """Create the parents of every bind target world-traversable (bwrap makes them 0700 as root)."""
    parents: list[str] = []
    for dest in dests:
        for parent in reversed(Path(dest).parents):
            p = str(parent)
            if p not in ("/", "/tmp", SCRATCH) and p not in parents and not p.startswith("/usr"):
                parents.append(p)
    args = []
    for p in sorted(parents, key=lambda x: x.count("/")):
        args += ["--perms", "0755", "--dir", p]
    return args


@functools.cache
def _probe() -> tuple[bool, str]:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "bubblewrap is not installed (apt-get install bubblewrap)"
    argv = [bwrap, *_base_flags(), *_system_binds(), "--", "/bin/true"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"bwrap failed to start: {exc}"
    if done.returncode != 0:
        return False, f"bwrap cannot create namespaces here: {done.stderr.decode(errors='replace').strip()}"
    return True, "bubblewrap works"


def _base_flags() -> list[str]:
    flags = ["--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid", "--unshare-net",
             "--unshare-uts", "--unshare-cgroup-try", "--clearenv", "--proc", "/proc", "--dev", "/dev"]
    if os.geteuid() != 0:
        flags.insert(0, "--unshare-user")
    return flags


class BwrapSandbox(SandboxBase):
    name = "bwrap"
    priority = 10
    isolates_filesystem = True

    def available(self) -> tuple[bool, str]:
        return _probe()

    supports_gpu = True  # leased GPUs' device nodes are bound in (grader.sandbox.gpus.passthrough)

    def start(self, spec: WorkerSpec) -> ProcessWorker:
        ok, why = self.available()
        if not ok:
            raise RuntimeError(why)
        root = os.geteuid() == 0
        uid = sandbox_uid(spec.job_id) if root else os.getuid()
        lease, gpu = gpu_lease(spec)
        try:
            isolation = Isolation(
                backend=self.name,
                filesystem=True,
                network=True,
                pid_namespace=True,
                user=f"uid {uid}",
                limits=(*memory_limit_note(gpu), "rlimit-cpu", "rlimit-nproc", "rlimit-fsize",
                        f"/tmp and /scratch: tmpfs of {spec.limits.tmp_mb} MiB each"),
                notes="read-only /usr, interpreter and site-packages; grader, exercises and reference masked",
            )
            return ProcessWorker(argv(spec, uid, root, gpu), {"PATH": "/usr/bin:/bin"}, spec.scratch_dir, spec.limits,
                                 SUBMISSION, isolation, sweep_uid=uid if root else None, lease=lease)
        except BaseException:
            if lease is not None:
                lease.release()
            raise


def argv(spec: WorkerSpec, uid: int, root: bool, gpu: Passthrough | None = None,
         command: list[str] | None = None) -> list[str]:
    """The bwrap command line of a worker (``command`` instead of the worker itself: for tests)."""
    roots = python_roots()
    extra = [Path(p).resolve() for p in spec.readonly_paths]
    libs = [Path(d) for d in gpu.library_dirs] if gpu else []
    args = [shutil.which("bwrap") or "bwrap", *_base_flags(), *_system_binds()]
    for node, inside in gpu.nodes if gpu else ():  # the leased GPUs and the control nodes, no other host device
        args += ["--dev-bind", node, inside]
    # /tmp and the scratch folder are bounded tmpfs (a submission cannot fill the host's disk),
    # mounted before the binds: an interpreter or venv living under /tmp must stay visible
    size = str(spec.limits.tmp_mb * 1024 * 1024)
    args += ["--size", size, "--perms", "1777", "--tmpfs", "/tmp"]
    args += ["--size", size, "--perms", "1777", "--tmpfs", SCRATCH]
    args += _parent_dirs([str(p) for p in [*roots, *extra, *libs]] + [SUBMISSION, WORKER])
    for r in [*roots, *extra, *libs]:
        args += ["--ro-bind", str(r), str(r)]
    for secret in secrets_under([*roots, Path("/usr"), *extra], spec.secret_paths):
        args += ["--tmpfs", str(secret)]
    args += ["--ro-bind", str(spec.submission_dir), SUBMISSION]
    if spec.files_dir is not None:
        args += ["--ro-bind", str(spec.files_dir), JOB_FILES,
                 "--bind", str(spec.files_dir / "shared"), f"{JOB_FILES}/shared"]
    args += ["--ro-bind", str(spec.worker_dir), WORKER, "--chdir", SCRATCH]
    env = worker_env(spec, home="/tmp")
    env.update(gpu.env if gpu else {})
    for key, value in env.items():
        args += ["--setenv", key, value]
    args.append("--")
    if root:
        args += ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                 "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all"]
    return args + (command or [spec.python, "-I", "-B", f"{WORKER}/_grader_worker.py"])


@hookimpl
def grader_register_sandboxes(registry):  # type: ignore[no-untyped-def]
    registry.add(BwrapSandbox())
