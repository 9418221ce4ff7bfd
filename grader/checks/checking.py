"""The pytest plugin that turns an exercise's checks into scored, classified results.

It runs in the trusted check runner (never in the sandbox).  It gives checks their fixtures
(``student``, ``reference``, ``exercise``, ``seed``), reads the ``points``, ``visibility`` and
``timeout_s`` markers, maps every outcome onto the status vocabulary, and appends each result to a
JSON-lines file as soon as it is known, so a killed runner still leaves what it finished.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

import pytest

from grader.assets import AssetPaths
from grader.checks import pictures
from grader.checks.details import JobFiles, begin_details, current, record, seed_everything
from grader.checks.runner_config import RunnerConfig
from grader.models import Status, Visibility
from grader.sandbox import JOB_FILES
from grader.sandbox.remote import (
    SandboxStartError,
    StudentError,
    StudentProxy,
    SubmissionLoadError,
    WorkerSession,
    WorkerTimeout,
)

MESSAGE_LIMIT = 500


class RefusedJob(Exception):
    """The job cannot run here (e.g. it needs a GPU): not the student's fault, so a grader_error."""
OUTPUT_LIMIT = 6000


def classify(exc: BaseException) -> tuple[Status, str, str]:
    """Map an exception raised by a check onto (status, one-line message, longer output)."""
    if isinstance(exc, StudentError):
        return exc.status, exc.message, exc.detail
    if isinstance(exc, (AssertionError, pytest.fail.Exception)):
        text = str(exc).strip() or "assertion failed"
        first, _, rest = text.partition("\n")
        return Status.FAIL, first, rest.strip("\n")  # the message leads every view: the output is what follows
    if isinstance(exc, SandboxStartError):
        return Status.GRADER_ERROR, f"{exc} (not graded: no points are lost for this)", ""
    if isinstance(exc, RefusedJob):
        return Status.GRADER_ERROR, f"{exc} (not graded: no points are lost for this)", ""
    if isinstance(exc, pytest.skip.Exception):
        return Status.GRADER_ERROR, "the check was skipped, which a check must never do (a grader bug)", ""
    name = type(exc).__name__
    return (
        Status.GRADER_ERROR,
        f"the check itself failed with {name}: {exc} (a grader bug, not your fault: no points are lost for it)",
        "",
    )


def _title(item: pytest.Item) -> str:
    doc = getattr(getattr(item, "obj", None), "__doc__", None) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else item.name.replace("_", " ")
    return first


