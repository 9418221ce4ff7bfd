"""Typed registries that registration hooks fill; duplicate names are errors, never overwrites."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from grader import exercise_spec
from grader.errors import PluginError, UnknownName
from grader.exercise_spec import LEVELS
from grader.models import Exercise
from grader.sandbox import Sandbox, completed

T = TypeVar("T")
__all__ = ["LEVELS", "CommandRegistry", "ExerciseRegistry", "ReporterRegistry", "SandboxRegistry", "load_exercise"]


class Registry(Generic[T]):
    """Named things a registration hook adds (``registry.add(item)``, keyed by ``item.name``)."""

    kind = "item"

    def __init__(self) -> None:
        self._items: dict[str, T] = {}

    def _key(self, item: T) -> str:
        return str(getattr(item, "name"))  # noqa: B009 - registries hold duck-typed plugin objects

    def add(self, item: T) -> None:
        key = self._key(item)
        if key in self._items:
            raise PluginError(f"two plugins register the {self.kind} {key!r}")
        self._items[key] = item

    def get(self, key: str) -> T:
        try:
            return self._items[key]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "none"
            raise UnknownName(f"unknown {self.kind} {key!r} (known: {known})") from None

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)


class SandboxRegistry(Registry[Sandbox]):
    """Sandbox backends, each with every part of :class:`grader.sandbox.Sandbox` (defaults filled in)."""

    kind = "sandbox"

    def add(self, item: Any) -> None:
        super().add(completed(item))


class ReporterRegistry(Registry[Any]):
    kind = "reporter"


class CommandRegistry(Registry[Any]):
    """``grader`` sub-commands from plugins: click commands, keyed by their name."""

    kind = "command"


class ExerciseRegistry(Registry[Exercise]):
    kind = "exercise"

    def __init__(self) -> None:
        super().__init__()
        self.source = "builtin"
        #: exercise id (its folder's name) -> why it could not be loaded
        self.broken: dict[str, str] = {}
        #: exercise id -> the sources of the copies that another, preferred copy hides
        self.shadowed: dict[str, list[str]] = {}
        self._ranks: dict[str, int] = {}

    def _key(self, item: Exercise) -> str:
        return item.id

    def add(self, item: Exercise, rank: int = 0) -> None:
        """Register ``item``; of two with one id, the higher ``rank`` wins (a folder the user named over an
        installed course, an instructor's course over a student's) and the other is kept in :attr:`shadowed`.
        Two of the same rank are an error, as before."""
        old = self._items.get(item.id)
        if old is not None and self._ranks.get(item.id, 0) == rank:
            raise PluginError(f"two plugins register the {self.kind} {item.id!r} ({old.source} and {item.source})")
        if old is None or rank > self._ranks.get(item.id, 0):
            if old is not None:
                self.shadowed.setdefault(item.id, []).append(old.source)
            self._items[item.id] = item
            self._ranks[item.id] = rank
        else:
            self.shadowed.setdefault(item.id, []).append(item.source)

    def add_folder(self, folder: Path, reference: Path | None = None, rank: int = 0) -> Exercise | None:
        """Register the exercise in ``folder`` (``exercise.toml``, ``stub/``, ``checks/``).

        An exercise that breaks the contract (unknown keys, markers that do not add up...) is kept in
        :attr:`broken` with the reason, and ``None`` returned: the other exercises stay usable, and
        ``grader list`` / ``grader check-exercise`` say what is wrong.  See :meth:`add` for ``rank``.
        """
        try:
            exercise = load_exercise(Path(folder), reference, source=self.source)
        except PluginError as exc:
            self.broken[Path(folder).name] = str(exc)
            return None
        self.add(exercise, rank=rank)
        return exercise

    def add_course(self, root: Path, rank: int = 0) -> list[Exercise]:
        """Register every exercise of a course folder: ``exercises/<id>/`` with ``reference/<id>/`` (an
        instructor's course) or ``answers/<id>/`` (a student course: recorded answers, no reference code)."""
        added = []
        base = Path(root) / "exercises"
        for folder in sorted(p for p in base.iterdir() if (p / "exercise.toml").is_file()) if base.is_dir() else []:
            reference = next((d for d in (root / "reference" / folder.name, root / "answers" / folder.name)
                              if (d / "solution.py").is_file()), None)
            exercise = self.add_folder(folder, reference=reference, rank=rank)
            if exercise is not None:
                added.append(exercise)
        return added

    def get(self, key: str) -> Exercise:
        if key in self.broken and key not in self._items:
            raise PluginError(f"exercise {key!r} cannot be loaded: {self.broken[key]}")
        return super().get(key)

    def ordered(self) -> list[Exercise]:
        return sorted(self, key=lambda e: (e.roadmap or 1000, e.id))


def load_exercise(folder: Path, reference: Path | None, source: str) -> Exercise:
    """Read and validate ``folder/exercise.toml`` (see :mod:`grader.exercise_spec`) and the folder's layout."""
    meta_path = folder / "exercise.toml"
    try:
        meta = tomllib.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PluginError(f"{meta_path}: {exc}") from None
    spec = exercise_spec.parse(meta, meta_path)
    for sub in ("stub", "checks/public"):
        if not (folder / sub).is_dir():
            raise PluginError(f"{folder}: an exercise needs a {sub}/ folder")
    exercise_spec.check_points(folder / "checks", float(spec["points"]), meta_path)
    limits = spec["limits"]
    return Exercise(
        id=spec["id"],
        title=str(spec["title"]),
        level=spec["level"],
        points=float(spec["points"]),
        stub_dir=folder / "stub",
        checks_dir=folder / "checks",
        reference_dir=reference if reference is not None and reference.is_dir() else None,
        version=str(spec["version"]),
        device=spec["device"],
        roadmap=spec["roadmap"],
        summary=spec["summary"],
        check_timeout_s=float(limits["check_timeout_s"]),
        import_timeout_s=float(limits["import_timeout_s"]),
        submission_timeout_s=float(limits["submission_timeout_s"]),
        memory_mb=int(limits["memory_mb"]),
        threads=int(limits["threads"]),
        source=source,
        assets=tuple(spec["assets"]),
        profiles=spec["profiles"],
        leaderboard=tuple(spec["leaderboard"]),
    )
