"""Grading a whole class: one job per (student, exercise), run in parallel, recorded in the gradebook.

Each job is ``grader.api.grade`` into a private staging folder; its files are then renamed into
``OUT/<student>/<exercise>/`` and only after that is the run recorded, in one transaction.  A batch
killed at any point therefore resumes cleanly: a job with a recorded (not ``grader_error``) run of the
same submission and exercise version is skipped, and anything else is graded again and overwritten.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from grader import __version__, api, hookimpl
from grader.checks import warm
from grader.config import Settings
from grader.errors import GraderError
from grader.fs import PYCACHE, Lock, files_under
from grader.gradebook import Gradebook, Run, now
from grader.models import Exercise, GradeResult
from grader.plugins import Registries, make_plugin_manager

STAGING = ".staging"


@dataclass(frozen=True)
class Job:
    """One (student, exercise) to grade; plain data so it can travel to a Ray worker as JSON."""

    student: str
    exercise_id: str
    path: str
    digest: str
    submitted_at: str
    exercise_version: str
    checks_hash: str
    exercise_folder: str
    reference_dir: str | None
    gpus: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.student}/{self.exercise_id}"


@dataclass(frozen=True)
class Outcome:
    """What grading a job produced (plain data, JSON across processes)."""

    status: str
    score: float = 0.0
    max_score: float = 0.0
    profile: str = ""
    sandbox: str = ""
    started_at: str = ""
    finished_at: str = ""
    result_dir: str = ""
    results_sha256: str = ""
    error: str = ""
    seconds: float = 0.0
    worker: str = ""  # where it ran, when not this process (a Ray node)


def checks_hash(exercise: Exercise) -> str:
    """Fingerprint of everything that decides a grade besides the submission: checks and reference."""
    h = hashlib.sha256()
    for root in (exercise.checks_dir, exercise.reference_dir):
        if root is None or not root.is_dir():
            continue
        for path in files_under(root, PYCACHE):
            h.update(f"{root.name}/{path.relative_to(root).as_posix()}".encode() + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:16]


def gpus_for(exercise: Exercise, settings: Settings) -> float:
    wants = exercise.device == "gpu" or (settings.profile == "gpu" and exercise.device == "gpu-optional")
    return 1.0 if wants else 0.0


def make_job(exercise: Exercise, settings: Settings, student: str, path: Path, digest: str, submitted_at: str,
             fingerprints: dict[str, str]) -> Job:
    if exercise.id not in fingerprints:
        fingerprints[exercise.id] = checks_hash(exercise)
    return Job(student, exercise.id, str(path), digest, submitted_at, exercise.version, fingerprints[exercise.id],
               str(exercise.checks_dir.parent), str(exercise.reference_dir) if exercise.reference_dir else None,
               gpus_for(exercise, settings))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def move_into_place(staging: Path, final: Path) -> None:
    """Rename every file of ``staging`` into ``final`` (each rename atomic); results.json goes last."""
    final.mkdir(parents=True, exist_ok=True)
    for path in sorted(staging.iterdir(), key=lambda p: p.name == "results.json"):
        os.replace(path, final / path.name)


def grade_job(registries: Registries, job: Job, settings: Settings, out_root: Path, final: Path | None = None,
              keep: Callable[[GradeResult, Path], object] | None = None) -> Outcome:
    """Grade one job into ``final`` (default ``out_root/<student>/<exercise>/``); never raises for a broken
    submission.  ``keep(result, staging)`` may add files of its own before they move into place."""
    started, clock = now(), time.perf_counter()
    staging = out_root / STAGING / uuid.uuid4().hex
    try:
        result = api.grade(registries, job.exercise_id, Path(job.path), settings, out_dir=staging)
        if keep is not None:
            keep(result, staging)
        final = final or out_root / job.student / job.exercise_id
        move_into_place(staging, final)
        return Outcome(
            status=result.status.value, score=result.score, max_score=result.max_score,
            profile=str(result.provenance.get("profile", "")), sandbox=str(result.provenance.get("sandbox", "")),
            started_at=started, finished_at=now(), result_dir=str(final),
            results_sha256=_sha256(final / "results.json"), seconds=time.perf_counter() - clock,
        )
    except Exception as exc:  # a grader failure on one job must not stop the class: it is retried next run
        return Outcome(status="grader_error", started_at=started, finished_at=now(),
                       error=f"{type(exc).__name__}: {exc}", seconds=time.perf_counter() - clock)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class _FolderPlugin:
    """Registers one exercise folder in a fresh process (a Ray worker) unless a plugin already did."""

    def __init__(self, folder: str, reference: str | None) -> None:
        self.folder, self.reference = Path(folder), Path(reference) if reference else None

    @hookimpl
    def grader_register_exercises(self, registry: Any) -> None:
        from grader.registry import load_exercise

        exercise = load_exercise(self.folder, self.reference, source="batch")
        if exercise.id not in registry:
            registry.add(exercise)


_WORKER_REGISTRIES: dict[tuple[str, str | None], Registries] = {}


def run_job(data: dict[str, Any]) -> Outcome:
    """Grade a job described by decoded JSON in a process of its own (a Ray task).

    The worker rebuilds its registries from the installed plugins plus the job's exercise folder.  The
    payload may name the ``final`` folder and a ``keep`` function (``"module:function"``, see
    :func:`grade_job`), which is how a server's gradings keep their document when they run on Ray.
    """
    job = Job(**data["job"])
    key = (job.exercise_folder, job.reference_dir)
    if key not in _WORKER_REGISTRIES:
        plugin = _FolderPlugin(job.exercise_folder, job.reference_dir)
        _WORKER_REGISTRIES[key] = Registries.collect(make_plugin_manager(extra=(plugin,)))
    settings = Settings.load({k: v for k, v in data["settings"].items() if v is not None})
    keep = _named_function(data["keep"]) if data.get("keep") else None
    final = Path(data["final"]) if data.get("final") else None
    return grade_job(_WORKER_REGISTRIES[key], job, settings, Path(data["out_root"]), final=final, keep=keep)


def _named_function(name: str) -> Callable[[GradeResult, Path], object]:
    module, _, attr = name.partition(":")
    function = getattr(importlib.import_module(module), attr)
    assert callable(function), name
    return function  # type: ignore[no-any-return]


def settings_dict(settings: Settings) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()}


class Executor(Protocol):
    """Runs jobs and yields each (job, outcome) as it finishes, in the caller's thread."""

    name: str

    def run(self, jobs: list[Job], out_root: Path, tick: Callable[[], None] = lambda: None
            ) -> Iterator[tuple[Job, Outcome]]:
        """Grade ``jobs``; ``tick`` is called about twice a second meanwhile (a progress bar's clock)."""


