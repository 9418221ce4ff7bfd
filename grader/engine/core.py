"""Grading one submission: stage it, run the trusted check runner, read back classified results."""

from __future__ import annotations

import ast
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from grader import __version__
from grader.assets import resolve as resolve_assets
from grader.checks import warm
from grader.checks.pictures import reference_cache_dir
from grader.checks.runner_config import RunnerConfig
from grader.config import Settings
from grader.engine.submission import stage
from grader.errors import SandboxUnavailable
from grader.fs import force_rmtree
from grader.models import CheckResult, Exercise, GradeResult, Status, Visibility
from grader.paths import PACKAGE_DIR, data_root
from grader.plugins import Registries
from grader.sandbox import Limits, Sandbox
from grader.sandbox.gpus import detect_gpus

RUNNER_SLACK_S = 60.0
#: how many jobs this process grades at once (batch --workers, serve --workers; see :func:`sharing_cores`)
_CONCURRENT_JOBS = 1


@contextmanager
def sharing_cores(jobs: int) -> Iterator[None]:
    """While ``jobs`` jobs run side by side, each worker's threads come from an equal share of the cores:
    two jobs of two threads each on two cores spin against each other and grade at about half speed."""
    previous = set_concurrent_jobs(jobs)
    try:
        yield
    finally:
        set_concurrent_jobs(previous)


def set_concurrent_jobs(jobs: int) -> int:
    """Declare how many jobs this process grades at once (the server, for its lifetime); returns the old count."""
    global _CONCURRENT_JOBS
    previous, _CONCURRENT_JOBS = _CONCURRENT_JOBS, max(1, jobs)
    return previous


