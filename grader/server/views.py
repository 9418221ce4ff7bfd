"""What each reader sees of a graded submission: the JSON and HTML views, shaped by visibility and release.

The worker keeps the whole result (``grade.json``: every check with its message, output and details) next
to the public results.json.  Views are cut from it at request time, so changing the release time or the
``after_release`` choice applies to results already graded.

* an instructor sees every check in full;
* a student, before release, sees public checks in full, ``message-only`` checks as status and message,
  and ``hidden`` checks only counted (their number and points);
* after release, ``after_release`` decides: ``full`` (everything), ``message-only`` (hidden checks become
  message-only), or ``unchanged``.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from grader.errors import GraderError
from grader.models import CheckResult, Exercise, GradeResult, Status, Visibility
from grader.policies import ClassPolicy, parse_time

DOCUMENT = "grade.json"
AFTER_RELEASE = ("full", "message-only", "unchanged")


def write_document(result: GradeResult, out_dir: Path) -> Path:
    """The whole result, for the views (never served as is to a student)."""
    doc = {
        "exercise": result.exercise.id, "submission": result.submission, "mode": result.mode,
        "checks": [c.as_dict() for c in result.checks], "provenance": result.provenance,
        "execution_time_s": result.execution_time_s, "phases": result.phases, "not_run": result.not_run,
        "not_run_points": result.not_run_points, "stderr_tail": result.stderr_tail, "note": result.note,
    }
    path = out_dir / DOCUMENT
    path.write_text(json.dumps(doc, default=str), encoding="utf-8")
    return path


def read_document(result_dir: Path, exercise: Exercise) -> GradeResult:
    doc = json.loads((result_dir / DOCUMENT).read_text(encoding="utf-8"))
    return GradeResult(
        exercise=exercise, submission=doc["submission"], mode=doc["mode"],
        checks=tuple(CheckResult.from_dict(c) for c in doc["checks"]), provenance=doc["provenance"],
        execution_time_s=float(doc["execution_time_s"]), phases=doc["phases"], not_run=int(doc["not_run"]),
        not_run_points=float(doc["not_run_points"]), stderr_tail=doc["stderr_tail"], note=doc["note"],
    )


@dataclass(frozen=True)
class Release:
    """When hidden checks are released, per exercise, and what students see then."""

    times: dict[str, datetime]
    after_release: str = "full"

    @classmethod
    def from_policy(cls, policy: ClassPolicy) -> Release:
        times = {str(k): parse_time(v, f"[release] {k}") for k, v in policy.options.get("release", {}).items()}
        after = str(policy.options.get("visibility", {}).get("after_release", "full"))
        if after not in AFTER_RELEASE:
            raise GraderError(f"[visibility] after_release must be one of {', '.join(AFTER_RELEASE)}, got {after!r}")
        return cls(times, after)

    def released(self, exercise: str, at: datetime) -> bool:
        when = self.times.get(exercise, self.times.get("*"))
        return when is not None and at >= when


def _shown_as(check: CheckResult, instructor: bool, released: bool, after_release: str) -> Visibility:
    if instructor or (released and after_release == "full"):
        return Visibility.PUBLIC
    if released and after_release == "message-only" and check.visibility is Visibility.HIDDEN:
        return Visibility.MESSAGE_ONLY
    return check.visibility


def shape(result: GradeResult, instructor: bool, released: bool, after_release: str) -> GradeResult:
    """The result as this reader may see it: hidden checks stripped to their counts and points."""
    checks = []
    for i, check in enumerate(result.checks):
        shown = _shown_as(check, instructor, released, after_release)
        if shown is Visibility.HIDDEN:
            check = CheckResult(name=f"hidden-{i}", title="hidden check", status=check.status, score=check.score,
                                max_score=check.max_score, visibility=shown)
        elif shown is Visibility.MESSAGE_ONLY or (check.status is Status.GRADER_ERROR and not instructor):
            # a grader error's output is the grader's own traceback: for the instructor, not the student
            check = replace(check, output="", details={}, visibility=Visibility.MESSAGE_ONLY)
        else:
            check = replace(check, visibility=shown)
        checks.append(check)
    return replace(result, checks=tuple(checks))


def checks_json(result: GradeResult) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(shown checks, hidden summary) for the API, from a shaped result."""
    shown: list[dict[str, Any]] = []
    secret = [c for c in result.checks if c.visibility is Visibility.HIDDEN]
    hidden = {"count": len(secret), "score": round(sum(c.score for c in secret), 6),
              "max_score": round(sum(c.max_score for c in secret), 6)}
    for c in result.checks:
        if c.visibility is Visibility.HIDDEN:
            continue
        entry: dict[str, Any] = {"title": c.title, "status": c.status.value, "score": c.score, "max_score": c.max_score,
                 "visibility": c.visibility.value, "message": c.message}
        if c.visibility is Visibility.PUBLIC:
            entry |= {"name": c.name, "output": c.output, "details": c.details}
        shown.append(entry)
    return shown, hidden


def leaderboards(service: Any, me: str | None, exercise: str | None = None) -> list[dict[str, Any]]:
    """Each leaderboard of the exercises graded here: every student's best attempt, best first, as ``me`` may
    see it (their own name, pseudonyms for the others; None: an instructor, who sees every name)."""
    import hashlib
    import hmac
    from collections import defaultdict

    from grader.reports import leaderboard

    key = hmac.new(service.secret, b"leaderboard pseudonyms", hashlib.sha256).hexdigest()
    attempts: dict[str, list[Any]] = defaultdict(list)
    for row in service.store.listing(exercise=exercise, limit=1_000_000):
        if row["state"] != "done" or row["status"] == "grader_error" or not row["result_dir"] \
                or row["exercise"] not in service.registries.exercises:
            continue
        ex = service.registries.exercises.get(row["exercise"])
        board = _board(row["result_dir"], ex) if ex.leaderboard else []
        if board:
            attempts[ex.id].append((row["student"], row["finished_at"] or row["received_at"], board))
    boards = []
    for ex_id, tried in sorted(attempts.items()):
        for entry in service.registries.exercises.get(ex_id).leaderboard:
            rows = leaderboard.rank(tried, entry["name"], key, me=me, reveal=me is None)
            boards.append({"exercise": ex_id, "name": entry["name"], "order": entry["order"],
                           "rows": [{"rank": r.rank, "who": r.who, "value": r.value, "mine": r.mine} for r in rows]})
    return boards


@functools.lru_cache(maxsize=65536)
def _board(result_dir: str, exercise: Exercise) -> list[dict[str, Any]]:
    """A graded submission's leaderboard array (its document never changes once written)."""
    from grader.reports import leaderboard

    try:
        return leaderboard.entries(exercise, read_document(Path(result_dir), exercise).checks)
    except (OSError, ValueError, KeyError):
        return []
