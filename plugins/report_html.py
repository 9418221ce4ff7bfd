"""Writes report.html: every lost point explained, student output always escaped."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2

from grader import hookimpl
from grader.models import GradeResult, Visibility
from grader.paths import templates_root
from grader.registry import ReporterRegistry
from grader.results import jsonable


def environment() -> jinja2.Environment:
    """Templates are searched in $GRADER_TEMPLATES first, then the packaged defaults."""
    search = [p for p in (os.environ.get("GRADER_TEMPLATES"), str(templates_root())) if p]
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(search),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["polyline"] = polyline
    env.filters["sig"] = significant
    return env


def significant(value: Any, digits: int = 4) -> Any:
    """Floats to a few significant digits for tables; anything else unchanged."""
    return f"{value:.{digits}g}" if isinstance(value, float) else value


def polyline(values: list[Any], width: int = 320, height: int = 90) -> str:
    """SVG polyline points for a numeric series (a loss curve)."""
    ys = [float(v) for v in values if isinstance(v, (int, float))]
    if len(ys) < 2:
        return ""
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    step = width / (len(ys) - 1)
    return " ".join(f"{i * step:.1f},{height - (y - lo) / span * height:.1f}" for i, y in enumerate(ys))


def context(result: GradeResult) -> dict[str, Any]:
    checks = []
    for c in result.checks:
        shown = c.visibility is Visibility.PUBLIC
        checks.append({
            "name": c.name, "title": c.title, "status": c.status.value, "score": c.score,
            "max_score": c.max_score, "visibility": c.visibility.value,
            "message": c.message if c.visibility is not Visibility.HIDDEN else "",
            "output": c.output if shown and c.output != c.message else "",
            "tensors": jsonable(c.details.get("tensors", [])) if shown else [],
            "series": {k.split("/", 1)[1]: v for k, v in c.details.items() if k.startswith("series/")} if shown else {},
        })
    return {
        "exercise": result.exercise.summary_dict(),
        "submission": result.submission,
        "mode": result.mode,
        "status": result.status.value,
        "score": result.score,
        "max_score": result.max_score,
        "checks": checks,
        "not_run": result.not_run,
        "not_run_points": result.not_run_points,
        "note": result.note,
        "phases": result.phases,
        "provenance": result.provenance,
        "student_output": result.stderr_tail,
    }


class HtmlReporter:
    name = "html"
    filename = "report.html"

    def write(self, result: GradeResult, out_dir: Path) -> Path:
        path = out_dir / self.filename
        html = environment().get_template("report.html").render(**context(result))
        path.write_text(html, encoding="utf-8")
        return path


@hookimpl
def grader_register_reporters(registry: ReporterRegistry) -> None:
    registry.add(HtmlReporter())
