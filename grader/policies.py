"""Course policies (late penalty, submission rate limits) as plugins, configured by a class TOML file.

A policy is an object with a ``name`` and two methods, registered through
:func:`grader.hookspecs.grader_register_policies`:

* ``admit(job, options) -> str``: ``""`` to grade the job, or the reason it is refused;
* ``adjust(job, score, max_score, options) -> tuple[float, str]``: the score that counts, and a note;
* optionally ``next_allowed(job, options) -> datetime | None``: when a refused job would be admitted
  (the grading server shows it to the student and sends it as ``Retry-After``).

``options`` is the policy's own table in the class file (``[late_penalty]``...); a policy whose table is
absent does nothing.  Raw scores stay in results.json exactly as ``grader grade`` writes them; the
adjusted score is what the gradebook publishes and what exports send to the LMS.
"""

from __future__ import annotations

import csv
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pluggy

from grader.errors import GraderError
from grader.registry import Registry


@dataclass(frozen=True)
class JobInfo:
    """What a policy may look at: who, what, when, and that student's earlier submissions."""

    student: str
    exercise: str
    submitted_at: datetime
    deadline: datetime | None = None
    earlier: tuple[datetime, ...] = ()  # when earlier distinct submissions of this exercise were made


@runtime_checkable
class Policy(Protocol):
    """A course policy; ``options`` is its table in the class file (it takes part only when that is present)."""

    name: str

    def admit(self, job: JobInfo, options: dict[str, Any]) -> str:
        """``""``, or why ``job`` is not graded."""

    def next_allowed(self, job: JobInfo, options: dict[str, Any]) -> datetime | None:
        """For a job :meth:`admit` refused: when one would be admitted (None: not by waiting)."""

    def adjust(self, job: JobInfo, score: float, max_score: float, options: dict[str, Any]) -> tuple[float, str]:
        """The published score and a note saying why it differs (``""`` when it does not)."""


class PolicyBase:
    """A policy's defaults (admit everything, refuse nobody by time, change no score): override what you use."""

    name: str = ""

    def admit(self, job: JobInfo, options: dict[str, Any]) -> str:
        return ""

    def next_allowed(self, job: JobInfo, options: dict[str, Any]) -> datetime | None:
        return None

    def adjust(self, job: JobInfo, score: float, max_score: float, options: dict[str, Any]) -> tuple[float, str]:
        return score, ""


class _Completed(PolicyBase):
    """A policy written without :class:`PolicyBase`, completed with its defaults when it is registered."""

    def __init__(self, policy: Any) -> None:
        self.policy, self.name = policy, str(policy.name)

    def admit(self, job: JobInfo, options: dict[str, Any]) -> str:
        own = getattr(self.policy, "admit", None)
        return str(own(job, options)) if own is not None else ""

    def next_allowed(self, job: JobInfo, options: dict[str, Any]) -> datetime | None:
        own = getattr(self.policy, "next_allowed", None)
        return own(job, options) if own is not None else None

    def adjust(self, job: JobInfo, score: float, max_score: float, options: dict[str, Any]) -> tuple[float, str]:
        own = getattr(self.policy, "adjust", None)
        return tuple(own(job, score, max_score, options)) if own is not None else (score, "")  # type: ignore


class PolicyRegistry(Registry[Policy]):
    """Course policies, each with every part of :class:`Policy` (defaults filled in)."""

    kind = "policy"

    def add(self, item: Any) -> None:
        super().add(item if isinstance(item, PolicyBase) else _Completed(item))


def collect(pm: pluggy.PluginManager) -> PolicyRegistry:
    """The policies ``pm``'s plugins register (also :attr:`grader.plugins.Registries.policies`)."""
    registry = PolicyRegistry()
    pm.hook.grader_register_policies(registry=registry)
    return registry


def parse_time(value: Any, where: str) -> datetime:
    if isinstance(value, datetime):
        stamp = value
    else:
        try:
            stamp = datetime.fromisoformat(str(value))
        except ValueError:
            raise GraderError(f"{where}: {value!r} is not an ISO 8601 time (e.g. 2026-03-01T23:59:00+00:00)") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


@dataclass
class ClassPolicy:
    """The class file: deadlines, each policy's options, optional submission times."""

    deadlines: dict[str, datetime] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    times: dict[tuple[str, str], datetime] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path | None) -> ClassPolicy:
        if path is None:
            return cls()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise GraderError(f"{path}: {exc}") from None
        return cls.from_dict(data, base=path.parent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], base: Path | None = None) -> ClassPolicy:
        deadlines = {str(k): parse_time(v, f"[deadlines] {k}") for k, v in data.get("deadlines", {}).items()}
        options = {k: dict(v) for k, v in data.items() if isinstance(v, dict) and k not in ("deadlines",)}
        times: dict[tuple[str, str], datetime] = {}
        times_file = data.get("submission_times")
        if times_file:
            times_path = Path(times_file) if base is None else base / times_file
            times = _read_times(times_path)
        return cls(deadlines, options, times, {**data, "submission_times": str(times_file or "")})

    def deadline(self, exercise: str) -> datetime | None:
        return self.deadlines.get(exercise, self.deadlines.get("*"))

    def submitted_at(self, student: str, exercise: str, fallback: str) -> datetime:
        return self.times.get((student, exercise)) or parse_time(fallback, f"{student}/{exercise}")


def _read_times(path: Path) -> dict[tuple[str, str], datetime]:
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as exc:
        raise GraderError(f"submission_times: {exc}") from None
    try:
        return {(r["student"], r["exercise"]): parse_time(r["submitted_at"], str(path)) for r in rows}
    except KeyError as exc:
        raise GraderError(f"{path}: needs the columns student, exercise, submitted_at (missing {exc})") from None


def admit(policies: Iterable[Policy], policy: ClassPolicy, job: JobInfo) -> str:
    """The first refusal of any active policy, or ``""``."""
    for p in policies:
        if p.name in policy.options:
            reason = str(p.admit(job, policy.options[p.name]))
            if reason:
                return f"{p.name}: {reason}"
    return ""


def next_allowed(policies: Iterable[Policy], policy: ClassPolicy, job: JobInfo) -> datetime | None:
    """The latest time any active policy names for admitting a refused job, if any does."""
    times = [p.next_allowed(job, policy.options[p.name]) for p in policies if p.name in policy.options]
    return max((t for t in times if t is not None), default=None)


def adjust(policies: Iterable[Policy], policy: ClassPolicy, job: JobInfo, score: float,
           max_score: float) -> tuple[float, str]:
    """Apply every active policy in turn; notes are joined with ``; ``."""
    notes = []
    for p in policies:
        if p.name in policy.options:
            score, note = p.adjust(job, score, max_score, policy.options[p.name])
            if note:
                notes.append(note)
    return round(max(score, 0.0), 6), "; ".join(notes)
