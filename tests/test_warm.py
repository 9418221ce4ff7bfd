"""Warm runners (grader.checks.warm): forks of a runner that imported pytest and torch, one per job.

The cross-job isolation of the sandboxed side is proved in test_hostile.py (a job plants, the next looks);
here: same results as cold, forks that run torch on threads, and the pool's own failures costing nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from grader import api
from grader.checks import warm
from grader.config import Settings
from grader.paths import PACKAGE_DIR

SAMPLE = PACKAGE_DIR / "sample"


def _view(result):
    return [(c.name, c.status.value, c.score, c.message) for c in result.checks], result.score


@pytest.fixture
def settings(tmp_path):
    return Settings.load({"work_dir": tmp_path / "jobs"}, cwd=tmp_path)


@pytest.mark.slow
def test_warm_and_cold_jobs_give_the_same_results(tmp_path, settings):
    registries = api.load()
    subs = [SAMPLE / "reference", SAMPLE / "submission"]  # full marks, and a softmax with two mistakes
    cold = [_view(api.grade(registries, "sample-softmax", s, settings)) for s in subs]
    with warm.pool(1) as pool:
        hot = [_view(api.grade(registries, "sample-softmax", s, settings)) for s in subs * 2]
        assert pool is not None and pool.warm_jobs == 4 and not pool.fallbacks
    assert hot == cold * 2
    assert cold[0][1] == 3 and cold[1][1] < 3
    assert list((tmp_path / "jobs").iterdir()) == []


def test_a_fork_after_the_preloads_runs_torch_on_several_threads(tmp_path):
    """The fork server imports torch but runs nothing, so a forked child's thread pools start clean."""
    script = textwrap.dedent("""
        import os, sys, time
        from grader.checks import warm
        warm.preload()
        pid = os.fork()
        if pid == 0:
            import torch
            torch.set_num_threads(2)
            x = torch.randn(768, 768)
            y = (x @ x).softmax(dim=-1).sum()
            os._exit(0 if torch.isfinite(y) else 1)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                sys.exit(os.waitstatus_to_exitcode(status))
            time.sleep(0.1)
        os.kill(pid, 9)
        sys.exit("the forked child hung")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_transformers_is_imported_for_the_jobs_whose_checks_import_it(tmp_path):
    """A server grading attention never pays transformers' seconds; the first job whose checks import it has
    the server import it before the fork, once, and every fork after finds it imported."""
    from grader.engine.core import preloads

    registries = api.load()
    assert preloads(registries.exercises.get("sample-softmax"))[1] == ["torch"]
    checks = tmp_path / "ex" / "checks" / "hidden"
    checks.mkdir(parents=True)
    (checks / "helpers.py").write_text("def f():\n    from transformers import AutoModel\n")
    exercise = SimpleNamespace(checks_dir=tmp_path / "ex" / "checks", stub_dir=tmp_path / "ex" / "stub")
    assert preloads(exercise)[1] == ["transformers"]
    script = textwrap.dedent("""
        import sys
        from grader.checks import warm
        warm.preload()
        before = "transformers" in sys.modules
        warm.preload_for(["torch"])
        after_torch = "transformers" in sys.modules
        warm.preload_for(["torch", "transformers"])
        print(before, after_torch, "transformers.modeling_utils" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.stdout.split() == ["False", "False", "True"], proc.stderr[-2000:]


def test_a_runner_that_cannot_start_is_a_failure_with_its_traceback(tmp_path):
    pool = warm.RunnerPool(1)
    try:
        code, log = pool.run(tmp_path / "missing.json", 60, dict(os.environ))
        assert code not in (0, None) and "missing.json" in log, log
        # a runner past its deadline is killed with its session; the server goes on serving
        fifo = tmp_path / "slow" / "runner.json"
        fifo.parent.mkdir()
        os.mkfifo(fifo)  # reading the config blocks for ever
        code, _ = pool.run(fifo, 1.0, dict(os.environ))
        assert code is None
        code, _ = pool.run(tmp_path / "missing.json", 60, dict(os.environ))
        assert code not in (0, None)
        assert pool.warm_jobs == 3 and not pool.fallbacks
    finally:
        pool.close()


@pytest.mark.slow
def test_a_pool_that_cannot_start_costs_speed_never_a_result(tmp_path, settings, monkeypatch):
    def refuse(env, first=None):
        raise warm.ServerGone("no fork server here")

    monkeypatch.setattr(warm, "ForkServer", refuse)
    with warm.pool(1) as pool:
        result = api.grade(api.load(), "sample-softmax", SAMPLE / "reference", settings)
    assert result.score == 3
    assert pool is not None and pool.fallbacks == ["no fork server here"] and pool.warm_jobs == 0


@pytest.mark.slow
def test_a_changed_environment_gets_a_new_server(tmp_path, settings, monkeypatch):
    """Libraries read some variables at import (HF_HUB_OFFLINE): a server is only reused for its own env."""
    registries = api.load()
    with warm.pool(1) as pool:
        assert pool is not None
        api.grade(registries, "sample-softmax", SAMPLE / "reference", settings)
        first = pool._idle[0].proc.pid
        api.grade(registries, "sample-softmax", SAMPLE / "reference", settings)
        assert pool._idle[0].proc.pid == first
        monkeypatch.setenv("PYTEST_CURRENT_TEST", "another test (call)")  # pytest's own, changed per test
        api.grade(registries, "sample-softmax", SAMPLE / "reference", settings)
        assert pool._idle[0].proc.pid == first, "a per-test variable must not cost a new server"
        monkeypatch.setenv("GRADER_TEST_MARK", "1")
        result = api.grade(registries, "sample-softmax", SAMPLE / "reference", settings)
        assert pool._idle[0].proc.pid != first and result.score == 3
    assert not Path(f"/proc/{first}").exists() or Path(f"/proc/{first}/stat").read_text().split()[2] == "Z"


def test_warm_is_a_setting(monkeypatch, tmp_path):
    assert Settings.load(cwd=tmp_path).warm is True
    monkeypatch.setenv("GRADER_WARM", "0")
    assert Settings.load(cwd=tmp_path).warm is False