def usable_cores() -> int:
    """The cores this process may run on (its affinity, where the platform says)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def job_threads(exercise: Exercise, settings: Settings) -> int:
    """A job's torch/OpenMP threads: the setting, lowered by the exercise and by the job's share of the cores."""
    share = max(1, usable_cores() // _CONCURRENT_JOBS)
    return max(1, min(exercise.threads or settings.threads, settings.threads, share))


def choose_sandbox(registries: Registries, name: str | None) -> Sandbox:
    """The named backend, or the available one with the lowest priority."""
    if name:
        sandbox = registries.sandboxes.get(name)
        ok, why = sandbox.available()
        if not ok:
            raise SandboxUnavailable(f"sandbox {name!r} is not available: {why}")
        return sandbox
    for sandbox in sorted(registries.sandboxes, key=lambda s: s.priority):
        if sandbox.available()[0]:
            return sandbox
    raise SandboxUnavailable("no sandbox backend is available")


@dataclass(frozen=True)
class Placement:
    """Where a job runs: ``device`` for the worker, the target ``profile``, and why if it changed."""

    device: str
    profile: str
    note: str = ""
    refusal: str = ""


def place(exercise: Exercise, settings: Settings, sandbox: Sandbox) -> Placement:
    """Choose CPU or GPU for a job; never silently: a fallback says so and a hard need refuses.

    ``exercise.device`` is ``cpu`` (CPU only), ``gpu-optional`` (``cpu`` and ``gpu`` profiles) or
    ``gpu`` (cannot be graded without one).  GPUs reach workers only through backends that declare
    ``supports_gpu`` (docker, bwrap and process: see :func:`grader.sandbox.gpus.passthrough`).
    """
    wants_gpu = exercise.device == "gpu" or (settings.profile == "gpu" and exercise.device != "cpu")
    if not wants_gpu:
        note = "" if settings.profile == "cpu" else f"{exercise.id} has only a cpu profile"
        return Placement("cpu", "cpu", note)
    gpus = detect_gpus()
    why = ""
    if not gpus:
        why = "this machine has no GPU"
    elif not sandbox.supports_gpu:
        why = f"the {sandbox.name} sandbox cannot pass GPUs to workers (use --sandbox docker)"
    if not why:
        return Placement("cuda", "gpu")
    if exercise.device == "gpu":
        return Placement("cpu", "gpu", refusal=f"needs GPU: {exercise.id} can only be graded on a GPU, and {why}")
    return Placement("cpu", "cpu", note=f"gpu profile requested but {why}: graded with the cpu profile")


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _secret_paths(registries: Registries, out_dir: Path | None) -> list[str]:
    paths = {PACKAGE_DIR, data_root() / "exercises", data_root() / "reference"}
    for ex in registries.exercises:
        paths.add(ex.checks_dir)
        if ex.reference_dir:
            paths.add(ex.reference_dir)
    if out_dir is not None:
        paths.add(out_dir)
    return sorted(str(p.resolve()) for p in paths)


def _run_runner(cfg_path: Path, timeout: float) -> tuple[int | None, str]:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               GRADER_PARENT_PID=str(os.getpid()))
    pool = warm.active()
    if pool is not None:  # a fork of a runner that has imported pytest and torch; None: the pool failed
        result = pool.run(cfg_path, timeout, env)
        if result is not None:
            return result
    proc = subprocess.Popen(
        [sys.executable, "-m", "grader.checks.runner", str(cfg_path)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out.decode(errors="replace")[-4000:]
    except BaseException:  # Ctrl-C: take the runner and its sandbox down with us
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return proc.returncode, out.decode(errors="replace")[-4000:]


def _read_results(path: Path) -> tuple[list[CheckResult], dict[str, Any], dict[str, Any]]:
    checks: list[CheckResult] = []
    session: dict[str, Any] = {}
    not_run: dict[str, Any] = {"count": 0, "points": 0.0}
    if not path.exists():
        return checks, session, not_run
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        kind = record.pop("kind")
        if kind == "check":
            checks.append(CheckResult.from_dict(record))
        elif kind == "session":
            session = record
        elif kind == "not_run":
            not_run = record
    return checks, session, not_run


def grade(
    exercise: Exercise,
    source: Path,
    settings: Settings,
    registries: Registries,
    public_only: bool = False,
    out_dir: Path | None = None,
) -> GradeResult:
    """Grade ``source`` (a folder with solution.py or one .py file) for ``exercise``."""
    started = time.perf_counter()
    sandbox = choose_sandbox(registries, settings.sandbox)
    placement = place(exercise, settings, sandbox)
    assets = resolve_assets(registries.assets, exercise.assets)  # prepared folders, never built here
    refusal = placement.refusal or assets.problem
    job_id, job = _new_job(exercise, settings)
    try:
        staged = stage(Path(source), job / "submission")
        cfg = _runner_config(exercise, settings, registries, sandbox.name, placement, assets, staged.path, job,
                             job_id, public_only, out_dir, load_problem=refusal or staged.problem,
                             refused=bool(refusal), is_reference=_is_reference(exercise, Path(source)))
        cfg_path = job / "runner.json"
        cfg.write(cfg_path)
        code, log = _run_runner(cfg_path, exercise.submission_timeout_s + exercise.import_timeout_s + RUNNER_SLACK_S)
        checks, session, not_run = _read_results(job / "results.jsonl")
    finally:
        sandbox.cleanup(job_id)  # a runner killed mid-job may leave workers the backend can still find
        force_rmtree(job)
    checks = _complete(checks, exercise, code, log, public_only, not_run, settings.select)
    if public_only and not exercise.hidden_checks.is_dir():
        # a student pack ships without hidden/: the declared total still tells what was not run
        missing = exercise.points - sum(c.max_score for c in checks)
        if missing > 0:
            not_run = {"count": -1, "points": missing}
    elapsed = time.perf_counter() - started
    isolation = session.get("isolation") or {"backend": sandbox.name, "notes": "no worker was started"}
    return GradeResult(
        exercise=exercise,
        submission=staged.name,
        mode="check" if public_only else "grade",
        checks=tuple(checks),
        provenance={**_provenance(exercise, placement, settings.seed, isolation), "job_id": job_id,
                    "assets": assets.provenance},
        execution_time_s=elapsed,
        phases=_phases(session, checks, elapsed),
        not_run=int(not_run.get("count", 0)),
        not_run_points=float(not_run.get("points", 0.0)),
        stderr_tail=str(session.get("output", "")),
        note=staged.problem,
    )


def _new_job(exercise: Exercise, settings: Settings) -> tuple[str, Path]:
    """A job id and a fresh job folder, which other users may traverse but not list."""
    jobs_root = settings.work_dir or Path(tempfile.gettempdir()) / "grader-jobs"
    jobs_root.mkdir(parents=True, exist_ok=True)
    os.chmod(jobs_root, 0o711)
    job = Path(tempfile.mkdtemp(prefix=f"{exercise.id}-", dir=jobs_root))
    os.chmod(job, 0o711)
    return uuid.uuid4().hex[:12], job


def _runner_config(exercise: Exercise, settings: Settings, registries: Registries, sandbox: str,
                   placement: Placement, assets: Any, submission: Path, job: Path, job_id: str,
                   public_only: bool, out_dir: Path | None, load_problem: str, refused: bool,
                   is_reference: bool = False) -> RunnerConfig:
    """Everything the trusted runner needs for one job (written as runner.json, readable by root only)."""
    worker_modules, runner_modules = preloads(exercise)
    return RunnerConfig(
        job_id=job_id,
        job_dir=str(job),
        exercise_id=exercise.id,
        exercise_dir=str(exercise.checks_dir.parent),
        checks_dir=str(exercise.checks_dir),
        hidden_dir=str(exercise.hidden_checks),
        paths=[str(p) for p in (exercise.public_checks, exercise.hidden_checks) if p.is_dir()],
        run_hidden=not public_only,
        reference_dir=str(exercise.reference_dir) if exercise.reference_dir else None,
        submission_dir=str(submission),
        device=placement.device,
        profile=placement.profile,
        results_path=str(job / "results.jsonl"),
        sandbox=sandbox,
        seed=settings.seed,
        deadline_epoch=time.time() + exercise.submission_timeout_s,
        check_timeout_s=exercise.check_timeout_s,
        import_timeout_s=exercise.import_timeout_s,
        limits=asdict(Limits(memory_mb=exercise.memory_mb,
                             threads=job_threads(exercise, settings),
                             cpu_seconds=int(exercise.submission_timeout_s) + 30)),
        secret_paths=_secret_paths(registries, out_dir),
        select=settings.select,
        assets=assets.paths,
        readonly_paths=sorted(assets.paths.values()),
        targets=exercise.targets(placement.profile),
        load_problem=load_problem,
        refused=refused,
        reference_cache=str(reference_cache_dir() or ""),
        submission_is_reference=is_reference,
        prestart_worker=settings.prestart,
        warm_workers=settings.warm_workers,
        worker_preload=worker_modules,
        runner_preload=runner_modules,
    )


#: what a warm worker template may import before it forks: the heavy libraries of this curriculum, none of which
#: starts a thread or reads a file of the job's at import
PRELOADABLE = ("numpy", "torch", "transformers")


def preloads(exercise: Exercise) -> tuple[list[str], list[str]]:
    """The preloadable modules a job's warm processes import before they fork, (worker's, runner's); the stub's
    files and the checks' are each read once per job.

    The worker's: what the stub imports (any ``.py`` of it, at any depth), which a student's solution imports too,
    so a worker forked with them imported starts where a cold one would be after its imports. The runner's: what
    the checks or the stub (which the checks compare against) import, which a warm fork server imports once
    before forking the job's runner (transformers alone takes seconds).
    """
    stub = _imported(exercise.stub_dir)
    runner = stub | _imported(exercise.checks_dir)
    return [m for m in PRELOADABLE if m in stub], [m for m in PRELOADABLE if m in runner]


def _imported(folder: Path) -> set[str]:
    """The top-level modules the ``.py`` files under ``folder`` import (absolute imports, anywhere in a file)."""
    found: set[str] = set()
    for source in sorted(folder.rglob("*.py")) if folder.is_dir() else ():
        with suppress(OSError, SyntaxError, ValueError):
            for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
                found.update(n.split(".")[0] for n in names)
    return found


def _is_reference(exercise: Exercise, source: Path) -> bool:
    """Whether the graded folder is the exercise's reference folder (a path only an instructor can give)."""
    if exercise.reference_dir is None:
        return False
    with suppress(OSError):
        return source.resolve() == exercise.reference_dir.resolve()
    return False


