"""grader.fs.Lock, the one file lock (batch folders, the server's gradebook, asset builds, GPU leases)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from grader.batch.jobs import BatchLock
from grader.errors import GraderError
from grader.fs import Lock

HOLD = ("import sys, time\nfrom pathlib import Path\nfrom grader.fs import Lock\n"
        "lock = Lock(Path(sys.argv[1]))\nassert lock.acquire(wait=False)\nprint('held', flush=True)\n"
        "time.sleep(60)\n")


def _holder(path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline() == "held\n"
    return proc


def test_lock_has_one_holder_across_processes_and_dies_with_it(tmp_path):
    path = tmp_path / "deep" / "x.lock"  # its folder is made on first use
    holder = _holder(path)
    try:
        assert not Lock(path).acquire(wait=False), "a second process must not get a held lock"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        holder.stdout.close()
    deadline = time.monotonic() + 10
    mine = Lock(path)
    while not mine.acquire(wait=False):  # the kernel drops a killed holder's lock: nothing is left stale
        assert time.monotonic() < deadline, "the lock outlived its holder"
        time.sleep(0.05)
    mine.release()
    with Lock(path):
        assert not Lock(path).acquire(wait=False), "held by the with-block, in this very process too"
    again = Lock(path)
    assert again.acquire(wait=False)
    again.release()


def test_batch_lock_refuses_a_second_writer_naming_the_folder(tmp_path):
    with BatchLock(tmp_path), pytest.raises(GraderError, match=f"writing to {tmp_path}"):
        BatchLock(tmp_path).__enter__()
    with BatchLock(tmp_path):  # released on exit
        pass


def test_files_under_skips_folders_below_the_root_never_above_it(tmp_path):
    from grader.fs import PYCACHE, SKIP_DIRS, files_under

    root = tmp_path / "venv" / "course"  # a course kept inside a folder named like a skipped one
    for name in ("b.py", "a/x.py", "a/__pycache__/x.pyc", ".git/config", "notes.txt"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")
    names = lambda found: [p.relative_to(root).as_posix() for p in found]  # noqa: E731
    assert names(files_under(root)) == ["a/x.py", "b.py", "notes.txt"]
    assert names(files_under(root, PYCACHE)) == [".git/config", "a/x.py", "b.py", "notes.txt"]
    assert names(files_under(root, SKIP_DIRS, {".py"})) == ["a/x.py", "b.py"]
