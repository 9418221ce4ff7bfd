"""Shared fixtures: the third-party sample exercise registered as a temporary plugin."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from grader import api, hookimpl
from grader.config import Settings

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_PLUGIN_DIR = FIXTURES / "sample_plugin"


def _sample_module():
    if str(SAMPLE_PLUGIN_DIR) not in sys.path:
        sys.path.insert(0, str(SAMPLE_PLUGIN_DIR))
    import grader_sample_exercise

    return grader_sample_exercise


def skip_unless_required(flag: str, why: str) -> None:
    """Skip for a missing tool, unless ``GRADER_REQUIRE_<flag>=1`` (CI sets it for what it installed): then fail,
    so a tool that went missing cannot hide a whole suite behind skips."""
    import os

    if os.environ.get(f"GRADER_REQUIRE_{flag}") == "1":
        pytest.fail(f"GRADER_REQUIRE_{flag}=1, but {why}")
    pytest.skip(why)


@pytest.fixture(scope="session")
def sample_plugin():
    return _sample_module()


class HostileTargetPlugin:
    """Registers the short-limit exercise the hostile suite attacks."""

    root = FIXTURES / "hostile_target"

    @hookimpl
    def grader_register_exercises(self, registry):
        registry.add_folder(self.root / "exercise", reference=self.root / "reference")


@pytest.fixture(scope="session")
def registries(sample_plugin):
    """Built-ins plus the test exercises (registered as extra plugins, not installed)."""
    from grader.plugins import Registries, make_plugin_manager

    pm = make_plugin_manager(entry_points=False)
    pm.register(sample_plugin, name="grader_sample_exercise")
    pm.register(HostileTargetPlugin(), name="hostile_target")
    return Registries.collect(pm)


@pytest.fixture(scope="session")
def docker_image():
    """A registry-free skeleton worker image on the engine at $DOCKER_HOST (docker-marked tests only)."""
    import os

    from grader.builtin.sandbox_docker import IMAGE_ENV, _client
    from grader.sandbox.images import build_skeleton

    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        # no engine: say so without a client, whose half-open socket would outlive the skip
        if os.environ.get("GRADER_REQUIRE_DOCKER") == "1":
            pytest.fail(f"CI started a Docker engine but its socket {host} is gone")
        pytest.skip(f"no Docker engine at {host}")
    client = None
    try:
        client = _client()
        client.ping()
    except Exception as exc:
        if client is not None:
            client.close()
        if os.environ.get("GRADER_REQUIRE_DOCKER") == "1":
            pytest.fail(f"CI started a Docker engine but it is unreachable: {exc}")
        pytest.skip(f"no Docker engine: {exc}")
    tag = "grader-worker:tests"
    build_skeleton(client, tag)
    client.close()
    previous = os.environ.get(IMAGE_ENV)
    os.environ[IMAGE_ENV] = tag
    yield tag
    if previous is None:
        os.environ.pop(IMAGE_ENV, None)
    else:
        os.environ[IMAGE_ENV] = previous


@pytest.fixture
def settings(tmp_path):
    return Settings.load({"work_dir": tmp_path / "jobs"}, cwd=tmp_path)


@pytest.fixture
def grade_sample(registries, settings, tmp_path):
    """Grade a solution.py text for the sample exercise; returns the GradeResult."""

    def run(source: str, sandbox: str | None = None, **kw):
        sub = tmp_path / f"sub{len(list(tmp_path.glob('sub*')))}"
        sub.mkdir()
        (sub / "solution.py").write_text(source, encoding="utf-8")
        s = Settings.load({"work_dir": settings.work_dir, "sandbox": sandbox}, cwd=tmp_path)
        return api.grade(registries, "sample-add", sub, s, **kw)

    return run


GOOD_SAMPLE = "def add(a, b):\n    return a + b\n\n\ndef scale(t, k):\n    return t * k\n"


@pytest.fixture
def good_sample() -> str:
    return GOOD_SAMPLE


def pytest_terminal_summary(terminalreporter):
    """The curriculum self-test's grading time per exercise (a figure to watch as the course grows)."""
    import json
    import os
    import tempfile
    from collections import defaultdict

    path = Path(tempfile.gettempdir()) / f"grader-curriculum-times-{os.getpid()}.jsonl"
    if os.environ.get("PYTEST_XDIST_WORKER") or not path.is_file():
        return
    times: dict[str, float] = defaultdict(float)
    for line in path.read_text(encoding="utf-8").splitlines():
        exercise_id, seconds = json.loads(line)
        times[exercise_id] += seconds
    path.unlink()
    terminalreporter.section("curriculum self-test: grading time per exercise (summed over workers)")
    for exercise_id, seconds in sorted(times.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{exercise_id:<26} {seconds:7.1f} s")
    terminalreporter.write_line(f"{'total':<26} {sum(times.values()):7.1f} s")


@pytest.fixture(scope="module")
def warm_runners():
    """The module's jobs run on warm runners (grader.checks.warm), as batches and the server do: one fork server per
    pytest process (each xdist worker has its own), shared by the module's gradings."""
    from grader.checks import warm

    with warm.pool(1) as pool:
        yield pool
