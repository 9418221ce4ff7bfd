"""A warm worker template: forks a fresh sandboxed worker per job from a process that has imported torch once.

It runs *inside* a bubblewrap sandbox of its own (``python -I -B /opt/grader-worker/_grader_template.py
torch,numpy``, the second argument naming what to preload), with
nothing but the standard library, the worker's two files and the modules it preloads. It never runs student
code and never sees a verdict. It holds the capabilities to build a sandbox (as root: mounts, a uid change) and
the host's files read-only at ``/host``; for each job the grader sends, over the control socket on fd 3, the
job's filesystem plan (what bubblewrap would mount for a cold worker), its environment, uid and limits, and
its worker's three pipe ends (stdin, stdout, stderr) and a status socket. Then, per job:

- ``A`` (a fork of the template) unshares the mount, pid, network, ipc and uts namespaces, builds the job's
  root on a fresh tmpfs from the plan (fresh ``/tmp`` and ``/scratch`` of the job's size, bubblewrap's ``/dev``),
  pivots into it and detaches the old root, so ``/host`` and the template's own files are gone; forks ``B``;
  exits.
- ``B`` is pid 1 of the job's pid namespace (as bubblewrap's own init is for a cold worker): it mounts that
  namespace's ``/proc``, brings up the loopback, forks ``C``, reports ``{"ok": true}`` on the status socket, reaps
  what ends, and when ``C`` ends writes its exit code and exits, which kills whatever the job left running; it
  exits as well when the grader's end of the status socket closes (a runner killed on a timeout).
- ``C`` is the worker: a new session, the job's uid and groups (every capability gone), ``no_new_privs``, the
  job's rlimits, environment and working folder, only the three pipes open; then it runs the job's
  ``/opt/grader-worker/_grader_worker.py`` as ``__main__`` with the template's original ``sys.path``, as a cold
  worker does (a rank started with multiprocessing's "spawn" re-runs ``__main__`` from its file, which must be
  the worker's, present in the job's root), and gives the job fresh multiprocessing state (authkey, folder).

A setup step that fails is reported on the status pipe (``{"ok": false, "error": ...}``) and the grader starts a
cold worker instead. Protocol: one SOCK_SEQPACKET message per job, a JSON object with the four descriptors
attached (SCM_RIGHTS); the template answers nothing on the socket.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import json
import os
import resource
import runpy
import select
import signal
import socket
import struct
import sys
from typing import Any

CONTROL_FD = 3
HOST = "/host"
NEWROOT = "/newroot"

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
SYS_PIVOT_ROOT = 155  # x86_64 and (as 41) aarch64: see _pivot_root
PR_SET_NO_NEW_PRIVS, PR_SET_PDEATHSIG = 38, 1
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP, IFF_RUNNING = 0x8913, 0x8914, 0x1, 0x40

_libc = ctypes.CDLL(None, use_errno=True)
_SYS_PATH = list(sys.path)  # as python started: a job's worker gets this back, as a cold one has it


class SetupError(Exception):
    """A step of building the job's sandbox failed: the grader starts a cold worker instead."""


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise SetupError(f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source and source.encode(), target.encode(), fstype and fstype.encode(), flags,
                       data and data.encode()), f"mount {target}")


def _pivot_root(new: str, old: str) -> None:
    number = 41 if os.uname().machine == "aarch64" else SYS_PIVOT_ROOT
    _check(_libc.syscall(number, new.encode(), old.encode()), "pivot_root")


def _make_target(path: str, like: str | None) -> None:
    """Create a bind target like its source (a folder or an empty file), and its parents."""
    if os.path.lexists(path):
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if like is not None and not os.path.isdir(like):
        with open(path, "w"):
            pass
    else:
        os.mkdir(path)


def _bind(source: str, target: str, readonly: bool, optional: bool = False) -> None:
    src = HOST + source
    if not os.path.lexists(src):
        if optional:
            return
        raise SetupError(f"{source} does not exist")
    dest = NEWROOT + target
    _make_target(dest, src)
    _mount(src, dest, None, MS_BIND | MS_REC)
    # the template sees the host read-only: a writable bind (the job's shared folder) is made writable again
    _mount(None, dest, None, MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | (MS_RDONLY if readonly else 0))


def _apply(op: list[Any]) -> None:
    """One step of the plan (what bubblewrap's flag of the same name does)."""
    kind = op[0]
    if kind in ("ro-bind", "ro-bind-try", "bind"):
        _bind(op[1], op[2], readonly=kind != "bind", optional=kind == "ro-bind-try")
    elif kind == "dev-bind":
        raise SetupError("device nodes are not handed to template workers")
    elif kind == "tmpfs":  # ["tmpfs", path, size bytes or None, mode or None]
        dest = NEWROOT + op[1]
        _make_target(dest, None)
        options = ",".join(x for x in (f"size={op[2]}" if op[2] else "", f"mode={op[3]:o}" if op[3] else "") if x)
        _mount("tmpfs", dest, "tmpfs", MS_NOSUID | MS_NODEV, options or None)
    elif kind == "dir":  # ["dir", path, mode]
        dest = NEWROOT + op[1]
        os.makedirs(dest, exist_ok=True)
        os.chmod(dest, op[2])
    elif kind == "symlink":  # ["symlink", target, path]
        os.symlink(op[1], NEWROOT + op[2])
    else:
        raise SetupError(f"unknown plan step {kind!r}")