class GraderPlugin:
    """Registered by :mod:`grader.checks.runner` for one submission."""

    def __init__(self, config: RunnerConfig, session: WorkerSession | None) -> None:
        self.cfg = config
        self.session = session
        self.results_path = Path(config.results_path)
        self.hidden_root = Path(config.hidden_dir).resolve() if config.hidden_dir else None
        self.run_hidden = config.run_hidden
        self.grading_seed = int(config.seed)
        budget = float(config.deadline_epoch) - time.time()
        self.deadline = time.monotonic() + budget
        self.default_timeout = float(config.check_timeout_s)
        self.done: set[str] = set()
        self.not_run = {"count": 0, "points": 0.0}
        self._started: dict[str, float] = {}
        self._reference: ModuleType | None = None
        self._proxies: list[StudentProxy] = []  # the running check's, whose deadlines a reference run extends
        self._curves: pictures.ReferenceCurves | None = None

    # -- output ----------------------------------------------------------------------------
    def write(self, record: dict[str, Any]) -> None:
        with self.results_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=str) + "\n")

    # -- collection ------------------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "points(n): points this check is worth")
        config.addinivalue_line("markers", "visibility(v): public, hidden or message-only")
        config.addinivalue_line("markers", "timeout_s(s): time budget for the student calls in this check")

    def _is_hidden_file(self, item: pytest.Item) -> bool:
        path = Path(str(item.path)).resolve()
        return self.hidden_root is not None and path.is_relative_to(self.hidden_root)

    def _meta(self, item: pytest.Item) -> tuple[float, Visibility]:
        points_mark = item.get_closest_marker("points")
        if points_mark is None or not points_mark.args or float(points_mark.args[0]) <= 0:
            raise pytest.UsageError(f"{item.nodeid}: every check needs @pytest.mark.points(N) with N > 0")
        vis_mark = item.get_closest_marker("visibility")
        hidden_file = self._is_hidden_file(item)
        visibility = Visibility(vis_mark.args[0]) if vis_mark else (
            Visibility.HIDDEN if hidden_file else Visibility.PUBLIC
        )
        if not hidden_file and visibility is not Visibility.PUBLIC:
            raise pytest.UsageError(f"{item.nodeid}: checks under public/ ship to students; move it to hidden/")
        if hidden_file and visibility is Visibility.PUBLIC:
            raise pytest.UsageError(f"{item.nodeid}: a check under hidden/ cannot be public")
        return float(points_mark.args[0]), visibility

    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:
        keep = []
        for item in items:
            points, visibility = self._meta(item)
            item.stash[_META] = (points, visibility)
            if self._is_hidden_file(item) and not self.run_hidden:
                self.not_run["count"] += 1
                self.not_run["points"] += points
            else:
                keep.append(item)
        if len(keep) != len(items):
            config.hook.pytest_deselected(items=[i for i in items if i not in keep])
            items[:] = keep
        self.write({"kind": "not_run", **self.not_run})

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.write({
                "kind": "check", "name": report.nodeid or "collection", "title": "checks could not be loaded",
                "status": Status.GRADER_ERROR.value, "score": 0.0, "max_score": 0.0,
                # a hidden check file's traceback quotes its source: students get the message only
                "visibility": (Visibility.MESSAGE_ONLY if report.nodeid.startswith("hidden") else
                               Visibility.PUBLIC).value,
                "message": "a check file failed to load (a grader bug, not your fault)",
                "output": str(report.longrepr)[-OUTPUT_LIMIT:], "details": {},
            })

    # -- running ---------------------------------------------------------------------------
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        begin_details()
        seed_everything(self.grading_seed)
        self._started[item.nodeid] = time.perf_counter()
        self._proxies.clear()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        if item.nodeid in self.done or call.when == "teardown":
            return report
        if call.when == "setup" and call.excinfo is None:
            return report
        self.done.add(item.nodeid)
        points, visibility = item.stash[_META]
        if call.excinfo is None:
            status, message, output = Status.PASS, "", ""
        else:
            status, message, output = classify(call.excinfo.value)
        details = current()
        self.write({
            "kind": "check",
            "name": item.nodeid,
            "title": _title(item),
            "status": status.value,
            "score": points if status is Status.PASS else 0.0,
            "max_score": points,
            "visibility": visibility.value,
            "message": message[:MESSAGE_LIMIT],
            "output": output[-OUTPUT_LIMIT:],
            "details": details,
            "duration_s": time.perf_counter() - self._started.get(item.nodeid, time.perf_counter()),
        })
        return report

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        record: dict[str, Any] = {"kind": "session"}
        if self.session is not None:
            self.session.close()
            record.update(phases=self.session.phases, isolation=self.session.isolation,
                          output=self.session.output.text(OUTPUT_LIMIT))
        self.write(record)

    # -- fixtures --------------------------------------------------------------------------
    @pytest.fixture
    def student(self, request: pytest.FixtureRequest) -> StudentProxy:
        """The student's solution.py, reached across the sandbox boundary."""
        if self.cfg.refused:
            raise RefusedJob(self.cfg.load_problem)
        if self.cfg.load_problem:
            raise SubmissionLoadError(self.cfg.load_problem)
        if self.session is None:
            raise RuntimeError("no sandbox session was configured")
        now = time.monotonic()
        if now >= self.deadline:
            raise WorkerTimeout("the submission's total time budget ran out before this check")
        mark = request.node.get_closest_marker("timeout_s")
        budget = float(mark.args[0]) if mark else self.default_timeout
        proxy = StudentProxy(self.session, min(now + budget, self.deadline), seed=self.grading_seed)
        self._proxies.append(proxy)
        return proxy

    def _give_back(self, seconds: float) -> None:
        """Time the trusted side spent on the reference is not the student's: push the deadlines back."""
        self.deadline += seconds
        for proxy in self._proxies:
            proxy._deadline += seconds

    @pytest.fixture
    def reference_curve(self, request: pytest.FixtureRequest) -> Callable[..., list[float | None] | None]:
        """``reference_curve(name, values, compute=None)``: the reference's curve for this check, to draw beside
        the student's ``values`` (see :mod:`grader.checks.pictures`); None when there is none to draw."""
        if self._curves is None:
            identity = {"exercise": self.cfg.exercise_id, "profile": self.cfg.profile, "seed": self.grading_seed,
                        "targets": self.cfg.targets, "reference": pictures.tree_digest(self.cfg.reference_dir),
                        "checks": pictures.tree_digest(self.cfg.checks_dir)}
            self._curves = pictures.ReferenceCurves(self.cfg.reference_cache or None, identity,
                                                    self.cfg.submission_is_reference, self._give_back)
        curves, check = self._curves, request.node.nodeid

        def reference_curve(name: str, values: Any, compute: Any = None) -> list[float | None] | None:
            said = len(curves.problems)
            line = curves(check, name, values, compute)
            if len(curves.problems) > said:  # for the instructor's results.json; the student sees no line
                record(f"reference_curve_problem/{name}", curves.problems[-1])
            return line
        return reference_curve

    @pytest.fixture(scope="session")
    def reference(self) -> ModuleType:
        """The reference solution, imported in this trusted process."""
        if self._reference is None:
            ref_dir = self.cfg.reference_dir
            if not ref_dir:
                raise RuntimeError(f"exercise {self.cfg.exercise_id} has no reference solution")
            path = Path(ref_dir) / "solution.py"
            spec = importlib.util.spec_from_file_location(f"grader_reference_{self.cfg.exercise_id}", path)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._reference = module
        return self._reference

    @pytest.fixture(scope="session")
    def profile(self) -> str:
        """The target profile this job is graded under: ``cpu`` or ``gpu`` (stricter targets)."""
        return self.cfg.profile

    @pytest.fixture(scope="session")
    def assets(self) -> AssetPaths:
        """The exercise's course assets: name -> prepared folder (read-only, also inside the sandbox)."""
        if self.cfg.refused:  # e.g. an asset is not prepared: say so, not "asset not declared"
            raise RefusedJob(self.cfg.load_problem)
        return AssetPaths({name: Path(path) for name, path in self.cfg.assets.items()})

    @pytest.fixture(scope="session")
    def targets(self) -> Mapping[str, Any]:
        """The targets of the active profile (``[profiles.<profile>]`` in exercise.toml), read-only."""
        return MappingProxyType(dict(self.cfg.targets))

    @pytest.fixture(scope="session")
    def seed(self) -> int:
        """The grading seed (recorded in results.json)."""
        return self.grading_seed

    @pytest.fixture(scope="session")
    def exercise_dir(self) -> Path:
        """The exercise folder (for data files shipped with the checks)."""
        return Path(self.cfg.exercise_dir)

    @pytest.fixture(scope="session")
    def job_files(self) -> JobFiles:
        """Files handed to the student's code (read-only there) and a folder both sides write."""
        isolated = self.session.sandbox.isolates_filesystem is not False if self.session else True
        return JobFiles(Path(self.cfg.job_dir) / "files", JOB_FILES if isolated else None)


_META = pytest.StashKey[tuple[float, Visibility]]()
