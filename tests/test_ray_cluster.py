"""`grader batch --executor ray` on a real two-node Ray cluster started on this machine.

A head and a second node (its own temp dir, one CPU each, the second with a resource of its own), both
real raylets started by `ray start`, never Ray's in-process test cluster: jobs must run on both nodes, and
a node killed with everything it started (raylet, workers, their runners and sandboxes) mid-batch must
lose nothing, its jobs run again on the node that is left.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from fixtures.class_roster import make_class  # tests/ is on sys.path under pytest
from test_ray import _grades, _ready, _unavailable

pytestmark = [pytest.mark.slow, pytest.mark.ray]
RAY_BIN = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")


@dataclass
class Cluster:
    address: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    temps: list[str] = field(default_factory=list)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        temp = tempfile.mkdtemp(prefix="gr-rc-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
        self.temps.append(temp)
        proc = subprocess.Popen([RAY_BIN, "start", "--block", "--node-ip-address=127.0.0.1", "--num-cpus=1",
                                 "--disable-usage-stats", f"--temp-dir={temp}", *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def nodes(self) -> int:
        done = subprocess.run([RAY_BIN, "status", f"--address={self.address}"], capture_output=True, text=True,
                              timeout=60)
        active = done.stdout.split("Active:", 1)[-1].split("Pending:", 1)[0]
        return len(re.findall(r"node_[0-9a-f]+", active))

    def wait_for(self, nodes: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not (_ready(RAY_BIN, self.address) and self.nodes() == nodes):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs[-1:]):
                _unavailable(f"a two-node Ray cluster did not come up on {self.address}")
            time.sleep(1)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=40)
            kill_tree(proc.pid)
        for temp in self.temps:
            shutil.rmtree(temp, ignore_errors=True)


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything under it (as a machine that loses power takes all of it)."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = []
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def grading_under(pid: int) -> bool:
    """Whether a grading (its trusted runner) is running somewhere under process ``pid``."""
    try:
        tree = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return False
    for proc in tree:
        with contextlib.suppress(psutil.Error):
            if any("grader.checks.warm" in part or "grader.checks.runner" in part for part in proc.cmdline()):
                return True
    return False


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    if importlib.util.find_spec("ray") is None or not RAY_BIN:
        _unavailable("Ray is not installed (pip install 'grader[ray]')")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    found = Cluster(f"127.0.0.1:{port}")
    try:
        found.start("--head", f"--port={port}", "--include-dashboard=false")
        found.wait_for(1)
        yield found
    finally:
        found.stop()


def second_node(cluster: Cluster) -> subprocess.Popen[bytes]:
    if cluster.nodes() < 2:
        proc = cluster.start(f"--address={cluster.address}", '--resources={"second_node": 1}')
        cluster.wait_for(2)
        return proc
    return cluster.procs[-1]


def _batch(cluster: Cluster, root: Path, students: int) -> tuple[list[str], dict, dict[str, str], Path]:
    course = make_class.make_course(root / "course")
    expected = make_class.make_class(root / "roster", students=students, sample=1)
    env = dict(os.environ, GRADER_EXERCISES=str(course), GRADER_WORK_DIR=str(root / "jobs"))
    out = root / "out"
    cmd = [sys.executable, "-m", "grader", "batch", str(root / "roster"), "--out", str(out), "--executor", "ray",
           "--address", cluster.address]
    return cmd, expected, env, out


def test_batch_runs_jobs_on_both_nodes_of_a_cluster(cluster, tmp_path):
    second_node(cluster)
    cmd, expected, env, out = _batch(cluster, tmp_path, students=4)
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert _grades(out) == expected
    assert "Graded on 2 machine(s)" in done.stdout, done.stdout


def test_a_node_killed_mid_batch_loses_no_job(cluster, tmp_path):
    node = second_node(cluster)
    cmd, expected, env, out = _batch(cluster, tmp_path, students=4)
    with (tmp_path / "batch.log").open("w") as log:
        batch = subprocess.Popen(cmd, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while not grading_under(node.pid):  # a job of the second node is being graded: now it dies
            assert batch.poll() is None and time.monotonic() < deadline, (tmp_path / "batch.log").read_text()
            time.sleep(0.2)
        kill_tree(node.pid)
        batch.wait(timeout=600)
    finally:
        if batch.poll() is None:
            batch.kill()
    printed = (tmp_path / "batch.log").read_text()
    assert batch.returncode == 0, printed
    assert _grades(out) == expected, "every job graded, the killed node's on the node that was left"
    assert f"{len(expected)} graded, 0 already graded, 0 grader errors" in printed, printed
    assert "Graded on 1 machine(s)" in printed, "the killed node's job finished on the node that was left"
    assert not (out / ".staging").exists() or not any((out / ".staging").iterdir())
