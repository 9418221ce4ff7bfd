"""Regrading with the current checks: grade aside, show a per-student diff, publish only when asked.

New results go to ``OUT/.regrade/<student>/<exercise>/`` as *pending* runs.  Publishing copies them
over the published files (each file replaced atomically) and points the grades at them in one
transaction.  A pending run made with the same checks and submission is reused, so ``--publish``
after a dry run does not grade again, and an interrupted regrade resumes where it stopped.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.batch.jobs import BatchLock, Executor, Job, LocalExecutor, make_job
from grader.batch.roster import content_hash
from grader.batch.run import PolicyContext, Progress, SilentProgress, Summary, execute
from grader.config import Settings
from grader.engine.core import choose_sandbox
from grader.gradebook import Gradebook, require
from grader.plugins import Registries

REGRADE_DIR = ".regrade"


@dataclass(frozen=True)
class Change:
    student: str
    exercise: str
    old_score: float
    new_score: float | None  # None: the regrade itself failed (grader_error); the old grade stands
    max_score: float
    old_status: str
    new_status: str
    run_id: int | None

    @property
    def changed(self) -> bool:
        return self.new_score is not None and (
            abs(self.new_score - self.old_score) > 1e-9 or self.new_status != self.old_status)


@dataclass
class RegradeReport:
    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: Summary = field(default_factory=Summary)
    published: int = 0


def _jobs(registries: Registries, gradebook: Gradebook, settings: Settings, exercise: str | None,
          report: RegradeReport) -> tuple[list[Job], dict[tuple[str, str], dict[str, Any]]]:
    jobs, old = [], {}
    fingerprints: dict[str, str] = {}
    for row in gradebook.grades(exercise):
        if row["exercise"] not in registries.exercises:
            report.notes.append(f"{row['student']}/{row['exercise']}: exercise no longer registered, kept as is")
            continue
        path = Path(row["submission_path"])
        if not path.exists():
            report.notes.append(f"{row['student']}/{row['exercise']}: {path} is gone, kept as is")
            continue
        digest = content_hash(path)
        if digest != row["submission_hash"]:
            report.notes.append(f"{row['student']}/{row['exercise']}: {path} changed since it was graded; "
                                "a new submission goes through `grader batch` (and its policies), kept as is")
            continue
        ex = registries.exercises.get(row["exercise"])
        jobs.append(make_job(ex, settings, row["student"], path, digest, row["submitted_at"] or "", fingerprints))
        old[(row["student"], row["exercise"])] = dict(row)
    return jobs, old


def _reusable(gradebook: Gradebook, job: Job) -> int | None:
    for row in gradebook.runs(state="pending", kind="regrade"):
        if (row["student"], row["exercise"], row["submission_hash"], row["checks_hash"], row["exercise_version"]) \
                == (job.student, job.exercise_id, job.digest, job.checks_hash, job.exercise_version):
            return int(row["id"])
    return None


def regrade(registries: Registries, out_dir: Path, settings: Settings, *, exercise: str | None = None,
            publish: bool = False, executor: Executor | None = None, workers: int = 1,
            progress: Progress | None = None) -> RegradeReport:
    """Regrade every published grade (of ``exercise``); publish the new scores only with ``publish``."""
    progress = progress or SilentProgress()
    if exercise:
        registries.exercises.get(exercise)
    choose_sandbox(registries, settings.sandbox)
    report = RegradeReport()
    with BatchLock(out_dir), require(out_dir) as gradebook:
        jobs, old = _jobs(registries, gradebook, settings, exercise, report)
        reuse = {job: _reusable(gradebook, job) for job in jobs}
        stale = [r["id"] for r in gradebook.runs(state="pending", kind="regrade")
                 if r["id"] not in set(reuse.values()) and (not exercise or r["exercise"] == exercise)]
        with gradebook.transaction() as db:
            db.executemany("UPDATE runs SET state = 'discarded' WHERE id = ?", [(i,) for i in stale])
        todo = [job for job, run_id in reuse.items() if run_id is None]
        summary = Summary(total=len(jobs), skipped=len(jobs) - len(todo))
        ctx = PolicyContext.load(registries, gradebook, None)
        executor = executor or LocalExecutor(registries, settings, workers)
        progress.start(len(jobs), summary.skipped, 0)
        try:
            execute(gradebook, executor, todo, out_dir / REGRADE_DIR, ctx, progress, "regrade", False, summary)
        finally:
            progress.finish()
        report.summary = summary
        report.changes = _diff(gradebook, jobs, old)
        if publish:
            report.published = _publish(gradebook, out_dir, report.changes)
    return report


def _diff(gradebook: Gradebook, jobs: Iterable[Job], old: dict[tuple[str, str], dict[str, Any]]) -> list[Change]:
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in gradebook.runs(kind="regrade"):
        if row["state"] in ("pending", "failed"):
            newest[(row["student"], row["exercise"])] = dict(row)
    changes = []
    for job in jobs:
        before = old[(job.student, job.exercise_id)]
        after = newest.get((job.student, job.exercise_id))
        if after is None or after["status"] == "grader_error" or after["state"] != "pending":
            new_score, new_status, run_id = None, "grader_error", None
        else:
            new_score, new_status, run_id = float(after["final_score"]), str(after["status"]), int(after["id"])
        changes.append(Change(job.student, job.exercise_id, float(before["final_score"]), new_score,
                              float(before["max_score"]), str(before["status"]), new_status, run_id))
    return sorted(changes, key=lambda c: (c.student, c.exercise))


def _publish(gradebook: Gradebook, out_dir: Path, changes: list[Change]) -> int:
    """Copy pending results over the published ones, then point the grades at them (one transaction)."""
    ids = [c.run_id for c in changes if c.run_id is not None]
    for change in changes:
        if change.run_id is None:
            continue
        staged = out_dir / REGRADE_DIR / change.student / change.exercise
        final = out_dir / change.student / change.exercise
        final.mkdir(parents=True, exist_ok=True)
        for path in sorted(staged.iterdir(), key=lambda p: p.name == "results.json"):
            tmp = final / f".{path.name}.publish"
            shutil.copyfile(path, tmp)
            os.replace(tmp, final / path.name)
    gradebook.publish(ids, {c.run_id: f"{c.student}/{c.exercise}" for c in changes if c.run_id})
    shutil.rmtree(out_dir / REGRADE_DIR, ignore_errors=True)
    return len(ids)
