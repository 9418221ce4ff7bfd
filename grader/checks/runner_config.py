"""The parent -> runner contract: everything the trusted check runner needs for one job, typed.

The grader writes it as ``runner.json`` (readable by root only) and the runner reads it back with
:meth:`RunnerConfig.read`: a missing or unknown key is an error there, never a silent default.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class RunnerConfig:
    job_id: str
    job_dir: str
    exercise_id: str
    exercise_dir: str
    checks_dir: str
    hidden_dir: str
    #: the check folders pytest collects (public, and hidden when it exists)
    paths: list[str]
    run_hidden: bool
    reference_dir: str | None
    submission_dir: str
    device: str
    profile: str
    results_path: str
    sandbox: str
    seed: int
    deadline_epoch: float
    check_timeout_s: float
    import_timeout_s: float
    #: :class:`grader.sandbox.Limits` as a dict
    limits: dict[str, Any]
    secret_paths: list[str]
    #: a pytest ``-k`` expression, or None for every check
    select: str | None
    #: asset name -> prepared folder
    assets: dict[str, str]
    readonly_paths: list[str]
    #: the active profile's targets (the ``targets`` fixture)
    targets: dict[str, Any]
    #: why the submission cannot be graded at all (a refused placement, an unpreparable asset, a bad upload)
    load_problem: str = ""
    #: the grader refused the job (placement or assets), rather than the submission failing to load
    refused: bool = False
    #: the folder of reference curves the trusted side keeps (:mod:`grader.checks.pictures`); empty: none kept
    reference_cache: str = ""
    #: the graded folder is the exercise's reference folder itself (an instructor's self-check)
    submission_is_reference: bool = False
    #: start the sandboxed worker before pytest collects the checks (the ``prestart`` setting)
    prestart_worker: bool = True
    #: fork the sandboxed workers from a warm template where the runner was forked from a warm server that has
    #: one (the ``warm_workers`` setting)
    warm_workers: bool = True
    #: what that template imports before it forks: the modules the exercise's stub imports (torch, numpy ...)
    worker_preload: list[str] = field(default_factory=list)
    #: what a warm fork server imports, once, before forking this job's runner: the modules the checks import
    runner_preload: list[str] = field(default_factory=list)

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self)), encoding="utf-8")
        os.chmod(path, 0o600)

    @classmethod
    def read(cls, path: Path) -> RunnerConfig:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"{path}: unknown runner settings {', '.join(unknown)}")
        return cls(**data)