def _phases(session: dict[str, Any], checks: list[CheckResult], elapsed: float) -> dict[str, float]:
    phases = {k: round(float(v), 4) for k, v in (session.get("phases") or {}).items()}
    waited = phases.get("worker_wait_s", phases.get("worker_startup_s", 0.0))  # the checks' wait for their worker
    phases["checks_s"] = round(max(sum(c.duration_s for c in checks) - waited, 0.0), 4)
    phases["total_s"] = round(elapsed, 4)
    return phases


def _complete(checks: list[CheckResult], exercise: Exercise, code: int | None, log: str, public_only: bool,
              not_run: dict[str, Any], select: str | None) -> list[CheckResult]:
    """Fail closed: a runner that died or lost checks yields a grader_error, never silence."""
    problem = ""
    if code is None:
        problem = "the check runner exceeded its hard time limit and was killed"
    elif code != 0:
        problem = f"the check runner failed (exit code {code})"
    expected = exercise.points - (float(not_run.get("points", 0.0)) if public_only else 0.0)
    got = sum(c.max_score for c in checks)
    if not problem and not select and abs(got - expected) > 1e-6 and not public_only:
        problem = f"the checks are worth {got:g} points but the exercise declares {expected:g}"
    if not problem and checks:
        return checks
    if not problem:
        problem = "no checks ran"
    status = Status.TIMEOUT if code is None else Status.GRADER_ERROR
    missing = max(expected - got, 0.0)
    return [*checks, CheckResult(
        name="grader", title="grading completed", status=status, score=0.0, max_score=missing,
        # the runner's log may quote hidden checks (even `grader check` collects them, to count their points):
        # reports and results.json give the message only; the log stays in the result for `grader check -v`
        visibility=Visibility.MESSAGE_ONLY,
        message=f"{problem} (a grader problem, not your fault)" if status is Status.GRADER_ERROR else problem,
        output=log if status is Status.GRADER_ERROR else "",
    )]


def _provenance(exercise: Exercise, placement: Placement, seed: int, isolation: dict[str, Any]) -> dict[str, Any]:
    return {
        "grader_version": __version__,
        "python": platform.python_version(),
        "torch": _package_version("torch"),
        "platform": platform.platform(),
        "device": placement.device,
        "profile": placement.profile,
        "profile_note": placement.note,
        "sandbox": isolation.get("backend"),
        "isolation": isolation,
        "seed": seed,
        "exercise": exercise.id,
        "exercise_version": exercise.version,
        "graded_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
