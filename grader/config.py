"""One typed Settings object: defaults < ``[tool.grader]`` in ./pyproject.toml < ``GRADER_*`` env < flags."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from grader.errors import GraderError


def project_file(cwd: Path | None = None) -> Path:
    """The pyproject.toml whose ``[tool.grader]`` configures grader: the working folder's (``cwd``'s)."""
    return (cwd or Path.cwd()) / "pyproject.toml"


def project_table(cwd: Path | None = None) -> dict[str, Any]:
    """``[tool.grader]`` of :func:`project_file`, or {} without one; a broken file says where."""
    pyproject = project_file(cwd)
    if not pyproject.is_file():
        return {}
    try:
        table = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("grader", {})
    except tomllib.TOMLDecodeError as exc:
        raise GraderError(f"{pyproject}: {exc}") from None
    if not isinstance(table, dict):
        raise GraderError(f"{pyproject}: [tool.grader] must be a table")
    return table


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
        runner that has imported pytest and torch, one per job; see :mod:`grader.checks.warm`); false: every job
        starts its runner cold
    :ivar prestart: each job's sandboxed worker starts as its runner starts, so its cold start (python, torch,
        solution.py's imports) overlaps the checks' collection; false: it starts when a check first calls the
        student's code
    :ivar warm_workers: where runners are warm, each job's sandboxed workers are forked from a warm template that
        has imported torch (and what else the exercise's stub imports) once, instead of starting python cold in
        the sandbox (bwrap run as root; elsewhere they start cold); false: every worker starts cold
    """

    sandbox: str | None = None
    seed: int = 0
    profile: str = "cpu"
    threads: int = 2
    work_dir: Path | None = None
    select: str | None = None
    warm: bool = True
    prestart: bool = True
    warm_workers: bool = True

    @classmethod
    def load(cls, overrides: dict[str, Any] | None = None, cwd: Path | None = None) -> Settings:
        values: dict[str, Any] = dict(project_table(cwd))
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
    if name in ("warm", "prestart", "warm_workers"):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on"):
            return True
        if text in ("0", "false", "no", "off"):
            return False
        raise GraderError(f"setting {name} must be true or false, got {value!r}")
    try:
        if name in ("seed", "threads"):
            return int(value)
        if name == "work_dir":
            return Path(value)
    except (TypeError, ValueError):
        raise GraderError(f"setting {name} must be a number, got {value!r}") from None
    return value


#: every environment variable grader reads, beside the ``GRADER_<SETTING>`` ones of :class:`Settings`:
#: name -> what it does (the default in the words); docs/environment.md is this table
ENVIRONMENT: dict[str, str] = {
    "GRADER_EXERCISES": "course folders (exercises/, reference/ beside them) to register, separated by the path "
                        "separator; a folder named here wins over a source checkout and the installed exercises",
    "GRADER_PLUGINS": "comma-separated plugin modules to load without installing them (the check runner passes "
                      "its parent's on)",
    "GRADER_TEMPLATES": "a folder searched before the packaged templates (report.html, class report)",
    "GRADER_ASSETS_DIR": "the course-asset cache (default $XDG_CACHE_HOME/grader/assets, else "
                         "~/.cache/grader/assets)",
    "GRADER_ASSET_<NAME>": "maps one asset to a hub id (GRADER_ASSET_ENCODER_SMALL=hf:google-bert/bert-base-uncased); "
                           "empty: back to the offline build",
    "GRADER_REFERENCE_CACHE": "where the grader keeps the reference's training curves drawn beside a student's "
                              "(default $XDG_CACHE_HOME/grader/reference-curves, else ~/.cache/grader/"
                              "reference-curves; empty: keep none, train the reference again in each grading)",
    "GRADER_DOCKER_IMAGE": "the worker image the docker sandbox runs (default grader-worker:latest)",
    "GRADER_GPUS": "GPU ids the host may lease to jobs (\"0,1\"; empty: none), instead of asking nvidia-smi",
    "GRADER_GPU_LOCKS": "the folder of per-GPU lease locks (default <temp dir>/grader-gpu-locks)",
    "GRADER_SERVER": "the grading server's URL for grader login / check --remote / submit (default: the saved one)",
    "GRADER_TOKEN": "the bearer token sent to the server (default: the one grader login saved)",
    "GRADER_CONFIG_DIR": "where grader login saves credentials.json (default ~/.config/grader)",
}

#: set by grader for its own processes, never by a user: name -> why
INTERNAL_ENVIRONMENT: dict[str, str] = {
    "GRADER_PARENT_PID": "the check runner dies with the process that started it",
    "GRADER_JOB": "a job's id in its sandboxed processes, so an operator can find every process of a job",
}


def environment_markdown() -> str:
    """docs/environment.md: every variable, the Settings ones first."""
    lines = ["# Environment variables", "",
             "Settings (`[tool.grader]` in ./pyproject.toml, overridden by these, overridden by flags):", "",
             "| variable | setting |", "|---|---|"]
    doc = (Settings.__doc__ or "").split(":ivar ")[1:]
    said = {part.split(":", 1)[0]: " ".join(part.split(":", 1)[1].split()).replace("``", "`").replace(":mod:", "")
            for part in doc}
    lines += [f"| `GRADER_{f.name.upper()}` | {said.get(f.name, '')}"
              + ("" if f.default is None else f" (default `{str(f.default).lower()}`)") + " |"
              for f in fields(Settings)]
    lines += ["", "Everything else grader reads:", "", "| variable | what it does |", "|---|---|"]
    lines += [f"| `{name}` | {what} |" for name, what in ENVIRONMENT.items()]
    lines += ["", "Set by grader for its own processes (never by hand):", "", "| variable | why |", "|---|---|"]
    lines += [f"| `{name}` | {why} |" for name, why in INTERNAL_ENVIRONMENT.items()]
    return "\n".join(lines) + "\n"
