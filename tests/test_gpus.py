"""GPU selection and scheduling, proven without a GPU through a fake device list."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from grader.config import Settings
from grader.engine.core import place
from grader.sandbox.gpus import NoGPU, acquire, detect_gpus


@pytest.fixture
def fake_gpus(monkeypatch, tmp_path):
    monkeypatch.setenv("GRADER_GPU_LOCKS", str(tmp_path / "locks"))

    def set_ids(ids: str) -> None:
        monkeypatch.setenv("GRADER_GPUS", ids)

    return set_ids


def test_gpus_override_and_none(fake_gpus):
    fake_gpus("0, 1")
    assert detect_gpus() == ["0", "1"]
    fake_gpus("")
    assert detect_gpus() == []
    with pytest.raises(NoGPU, match="has 0"):
        acquire(1)


def test_gpus_leases_are_exclusive_and_jobs_wait(fake_gpus):
    fake_gpus("0,1")
    first, second = acquire(1), acquire(1)
    assert sorted(first.ids + second.ids) == ["0", "1"]
    with pytest.raises(NoGPU, match="became free"):
        acquire(1, timeout_s=0.3, poll_s=0.05)
    got = []
    waiter = threading.Thread(target=lambda: got.append(acquire(1, timeout_s=10, poll_s=0.05)))
    waiter.start()
    time.sleep(0.3)
    assert not got, "a job took a GPU that was still leased"
    first.release()
    waiter.join(5)
    assert got and got[0].ids == first.ids
    got[0].release()
    second.release()
    with acquire(2) as both:
        assert sorted(both.ids) == ["0", "1"]


class _Sandbox:
    def __init__(self, name: str, gpu: bool) -> None:
        self.name, self.supports_gpu = name, gpu


def test_gpus_placement_falls_back_or_refuses_never_silently(fake_gpus, registries):
    base = registries.exercises.get("sample-add")
    optional = dataclasses.replace(base, device="gpu-optional")
    required = dataclasses.replace(base, device="gpu")
    gpu_settings = Settings(profile="gpu")
    docker, bwrap = _Sandbox("docker", True), _Sandbox("bwrap", False)

    fake_gpus("0")
    assert place(optional, gpu_settings, docker) == place(required, Settings(), docker)
    assert place(optional, gpu_settings, docker).device == "cuda"
    assert place(optional, Settings(), docker).device == "cpu"

    cpu_fallback = place(optional, gpu_settings, bwrap)
    assert (cpu_fallback.device, cpu_fallback.profile) == ("cpu", "cpu")
    assert "cannot pass GPUs" in cpu_fallback.note

    fake_gpus("")
    assert "no GPU" in place(optional, gpu_settings, docker).note
    refused = place(required, Settings(), docker)
    assert refused.refusal.startswith("needs GPU")


def test_gpus_required_exercise_without_gpu_is_not_graded(fake_gpus, registries, tmp_path, good_sample):
    from grader.engine.core import grade

    fake_gpus("")
    exercise = dataclasses.replace(registries.exercises.get("sample-add"), device="gpu")
    sub = tmp_path / "s.py"
    sub.write_text(good_sample)
    result = grade(exercise, sub, Settings.load({"work_dir": tmp_path / "j"}, cwd=tmp_path), registries)
    assert {c.status.value for c in result.checks} == {"grader_error"}
    assert all("needs GPU" in c.message for c in result.checks)
    assert result.provenance["profile"] == "gpu"


@pytest.fixture
def fake_devices(monkeypatch, tmp_path, fake_gpus):
    """Stand-ins for a two-GPU host's device nodes (regular files: bwrap binds them the same way)."""
    from grader.sandbox import gpus

    dev = tmp_path / "dev"
    dev.mkdir()
    for name in ("nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm"):
        (dev / name).write_text(name)
    monkeypatch.setattr(gpus, "DEV", dev)
    fake_gpus("0,1")
    return dev


