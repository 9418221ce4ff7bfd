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
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from grader import hookimpl
from grader.sandbox import (
    JOB_FILES,
    Isolation,
    ProcessWorker,
    SandboxBase,
    Worker,
    WorkerSpec,
    gpu_lease,
    memory_limit_note,
    python_roots,
    sandbox_uid,
    secrets_under,
    worker_env,
)
from grader.sandbox.gpus import Passthrough
from grader.sandbox.templates import (
    HOST,
    TemplateUnavailable,
    WorkerTemplate,
    install_template,
    start_template,
    template_env,
    template_key,
)

SUBMISSION = "/submission"
SCRATCH = "/scratch"
WORKER = "/opt/grader-worker"


def _system_binds() -> list[list[Any]]:
    ops: list[list[Any]] = [["ro-bind", "/usr", "/usr"]]
    for top in ("/bin", "/lib", "/lib64", "/sbin"):
        if os.path.islink(top):
            ops.append(["symlink", os.readlink(top), top])
        elif os.path.isdir(top):
            ops.append(["ro-bind", top, top])
    for etc in ("/etc/ld.so.cache", "/etc/alternatives", "/etc/ssl/certs", "/etc/localtime"):
        ops.append(["ro-bind-try", etc, etc])
    return ops


def render(ops: list[list[Any]]) -> list[str]:
    """bwrap's flags for a filesystem plan (the steps a warm template carries out itself: grader.sandbox.template)."""
    args: list[str] = []
    for op in ops:
        kind = op[0]
        if kind == "tmpfs":
            args += (["--size", str(op[2])] if op[2] else []) + (["--perms", f"{op[3]:04o}"] if op[3] else [])
            args += ["--tmpfs", op[1]]
        elif kind == "dir":
            args += ["--perms", f"{op[2]:04o}", "--dir", op[1]]
        else:
            args += [f"--{kind}", str(op[1]), str(op[2])]
    return args


def _parent_dirs(dests: list[str]) -> list[list[Any]]:
    """Create the parents of every bind target world-traversable (bwrap makes them 0700 as root)."""
    parents: list[str] = []
    for dest in dests:
        for parent in reversed(Path(dest).parents):
            p = str(parent)
            if p not in ("/", "/tmp", SCRATCH) and p not in parents and not p.startswith("/usr"):
                parents.append(p)
    return [["dir", p, 0o755] for p in sorted(parents, key=lambda x: x.count("/"))]


@functools.cache
def _probe() -> tuple[bool, str]:
    bwrap = shutil.which("bwrap")
    if not bwrap:
        return False, "bubblewrap is not installed (apt-get install bubblewrap)"
    argv = [bwrap, *_base_flags(), *render(_system_binds()), "--", "/bin/true"]
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
            isolation = _isolation(self.name, uid, spec, gpu)
            return ProcessWorker(argv(spec, uid, root, gpu), {"PATH": "/usr/bin:/bin"}, spec.scratch_dir, spec.limits,
                                 SUBMISSION, isolation, sweep_uid=uid if root else None, lease=lease)
        except BaseException:
            if lease is not None:
                lease.release()
            raise

    # -- warm templates (grader.sandbox.template): workers forked from a python that has imported torch ----------
    def template(self, spec: WorkerSpec, preload: tuple[str, ...]) -> WorkerTemplate | None:
        """A template forking workers like ``spec``'s (its environment, interpreter and limits), or None where
        this backend cannot: not run as root (the template needs the capabilities bwrap itself uses), a GPU job."""
        if os.geteuid() != 0 or spec.device != "cpu" or not self.available()[0]:
            return None
        home = Path(tempfile.mkdtemp(prefix="grader-template-"))
        install_template(home)
        env = template_env(spec)
        args = [shutil.which("bwrap") or "bwrap", *_base_flags(), *render(_system_binds())]
        # /tmp before the binds, as for a cold worker: an interpreter or venv living under /tmp must stay visible
        args += ["--tmpfs", "/tmp", "--tmpfs", "/newroot"]
        roots = [str(r) for r in python_roots()]
        args += render(_parent_dirs([*roots, WORKER]))
        for r in roots:
            args += ["--ro-bind", r, r]
        args += ["--ro-bind", "/", HOST, "--ro-bind", str(home), WORKER]
        for cap in ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_NET_ADMIN", "CAP_KILL"):
            args += ["--cap-add", cap]
        for key, value in env.items():
            args += ["--setenv", key, value]
        args += ["--", spec.python, "-I", "-B", f"{WORKER}/_grader_template.py", ",".join(preload)]
        return start_template(f"{self.name}:{template_key(spec, preload)}", args, env, home)

    def start_from_template(self, template: WorkerTemplate, spec: WorkerSpec) -> Worker:
        """A worker for ``spec`` forked from ``template``: the filesystem :func:`plan` of a cold one, its
        environment, uid and limits (TemplateUnavailable where it cannot: the job then starts one cold)."""
        if spec.device != "cpu":
            raise TemplateUnavailable("a GPU job's worker starts cold")
        if template.env != template_env(spec):
            raise TemplateUnavailable("the template was started for another environment")
        uid = sandbox_uid(spec.job_id)
        ops = [[op[0], os.path.realpath(op[1]), op[2]] if op[0].endswith(("bind", "bind-try")) else op
               for op in plan(spec)]
        limits = spec.limits
        job = {
            "plan": ops, "uid": uid, "env": {**worker_env(spec, home="/tmp"), "PWD": SCRATCH}, "cwd": SCRATCH,
            "argv0": f"{WORKER}/_grader_worker.py", "threads": limits.threads,
            "memory_bytes": limits.memory_mb * 1024 * 1024,
            "cpu_seconds": limits.cpu_seconds, "file_size_bytes": limits.file_size_mb * 1024 * 1024,
            "max_processes": limits.max_processes, "open_files": limits.open_files,
        }
        isolation = replace(_isolation(self.name, uid, spec, None),
                            notes=_NOTES + "; forked from a warm template (torch imported once)")
        return template.fork_worker(job, uid, SUBMISSION, isolation)


