"""Submission rate limit: at most N distinct submissions of an exercise per student within a window.

Class file::

    [rate_limit]
    max_submissions = 3   # distinct submissions graded ...
    per_hours = 24        # ... within this many hours; more are refused (not graded, not scored)

A refused submission leaves the student's published grade as it was and is logged as an event.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from grader import hookimpl
from grader.errors import GraderError
from grader.policies import JobInfo, PolicyRegistry


class RateLimit:
    name = "rate_limit"

    def admit(self, job: JobInfo, options: dict[str, Any]) -> str:
        try:
            limit = int(options.get("max_submissions", 0))
            window = timedelta(hours=float(options.get("per_hours", 24)))
        except (TypeError, ValueError):
            raise GraderError("[rate_limit] max_submissions and per_hours must be numbers") from None
        if limit <= 0:
            return ""
        recent = [t for t in job.earlier if job.submitted_at - window <= t <= job.submitted_at]
        if len(recent) < limit:
            return ""
        return (f"{len(recent)} submission(s) of {job.exercise} already graded within "
                f"{window.total_seconds() / 3600:g} h (limit {limit}); this one is not graded")

    def adjust(self, job: JobInfo, score: float, max_score: float, options: dict[str, Any]) -> tuple[float, str]:
        return score, ""


@hookimpl
def grader_register_policies(registry: PolicyRegistry) -> None:
    registry.add(RateLimit())
