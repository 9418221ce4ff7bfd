"""Typed registries that registration hooks fill; duplicate names are errors, never overwrites."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Generic, TypeVar

from grader.errors import PluginError, UnknownName
from grader.models import Exercise

T = TypeVar("T")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")
LEVELS = ("foundation", "intermediate", "advanced", "expert")


class _Registry(Generic[T]):
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


class SandboxRegistry(_Registry[Any]):
    kind = "sandbox"


class ReporterRegistry(_Registry[Any]):
    kind = "reporter"


class ExerciseRegistry(_Registry[Exercise]):
    kind = "exercise"

    def __init__(self) -> None:
        super().__init__()
        self.source = "builtin"

    def _key(self, item: Exercise) -> str:
        return item.id

    def add_folder(self, folder: Path, reference: Path | None = None) -> Exercise:
        """Register the exercise in ``folder`` (``exercise.toml``, ``stub/``, ``checks/``)."""
        exercise = load_exercise(Path(folder), reference, source=self.source)
        self.add(exercise)
        return exercise

    def ordered(self) -> list[Exercise]:
        return sorted(self, key=lambda e: (e.roadmap or 1000, e.id))


def load_exercise(folder: Path, reference: Path | None, source: str) -> Exercise:
    meta_path = folder / "exercise.toml"
    try:
        meta = tomllib.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PluginError(f"{meta_path}: {exc}") from None
    missing = {"id", "title", "level", "points"} - set(meta)
    if missing:
        raise PluginError(f"{meta_path}: missing {', '.join(sorted(missing))}")
    ex_id = str(meta["id"])
    if not _ID.match(ex_id):
        raise PluginError(f"{meta_path}: id {ex_id!r} must be lower-case letters, digits and dashes")
    if meta["level"] not in LEVELS:
        raise PluginError(f"{meta_path}: level must be one of {', '.join(LEVELS)}")
    for sub in ("stub", "checks/public"):
        if not (folder / sub).is_dir():
            raise PluginError(f"{folder}: an exercise needs a {sub}/ folder")
    limits = meta.get("limits", {})
    assets, profiles = _assets_and_profiles(meta, meta_path)
    return Exercise(
        id=ex_id,
        title=str(meta["title"]),
        level=str(meta["level"]),
        points=float(meta["points"]),
        stub_dir=folder / "stub",
        checks_dir=folder / "checks",
        reference_dir=reference if reference is not None and reference.is_dir() else None,
        version=str(meta.get("version", "1")),
        device=str(meta.get("device", "cpu")),
        roadmap=meta.get("roadmap"),
        summary=str(meta.get("summary", "")),
        check_timeout_s=float(limits.get("check_timeout_s", 60)),
        import_timeout_s=float(limits.get("import_timeout_s", 60)),
        submission_timeout_s=float(limits.get("submission_timeout_s", 600)),
        memory_mb=int(limits.get("memory_mb", 3072)),
        source=source,
        assets=assets,
        profiles=profiles,
    )


def _assets_and_profiles(meta: dict[str, Any], meta_path: Path) -> tuple[tuple[str, ...], dict[str, Any]]:
    """``assets = [...]`` (names, never paths) and the ``[profiles.cpu]`` / ``[profiles.gpu]`` targets."""
    assets = meta.get("assets", [])
    if not isinstance(assets, list) or not all(isinstance(a, str) and _ID.match(a) for a in assets):
        raise PluginError(f'{meta_path}: assets must be a list of asset names such as "encoder-small"')
    profiles = meta.get("profiles", {})
    if not isinstance(profiles, dict) or not set(profiles) <= {"cpu", "gpu"} or not all(
        isinstance(v, dict) for v in profiles.values()
    ):
        raise PluginError(f"{meta_path}: [profiles.cpu] and [profiles.gpu] are the only profile tables")
    if profiles and "cpu" not in profiles:
        raise PluginError(f"{meta_path}: declare [profiles.cpu] targets too (the default profile)")
    if profiles and meta.get("device", "cpu") != "cpu" and "gpu" not in profiles:
        raise PluginError(f"{meta_path}: a {meta.get('device')} exercise is graded with the gpu profile on a GPU: "
                          "declare [profiles.gpu] targets too")
    return tuple(assets), profiles
