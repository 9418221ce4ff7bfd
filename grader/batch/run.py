"""Planning and running a batch: roster -> jobs -> policies -> executor -> gradebook.

Kept apart from :mod:`grader.batch.jobs` (jobs and executors) so regrades reuse the same recording path.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from grader import policies as pol
from grader.batch.jobs import (
    BatchLock,
    Executor,
    Job,
    LocalExecutor,
    Outcome,
    clear_staging,
    make_job,
    only_new,
    run_record,
)
from grader.batch.roster import discover, extract_class_archive, roster_root
from grader.config import Settings
from grader.engine.core import choose_sandbox
from grader.gradebook import Gradebook
from grader.plugins import Registries


class Progress(Protocol):
    def start(self, total: int, skipped: int, refused: int) -> None: ...

    def done(self, job: Job, outcome: Outcome) -> None: ...

    def tick(self) -> None: ...

    def finish(self) -> None: ...


class SilentProgress:
    def start(self, total: int, skipped: int, refused: int) -> None: ...

    def done(self, job: Job, outcome: Outcome) -> None: ...

    def tick(self) -> None: ...

    def finish(self) -> None: ...


@dataclass
class Summary:
    total: int = 0
    graded: int = 0
    failed: int = 0  # grader_error: retried on the next run
    skipped: int = 0  # already graded, same submission and exercise version
    refused: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    run_ids: list[int] = field(default_factory=list)
    where: dict[str, int] = field(default_factory=dict)  # jobs per machine, when they ran elsewhere (Ray nodes)


@dataclass
class PolicyContext:
    policies: list[Any]
    config: pol.ClassPolicy

    @classmethod
    def load(cls, registries: Registries, gradebook: Gradebook, path: Path | None) -> PolicyContext:
        """The class file given now, else the one this gradebook was first graded with."""
        if path is not None:
            config = pol.ClassPolicy.load(path)
            gradebook.set_meta("policies", {**config.source, "submission_times": str(
                (path.parent / config.source["submission_times"]).resolve()) if config.source.get(
                "submission_times") else ""})
        else:
            config = pol.ClassPolicy.from_dict(gradebook.get_meta("policies", {}) or {})
        return cls(list(registries.policies), config)

    def info(self, gradebook: Gradebook, job: Job) -> pol.JobInfo:
        earlier = tuple(
            pol.parse_time(r["submitted_at"] or r["started_at"], job.label)
            for r in gradebook.submissions_of(job.student, job.exercise_id) if r["submission_hash"] != job.digest)
        return pol.JobInfo(job.student, job.exercise_id,
                           self.config.submitted_at(job.student, job.exercise_id, job.submitted_at),
                           self.config.deadline(job.exercise_id), earlier)


def plan(registries: Registries, source: Path, out_dir: Path, settings: Settings,
         exercises: Iterable[str] = ()) -> tuple[list[Job], list[str]]:
    """Every job in a roster folder or class zip (unpacked into ``out_dir/.roster``)."""
    only = set(exercises)
    for ex in only:
        registries.exercises.get(ex)  # unknown ids fail here, with the known ones listed
    known = {e.id for e in registries.exercises}
    folder = extract_class_archive(source, out_dir) if source.is_file() and source.suffix == ".zip" else source
    subs, notes = discover(roster_root(folder, known), known, only or None)
    fingerprints: dict[str, str] = {}
    jobs = [make_job(registries.exercises.get(s.exercise_id), settings, s.student, s.path, s.digest,
                     s.submitted_at, fingerprints) for s in subs]
    return jobs, notes


def execute(gradebook: Gradebook, executor: Executor, jobs: list[Job], out_root: Path, ctx: PolicyContext,
            progress: Progress, kind: str, publish: bool, summary: Summary) -> Summary:
    """Run ``jobs`` and record each outcome as it arrives (this thread is the only gradebook writer)."""
    clear_staging(out_root)
    for job, outcome in executor.run(jobs, out_root, progress.tick):
        if outcome.result_dir:  # stored relative to the gradebook, so a results folder can be moved
            outcome = replace(outcome, result_dir=os.path.relpath(outcome.result_dir, gradebook.path.parent))
        final, note = outcome.score, ""
        if outcome.status != "grader_error":
            final, note = pol.adjust(ctx.policies, ctx.config, ctx.info(gradebook, job), outcome.score,
                                     outcome.max_score)
        summary.run_ids.append(gradebook.record(run_record(job, outcome, kind, final, note), publish=publish))
        if outcome.worker:
            summary.where[outcome.worker] = summary.where.get(outcome.worker, 0) + 1
        if outcome.status == "grader_error":
            summary.failed += 1
        else:
            summary.graded += 1
        progress.done(job, outcome)
    clear_staging(out_root)
    return summary


def admit(gradebook: Gradebook, ctx: PolicyContext, jobs: list[Job], summary: Summary) -> list[Job]:
    keep = []
    for job in jobs:
        reason = pol.admit(ctx.policies, ctx.config, ctx.info(gradebook, job))
        if reason:
            gradebook.event(job.student, job.exercise_id, "refused", reason)
            summary.refused.append(f"{job.label}: {reason}")
        else:
            keep.append(job)
    return keep


def run_batch(registries: Registries, source: Path, out_dir: Path, settings: Settings, *,
              exercises: Iterable[str] = (), executor: Executor | None = None, workers: int = 1,
              policies_file: Path | None = None, progress: Progress | None = None) -> Summary:
    """Grade every submission in ``source`` that this gradebook has not graded yet."""
    progress = progress or SilentProgress()
    choose_sandbox(registries, settings.sandbox)  # fail once, up front, not once per job
    with BatchLock(out_dir), Gradebook.open(out_dir) as gradebook:
        jobs, notes = plan(registries, source, out_dir, settings, exercises)
        summary = Summary(total=len(jobs), notes=notes)
        ctx = PolicyContext.load(registries, gradebook, policies_file)
        todo, done = only_new(gradebook, jobs)
        summary.skipped = len(done)
        todo = admit(gradebook, ctx, todo, summary)
        executor = executor or LocalExecutor(registries, settings, workers)
        progress.start(len(jobs), summary.skipped, len(summary.refused))
        try:
            execute(gradebook, executor, todo, out_dir, ctx, progress, "batch", True, summary)
        finally:
            progress.finish()
    return summary