@dataclass
class LocalExecutor:
    """A thread pool: each job runs in its own runner (a warm fork, see :mod:`grader.checks.warm`) and sandbox."""

    registries: Registries
    settings: Settings
    workers: int = 1
    name: str = "local"

    def run(self, jobs: list[Job], out_root: Path, tick: Callable[[], None] = lambda: None
            ) -> Iterator[tuple[Job, Outcome]]:
        from grader.engine.core import sharing_cores

        with warm.pool(max(self.workers, 1), enabled=self.settings.warm and len(jobs) > 1), \
                sharing_cores(min(max(self.workers, 1), len(jobs))), \
                ThreadPoolExecutor(max_workers=max(self.workers, 1), thread_name_prefix="grader-job") as pool:
            pending: dict[Future[Outcome], Job] = {
                pool.submit(grade_job, self.registries, job, self.settings, out_root): job for job in jobs}
            try:
                while pending:
                    done, _ = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    tick()
                    for future in done:
                        yield pending.pop(future), future.result()
            finally:
                for future in pending:
                    future.cancel()


class BatchLock:
    """One writer per output folder; the lock goes away with the process, even after kill -9."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir, self.lock = out_dir, Lock(out_dir / ".batch.lock")

    def __enter__(self) -> BatchLock:
        if not self.lock.acquire(wait=False):
            raise GraderError(f"another grader batch or regrade is writing to {self.out_dir}; wait for it to finish")
        return self

    def __exit__(self, *exc: object) -> None:
        self.lock.release()


def run_record(job: Job, outcome: Outcome, kind: str, final_score: float, note: str) -> Run:
    return Run(
        student=job.student, exercise=job.exercise_id, submission_path=job.path, submission_hash=job.digest,
        exercise_version=job.exercise_version, checks_hash=job.checks_hash, grader_version=__version__,
        profile=outcome.profile, sandbox=outcome.sandbox, status=outcome.status, score=outcome.score,
        max_score=outcome.max_score, final_score=final_score, started_at=outcome.started_at,
        finished_at=outcome.finished_at, result_dir=outcome.result_dir, results_sha256=outcome.results_sha256,
        kind=kind, policy_note=note, submitted_at=job.submitted_at, error=outcome.error,
    )


def clear_staging(out_root: Path) -> None:
    shutil.rmtree(out_root / STAGING, ignore_errors=True)


def only_new(gradebook: Gradebook, jobs: Iterable[Job], checks: bool = False) -> tuple[list[Job], list[Job]]:
    """Split jobs into (to grade, already finished); ``checks`` also requires the same checks fingerprint."""
    todo: list[Job] = []
    done: list[Job] = []
    for job in jobs:
        row = gradebook.finished(job.student, job.exercise_id, job.digest, job.exercise_version,
                                 job.checks_hash if checks else None)
        (done if row is not None else todo).append(job)
    return todo, done


def with_gpus(jobs: list[Job], available: float) -> list[Job]:
    """Drop GPU requests a cluster cannot satisfy: the job then says 'needs GPU' instead of waiting forever."""
    return jobs if available > 0 else [replace(j, gpus=0.0) for j in jobs]
