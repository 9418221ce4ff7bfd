"""One typed Settings object: defaults < ``[tool.grader]`` in ./pyproject.toml < ``GRADER_*`` env < flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from grader.errors import GraderError


@dataclass(frozen=True)
class Settings:
    """Everything a run can be configured with.

    :ivar sandbox: backend name (``bwrap``, ``process`` ...); ``None`` picks the best available
    :ivar seed: seed for python/numpy/torch on both sides of the boundary
    :ivar profile: target profile (``cpu`` here; ``gpu`` where configured)
    :ivar threads: torch/OpenMP threads inside the worker
    :ivar work_dir: where per-job folders are made (default: the system temp dir)
    :ivar select: a pytest ``-k`` expression to grade a subset of checks (for check authors)
    :ivar warm: batches, the server and several submissions at once grade with warm runners (forks of a
        runner that has imported pytest and torch, one per job; see :mod:`grader.warm`); false: every job
        starts its runner cold
    """

    sandbox: str | None = None
    seed: int = 0
    profile: str = "cpu"
    threads: int = 2
    work_dir: Path | None = None
    select: str | None = None
    warm: bool = True

    @classmethod
    def load(cls, overrides: dict[str, Any] | None = None, cwd: Path | None = None) -> Settings:
        values: dict[str, Any] = {}
        pyproject = (cwd or Path.cwd()) / "pyproject.toml"
        if pyproject.is_file():
            try:
                values.update(tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("grader", {}))
            except tomllib.TOMLDecodeError as exc:
                raise GraderError(f"{pyproject}: {exc}") from None
            values.pop("assets", None)  # [tool.grader.assets]: the course's asset map, read by grader.assets
        for f in fields(cls):
            env = os.environ.get(f"GRADER_{f.name.upper()}")
            if env is not None:
                values[f.name] = env
        values.update({k: v for k, v in (overrides or {}).items() if v is not None})
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise GraderError(f"unknown setting(s): {', '.join(sorted(unknown))}")
        return replace(cls(), **{k: _coerce(k, v) for k, v in values.items()})


def _coerce(name: str, value: Any) -> Any:
    if name == "warm":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise GraderError(f"setting warm must be true or false, got {value!r}")
    try:
        if name in ("seed", "threads"):
            return int(value)
        if name == "work_dir":
            return Path(value)
    except (TypeError, ValueError):
        raise GraderError(f"setting {name} must be a number, got {value!r}") from None
    return value