_NOTES = "read-only /usr, interpreter and site-packages; grader, exercises and reference masked"


def _isolation(backend: str, uid: int, spec: WorkerSpec, gpu: Passthrough | None) -> Isolation:
    return Isolation(
        backend=backend,
        filesystem=True,
        network=True,
        pid_namespace=True,
        user=f"uid {uid}",
        limits=(*memory_limit_note(gpu), "rlimit-cpu", "rlimit-nproc", "rlimit-fsize",
                f"/tmp and /scratch: tmpfs of {spec.limits.tmp_mb} MiB each"),
        notes=_NOTES,
    )


def plan(spec: WorkerSpec, gpu: Passthrough | None = None) -> list[list[Any]]:
    """What a worker's filesystem holds, step by step (bwrap's flags, or a warm template's own mounts)."""
    roots = python_roots()
    extra = [Path(p).resolve() for p in spec.readonly_paths]
    libs = [Path(d) for d in gpu.library_dirs] if gpu else []
    ops = _system_binds()
    for node, inside in gpu.nodes if gpu else ():  # the leased GPUs and the control nodes, no other host device
        ops.append(["dev-bind", node, inside])
    # /tmp and the scratch folder are bounded tmpfs (a submission cannot fill the host's disk),
    # mounted before the binds: an interpreter or venv living under /tmp must stay visible
    size = spec.limits.tmp_mb * 1024 * 1024
    ops += [["tmpfs", "/tmp", size, 0o1777], ["tmpfs", SCRATCH, size, 0o1777]]
    ops += _parent_dirs([str(p) for p in [*roots, *extra, *libs]] + [SUBMISSION, WORKER])
    ops += [["ro-bind", str(r), str(r)] for r in [*roots, *extra, *libs]]
    ops += [["tmpfs", str(secret), None, None] for secret in secrets_under([*roots, Path("/usr"), *extra],
                                                                             spec.secret_paths)]
    ops.append(["ro-bind", str(spec.submission_dir), SUBMISSION])
    if spec.files_dir is not None:
        ops += [["ro-bind", str(spec.files_dir), JOB_FILES],
                ["bind", str(spec.files_dir / "shared"), f"{JOB_FILES}/shared"]]
    ops.append(["ro-bind", str(spec.worker_dir), WORKER])
    return ops


def argv(spec: WorkerSpec, uid: int, root: bool, gpu: Passthrough | None = None,
         command: list[str] | None = None) -> list[str]:
    """The bwrap command line of a worker (``command`` instead of the worker itself: for tests)."""
    args = [shutil.which("bwrap") or "bwrap", *_base_flags(), *render(plan(spec, gpu)), "--chdir", SCRATCH]
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
