"""The docker backend against a real engine ($DOCKER_HOST): flags, mounts, sweeps, grading."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from grader import api
from grader.config import Settings
from grader.sandbox import Limits, WorkerSpec, install_worker

pytestmark = pytest.mark.docker


@pytest.fixture
def docker_sandbox(registries, docker_image):
    sandbox = registries.sandboxes.get("docker")
    ok, why = sandbox.available()
    if not ok:
        pytest.skip(why)
    return sandbox


def _spec(tmp_path: Path, secret: Path) -> WorkerSpec:
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "solution.py").write_text("def f():\n    return 1\n")
    os.chmod(sub, 0o755)
    return WorkerSpec(job_id=f"t{time.time_ns()}", submission_dir=sub, scratch_dir=tmp_path,
                      worker_dir=install_worker(tmp_path / "w"), limits=Limits(memory_mb=700, max_processes=50),
                      secret_paths=(secret,))


def test_docker_container_is_locked_down(docker_sandbox, tmp_path):
    secret = Path(__file__).resolve().parent.parent / "reference"
    worker = docker_sandbox.start(_spec(tmp_path, secret))
    try:
        worker.container.reload()
        host = worker.container.attrs["HostConfig"]
        config = worker.container.attrs["Config"]
        assert host["NetworkMode"] == "none"
        assert host["Memory"] == host["MemorySwap"] == 700 * 1024 * 1024
        assert host["PidsLimit"] == 50
        assert host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"]
        assert "no-new-privileges" in host["SecurityOpt"]
        assert config["User"] == "65534:65534"
        mounts = {m["Destination"]: m for m in worker.container.attrs["Mounts"]}
        assert mounts["/submission"]["RW"] is False
        assert all(not m["Source"].startswith(str(secret)) for m in mounts.values() if m.get("Source"))
        assert config["Labels"]["grader.sandbox.worker.job"].startswith("t")
    finally:
        worker.kill()
    from docker.errors import NotFound

    with pytest.raises(NotFound):
        worker.container.reload()


def test_docker_sweeps_containers_of_a_dead_grader(docker_sandbox, docker_image):
    from grader.builtin.sandbox_docker import LABEL, _client, sweep

    client = _client()
    orphan = client.containers.create(
        docker_image, command=["/usr/bin/sleep", "600"], network_mode="none",
        labels={LABEL: "1", f"{LABEL}.job": "orphan", f"{LABEL}.pid": "999999999", f"{LABEL}.created": "0"},
        mounts=[__import__("docker").types.Mount("/usr", "/usr", type="bind", read_only=True)],
    )
    orphan.start()
    assert sweep(client) >= 1
    assert not client.containers.list(all=True, filters={"label": f"{LABEL}.job=orphan"})
    client.close()


def test_docker_grades_end_to_end(docker_sandbox, registries, tmp_path, good_sample):
    sub = tmp_path / "s.py"
    sub.write_text(good_sample)
    settings = Settings.load({"work_dir": tmp_path / "jobs", "sandbox": "docker"}, cwd=tmp_path)
    result = api.grade(registries, "sample-add", sub, settings, out_dir=tmp_path / "out")
    assert (result.score, result.max_score) == (4, 4)
    iso = result.provenance["isolation"]
    assert iso["backend"] == "docker" and iso["network"] and iso["filesystem"]
    assert "memory" in " ".join(iso["limits"])
