"""Late penalty: a fraction of the earned score per started day past the deadline, after a grace period, capped.

Class file::

    [deadlines]
    self-attention = 2026-03-01T23:59:00+00:00
    "*" = 2026-03-08T23:59:00+00:00          # any other exercise

    [late_penalty]
    per_day = 0.10        # fraction of the earned score lost per started day late
    grace_minutes = 15    # late by less than this: no penalty
    cap = 0.5             # never lose more than this fraction
"""

from __future__ import annotations

import math
from typing import Any

from grader import hookimpl
from grader.errors import GraderError
from grader.policies import JobInfo, PolicyBase, PolicyRegistry

DAY_S = 86_400.0


def _fraction(options: dict[str, Any], key: str, default: float) -> float:
    value = float(options.get(key, default))
    if not 0.0 <= value <= 1.0:
        raise GraderError(f"[late_penalty] {key} must be a fraction between 0 and 1, got {value}")
    return value


class LatePenalty(PolicyBase):
    name = "late_penalty"

    def admit(self, job: JobInfo, options: dict[str, Any]) -> str:
        return ""

    def adjust(self, job: JobInfo, score: float, max_score: float, options: dict[str, Any]) -> tuple[float, str]:
        if job.deadline is None:
            return score, ""
        per_day = _fraction(options, "per_day", 0.1)
        cap = _fraction(options, "cap", 1.0)
        grace_s = float(options.get("grace_minutes", 0)) * 60.0
        late_s = (job.submitted_at - job.deadline).total_seconds()
        if late_s <= grace_s:
            return score, ""
        days = math.ceil(late_s / DAY_S)
        fraction = min(per_day * days, cap)
        penalised = score * (1.0 - fraction)
        return penalised, (f"late by {late_s / 3600:.1f} h ({days} day{'s' if days > 1 else ''}): "
                           f"-{fraction:.0%} ({score:g} -> {penalised:g})")


@hookimpl
def grader_register_policies(registry: PolicyRegistry) -> None:
    registry.add(LatePenalty())
