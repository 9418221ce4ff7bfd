"""results.json: Gradescope's autograder format plus a ``grader`` block with status and provenance."""

from __future__ import annotations

import math
from typing import Any

from grader.models import GradeResult, Visibility
from grader.reports import leaderboard


def _output(check: Any) -> str:
    parts = [f"[{check.status.value}] {check.message}".strip()]
    if check.visibility is Visibility.PUBLIC and check.output and check.output != check.message:
        parts.append(check.output)
    return "\n".join(parts)


def jsonable(value: Any) -> Any:
    """Strict-JSON-safe copy: non-finite floats become strings ("inf", "nan")."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def to_results_json(result: GradeResult) -> dict[str, Any]:
    """The results.json document for one graded submission."""
    return jsonable({
        "score": result.score,
        "max_score": result.max_score,
        "execution_time": round(result.execution_time_s, 3),
        "output": result.note or f"{result.exercise.title}: {result.score:g}/{result.max_score:g}",
        "visibility": "visible",
        "tests": [
            {
                "name": c.title,
                "number": c.name,
                "score": c.score,
                "max_score": c.max_score,
                "status": "passed" if c.status.value == "pass" else "failed",
                "output": _output(c),
                "visibility": c.visibility.gradescope,
                "extra_data": {"status": c.status.value, "visibility": c.visibility.value,
                               # message-only checks show students their status and message, nothing more
                               "details": {} if c.visibility is Visibility.MESSAGE_ONLY else c.details,
                               "duration_s": round(c.duration_s, 4)},
            }
            for c in result.checks
        ],
        **({"leaderboard": board} if (board := leaderboard.entries(result.exercise, result.checks)) else {}),
        "grader": {
            "status": result.status.value,
            "mode": result.mode,
            "submission": result.submission,
            "exercise": result.exercise.id,
            "not_run": {"count": result.not_run, "points": result.not_run_points},
            "phases": result.phases,
            "provenance": result.provenance,
            "student_output": result.stderr_tail,
        },
    })