def test_gpus_passthrough_names_the_leased_gpu_and_the_control_nodes_only(fake_devices):
    from grader.sandbox.gpus import GpuLease, passthrough

    gpu = passthrough(GpuLease(["1"]))
    assert [inside for _, inside in gpu.nodes] == ["/dev/nvidia1", "/dev/nvidiactl", "/dev/nvidia-uvm"]
    assert gpu.env["CUDA_VISIBLE_DEVICES"] == "1" and gpu.env["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
    assert all(not d.startswith("/usr/") for d in gpu.library_dirs), "/usr is bound whole already"


def test_gpus_reach_workers_without_docker(fake_gpus, registries):
    from grader.builtin.sandbox_bwrap import BwrapSandbox
    from grader.builtin.sandbox_process import ProcessSandbox

    optional = dataclasses.replace(registries.exercises.get("sample-add"), device="gpu-optional")
    fake_gpus("0")
    for sandbox in (BwrapSandbox(), ProcessSandbox()):
        assert place(optional, Settings(profile="gpu"), sandbox).device == "cuda", sandbox.name


def test_gpus_a_gpu_worker_is_bounded_by_its_data_segment_not_its_address_space():
    """CUDA reserves far more address space than any memory limit: a GPU worker's bound is RLIMIT_DATA."""
    import subprocess
    import sys

    from grader.sandbox import Limits, rlimit_preexec

    show = "import resource as r; print(r.getrlimit(r.RLIMIT_AS)[0], r.getrlimit(r.RLIMIT_DATA)[0])"
    bound = 512 << 20
    for gpu in (False, True):
        out = subprocess.run([sys.executable, "-c", show], capture_output=True, text=True, check=True,
                             preexec_fn=rlimit_preexec(Limits(memory_mb=512), gpu=gpu)).stdout.split()
        address_space, data = (int(v) for v in out)
        assert (address_space == bound, data == bound) == (not gpu, gpu), (gpu, address_space, data)


@pytest.mark.slow
def test_gpus_a_bwrap_worker_sees_its_gpu_and_no_other(fake_devices, tmp_path):
    """The real bwrap command line of a GPU job: its GPU's node and the control nodes in /dev, not the other
    GPU's, and CUDA_VISIBLE_DEVICES naming it."""
    import json
    import os
    import subprocess
    import sys

    from conftest import skip_unless_required

    from grader.builtin import sandbox_bwrap
    from grader.sandbox import WorkerSpec
    from grader.sandbox.gpus import acquire, passthrough

    if not sandbox_bwrap.BwrapSandbox().available()[0]:
        skip_unless_required("BWRAP", "bubblewrap cannot run here")
    folders = {name: tmp_path / name for name in ("sub", "scratch", "worker")}
    for folder in folders.values():
        folder.mkdir()
    spec = WorkerSpec("gpu-job", folders["sub"], folders["scratch"], folders["worker"], device="cuda")
    look = ("import json, os; print(json.dumps([sorted(n for n in os.listdir('/dev') if n.startswith('nvidia')), "
            "os.environ.get('CUDA_VISIBLE_DEVICES'), open('/dev/nvidia1').read()]))")
    with acquire(1) as lease:
        assert lease.ids == ["0"]  # take GPU 0, so the job's lease is GPU 1
        with acquire(1) as job_lease:
            gpu = passthrough(job_lease)
            uid = os.getuid() if os.geteuid() else 65432
            argv = sandbox_bwrap.argv(spec, uid, os.geteuid() == 0, gpu, command=[sys.executable, "-I", "-c", look])
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [["nvidia-uvm", "nvidia1", "nvidiactl"], "1", "nvidia1"]


def test_gpus_a_worker_gives_its_lease_back_when_it_ends(fake_gpus, tmp_path):
    import sys

    from grader.sandbox import Isolation, Limits, ProcessWorker

    fake_gpus("0")
    worker = ProcessWorker([sys.executable, "-c", "import time; time.sleep(30)"], {"PATH": "/usr/bin:/bin"},
                           tmp_path, Limits(), str(tmp_path), Isolation("process", False, False, False, "me"),
                           lease=acquire(1))
    with pytest.raises(NoGPU):
        acquire(1, timeout_s=0.2, poll_s=0.05)
    worker.kill()
    worker.stderr.close()  # the job's reader closes it
    acquire(1, timeout_s=1).release()
