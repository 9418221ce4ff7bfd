"""Writes results.json for every graded submission."""

from __future__ import annotations

import json
from pathlib import Path

from grader import hookimpl
from grader.models import GradeResult
from grader.registry import ReporterRegistry
from grader.reports.results import to_results_json


class JsonReporter:
    name = "json"
    filename = "results.json"

    def write(self, result: GradeResult, out_dir: Path) -> Path:
        path = out_dir / self.filename
        path.write_text(json.dumps(to_results_json(result), indent=2, allow_nan=False, default=str), encoding="utf-8")
        return path


@hookimpl
def grader_register_reporters(registry: ReporterRegistry) -> None:
    registry.add(JsonReporter())
