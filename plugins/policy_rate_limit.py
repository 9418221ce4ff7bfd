"""Submission rate limit: at most N distinct submissions of an exercise per student within a window.

Class file::

    [rate_limit]
    max_submissions = 3   # distinct submissions graded ...
    per_hours = 24        # ... within this many hours; more are refused (not graded, not scored)

A refused submission leaves the student's published grade as it was and is logged as an event.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from grader import hookimpl
from grader.errors import GraderError
from grader.policies import JobInfo, PolicyBase, PolicyRegistry


def _options(options: dict[str, Any]) -> tuple[int, timedelta]:
    try:
        return int(options.get("max_submissions", 0)), timedelta(hours=float(options.get("per_hours", 24)))
    except (TypeError, ValueError):
        raise GraderError("[rate_limit] max_submissions and per_hours must be numbers") from None


class RateLimit(PolicyBase):
    name = "rate_limit"

    @staticmethod
    def _recent(job: JobInfo, window: timedelta) -> list[datetime]:
        return sorted(t for t in job.earlier if job.submitted_at - window <= t <= job.submitted_at)

    def admit(self, job: JobInfo, options: dict[str, Any]) -> str:
        limit, window = _options(options)
        if limit <= 0:
            return ""
        recent = self._recent(job, window)
        if len(recent) < limit:
            return ""
        return (f"{len(recent)} submission(s) of {job.exercise} already graded within "
                f"{window.total_seconds() / 3600:g} h (limit {limit}); this one is not graded")

    def next_allowed(self, job: JobInfo, options: dict[str, Any]) -> datetime | None:
        """When a refused job would be admitted: once the oldest submission in the window leaves it."""
        limit, window = _options(options)
        recent = self._recent(job, window)
        if limit <= 0 or len(recent) < limit:
            return None
        return recent[len(recent) - limit] + window

    def adjust(self, job: JobInfo, score: float, max_score: float, options: dict[str, Any]) -> tuple[float, str]:
        return score, ""


@hookimpl
def grader_register_policies(registry: PolicyRegistry) -> None:
    registry.add(RateLimit())
