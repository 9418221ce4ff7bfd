"""GPU selection and scheduling, proven without a GPU through a fake device list."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from grader.config import Settings
from grader.engine import place
from grader.gpus import NoGPU, acquire, detect_gpus


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
    from grader.engine import grade

    fake_gpus("")
    exercise = dataclasses.replace(registries.exercises.get("sample-add"), device="gpu")
    sub = tmp_path / "s.py"
    sub.write_text(good_sample)
    result = grade(exercise, sub, Settings.load({"work_dir": tmp_path / "j"}, cwd=tmp_path), registries)
    assert {c.status.value for c in result.checks} == {"grader_error"}
    assert all("needs GPU" in c.message for c in result.checks)
    assert result.provenance["profile"] == "gpu"