def _build_root(plan: list[list[Any]]) -> None:
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    for op in plan:
        _apply(op)
    # the template's /dev: bubblewrap's minimal one, as a cold worker has it (root's: no job can write into it)
    _bind_dev()
    os.makedirs(NEWROOT + "/proc", exist_ok=True)
    os.makedirs(NEWROOT + "/.old", exist_ok=True)
    os.chdir(NEWROOT)
    _pivot_root(".", ".old")
    os.chdir("/")
    _check(_libc.umount2(b"/.old", MNT_DETACH), "detach the old root")
    os.rmdir("/.old")


def _bind_dev() -> None:
    os.makedirs(NEWROOT + "/dev", exist_ok=True)
    _mount("/dev", NEWROOT + "/dev", None, MS_BIND | MS_REC)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        import fcntl

        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0)))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP | IFF_RUNNING))


def _limits(job: dict[str, Any]) -> None:
    mem = int(job["memory_bytes"])
    settings = [
        (resource.RLIMIT_AS, mem),
        (resource.RLIMIT_CPU, int(job["cpu_seconds"])),
        (resource.RLIMIT_FSIZE, int(job["file_size_bytes"])),
        (resource.RLIMIT_NPROC, int(job["max_processes"])),
        (resource.RLIMIT_NOFILE, int(job["open_files"])),
        (resource.RLIMIT_CORE, 0),
    ]
    for which, value in settings:
        resource.setrlimit(which, (value, value))


def _status(fd: int, message: dict[str, Any]) -> None:
    with contextlib.suppress(OSError):
        os.write(fd, (json.dumps(message) + "\n").encode())


def _fresh_multiprocessing(cwd: str) -> None:
    """What multiprocessing fixed when the template imported it, made the job's own: the folder a "spawn"
    child resolves relative paths from, and the authkey its processes share (never another job's)."""
    process = sys.modules.get("multiprocessing.process")
    if process is not None:
        process.ORIGINAL_DIR = cwd  # type: ignore[attr-defined]
        process.current_process().authkey = os.urandom(32)


def _worker(job: dict[str, Any], fds: list[int]) -> None:
    """C: become the job's worker (never returns)."""
    code = 70
    try:
        os.setsid()
        uid = int(job["uid"])
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)  # from root to another uid: every capability is dropped
        _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        os.closerange(3, max(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
        _limits(job)
        os.environ.clear()
        os.environ.update(job["env"])
        os.chdir(job["cwd"])
        torch = sys.modules.get("torch")
        if torch is not None:
            torch.set_num_threads(int(job["threads"]))
        _fresh_multiprocessing(job["cwd"])
        sys.path[:] = _SYS_PATH
        sys.argv = [job["argv0"]]
        sys.modules.pop("_grader_worker", None)  # its imports stay warm; the job runs its own copy as __main__
        runpy.run_path(job["argv0"], run_name="__main__")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        code = 1
    finally:
        os._exit(code)


def _init(job: dict[str, Any], fds: list[int]) -> None:
    """B: pid 1 of the job (never returns). Its status socket is also the job's lifeline: when the grader's end
    closes (the runner ended or was killed), pid 1 exits and the kernel kills everything of the job."""
    status = fds[3]
    try:
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV)
        _loopback_up()
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a child ended: the select below wakes
        worker = os.fork()
    except Exception as exc:
        _status(status, {"ok": False, "error": f"{exc}"})
        os._exit(1)
    if worker == 0:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in (status, wake_r, wake_w):
            os.close(fd)
        _worker(job, fds)
    for fd in fds[:3]:
        os.close(fd)
    _status(status, {"ok": True})
    while True:
        readable, _, _ = select.select([status, wake_r], [], [])
        if status in readable and not os.read(status, 4096):
            os._exit(0)  # nobody reads this job any more
        if wake_r in readable:
            os.read(wake_r, 4096)
        while True:
            try:
                pid, code = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(0)
            if pid == 0:
                break
            if pid == worker:
                _status(status, {"returncode": os.waitstatus_to_exitcode(code)})
                os._exit(0)  # pid 1 ends: the kernel kills everything else of the job


def _job(job: dict[str, Any], fds: list[int]) -> None:
    """A: build the job's sandbox, start its pid 1 (never returns)."""
    try:
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.close(CONTROL_FD)
        _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
        _build_root(job["plan"])
        init = os.fork()
    except Exception as exc:
        _status(fds[3], {"ok": False, "error": f"{exc}"})
        os._exit(1)
    if init == 0:
        _init(job, fds)
    os._exit(0)


def _receive(control: socket.socket) -> tuple[dict[str, Any], list[int]] | None:
    fd_size = struct.calcsize("i")
    try:
        data, ancdata, _flags, _addr = control.recvmsg(1 << 20, socket.CMSG_LEN(4 * fd_size))
    except OSError:
        return None
    if not data:
        return None
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds += list(struct.unpack(f"{len(payload) // fd_size}i", payload[: len(payload) - len(payload) % fd_size]))
    try:
        job = json.loads(data)
    except ValueError:
        job = None
    if not isinstance(job, dict) or len(fds) != 4:
        for fd in fds:
            os.close(fd)
        return {}, []
    return job, fds


def serve() -> None:
    """Preload, then fork a sandboxed worker for each job the grader sends, until the socket closes."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    for name in filter(None, (sys.argv[1] if len(sys.argv) > 1 else "").split(",")):  # what to preload
        try:
            importlib.import_module(name)
        except Exception:
            continue
    importlib.import_module("_grader_worker")
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the A processes are reaped by the kernel
    control = socket.socket(fileno=CONTROL_FD)
    while True:
        received = _receive(control)
        if received is None:
            os._exit(0)
        job, fds = received
        if not fds:
            continue
        if os.fork() == 0:
            _job(job, fds)
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    serve()
