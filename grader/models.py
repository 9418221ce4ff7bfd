"""Frozen data the grader passes around: exercises, check results, grade results."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class Status(enum.StrEnum):
    """The one status vocabulary, for every check and every grade."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    TIMEOUT = "timeout"
    OOM = "oom"
    GRADER_ERROR = "grader_error"

    @property
    def severity(self) -> int:
        return _SEVERITY[self]

    @classmethod
    def worst(cls, statuses: list[Status]) -> Status:
        return max(statuses, key=lambda s: s.severity, default=cls.PASS)


_SEVERITY = {
    Status.PASS: 0,
    Status.FAIL: 1,
    Status.ERROR: 2,
    Status.TIMEOUT: 3,
    Status.OOM: 4,
    Status.GRADER_ERROR: 5,
}


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    HIDDEN = "hidden"
    MESSAGE_ONLY = "message-only"

    @property
    def gradescope(self) -> str:
        """Gradescope's visibility: message-only checks are visible, with only status and message."""
        return "after_published" if self is Visibility.HIDDEN else "visible"


@dataclass(frozen=True)
class Exercise:
    """One exercise: metadata plus where its stub, checks and (hidden) reference live."""

    id: str
    title: str
    level: str
    points: float
    stub_dir: Path
    checks_dir: Path
    reference_dir: Path | None = None
    version: str = "1"
    device: str = "cpu"
    roadmap: int | None = None
    summary: str = ""
    check_timeout_s: float = 60.0
    import_timeout_s: float = 60.0
    submission_timeout_s: float = 600.0
    memory_mb: int = 3072
    #: the worker's torch/OpenMP threads; 0: the grader's ``threads`` setting (an exercise may only lower it)
    threads: int = 0
    source: str = "builtin"
    #: named course assets the checks use (see grader.assets), mounted read-only in the sandbox
    assets: tuple[str, ...] = ()
    #: targets per profile, from ``[profiles.cpu]`` / ``[profiles.gpu]`` in exercise.toml
    profiles: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False, compare=False)
    #: ``[[leaderboard]]`` entries: name, check, value (a dotted path into what the check records), order
    leaderboard: tuple[Mapping[str, str], ...] = field(default=(), hash=False, compare=False)

    @property
    def public_checks(self) -> Path:
        return self.checks_dir / "public"

    @property
    def hidden_checks(self) -> Path:
        return self.checks_dir / "hidden"

    def summary_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "level": self.level,
            "points": self.points,
            "device": self.device,
            "version": self.version,
            "roadmap": self.roadmap,
            "source": self.source,
            "summary": self.summary,
            "assets": list(self.assets),
        }

    def targets(self, profile: str) -> dict[str, Any]:
        """The targets of ``profile``; the ``cpu`` ones when the exercise declares no such profile."""
        return dict(self.profiles.get(profile) or self.profiles.get("cpu") or {})


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    title: str
    status: Status
    score: float
    max_score: float
    visibility: Visibility
    message: str = ""
    output: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status.value,
            "score": self.score,
            "max_score": self.max_score,
            "visibility": self.visibility.value,
            "message": self.message,
            "output": self.output,
            "details": self.details,
            "duration_s": round(self.duration_s, 4),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckResult:
        return cls(
            name=str(data["name"]),
            title=str(data.get("title", "")),
            status=Status(data["status"]),
            score=float(data["score"]),
            max_score=float(data["max_score"]),
            visibility=Visibility(data["visibility"]),
            message=str(data.get("message", "")),
            output=str(data.get("output", "")),
            details=dict(data.get("details") or {}),
            duration_s=float(data.get("duration_s", 0.0)),
        )


@dataclass(frozen=True)
class GradeResult:
    """Everything known about grading one submission for one exercise."""

    exercise: Exercise
    submission: str
    mode: str  # "grade" (all checks) or "check" (public only)
    checks: tuple[CheckResult, ...]
    provenance: dict[str, Any]
    execution_time_s: float
    phases: dict[str, float] = field(default_factory=dict)
    not_run: int = 0  # hidden checks not run (check mode); -1 when only their points are known
    not_run_points: float = 0.0
    stderr_tail: str = ""
    note: str = ""

    @property
    def score(self) -> float:
        return round(sum(c.score for c in self.checks), 6)

    @property
    def max_score(self) -> float:
        return round(sum(c.max_score for c in self.checks), 6)

    @property
    def status(self) -> Status:
        return Status.worst([c.status for c in self.checks]) if self.checks else Status.GRADER_ERROR
