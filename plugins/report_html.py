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


#: viridis at nine stops: perceptually even, and its lightness rises monotonically, so it survives greyscale
_VIRIDIS = ((68, 1, 84), (71, 44, 122), (59, 81, 139), (44, 113, 142), (33, 144, 141), (39, 173, 129),
            (92, 200, 99), (170, 220, 50), (253, 231, 37))
#: at most this many heatmap trios in one report (each is a few tens of kB; a report stays well under 1 MB)
MAX_HEATMAPS = 6


def _colour(t: float) -> str:
    t = min(max(t, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    i = min(int(t), len(_VIRIDIS) - 2)
    f = t - i
    r, g, b = (round(a + (b - a) * f) for a, b in zip(_VIRIDIS[i], _VIRIDIS[i + 1], strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap_panels(h: dict[str, Any]) -> list[dict[str, Any]]:
    """Three panels (expected, got, |difference|) of SVG cells from a tensor's recorded heatmap: expected and
    got share one colour scale, the difference has its own from 0; None (NaN, inf) cells are drawn hatched."""
    grids = {"expected": h["expected"], "got": h["got"], "|got - expected|": h["diff"]}
    values = [v for name in ("expected", "got") for row in grids[name] for v in row if v is not None]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    top = max((v for row in h["diff"] for v in row if v is not None), default=0.0)
    panels = []
    for name, grid in grids.items():
        low, span = (0.0, top or 1.0) if name.startswith("|") else (lo, (hi - lo) or 1.0)
        cells = [{"x": x, "y": y, "v": v, "fill": _colour((v - low) / span) if v is not None else ""}
                 for y, row in enumerate(grid) for x, v in enumerate(row)]
        panels.append({"name": name, "cells": cells, "low": low, "high": low + span if values or top else 1.0})
    return panels


def _with_heatmaps(tensors: list[dict[str, Any]], budget: list[int]) -> list[dict[str, Any]]:
    out = []
    for t in tensors:
        t = dict(t)
        h = t.pop("heatmap", None)
        if h and budget[0] > 0:
            budget[0] -= 1
            t["heatmap"] = {**h, "panels": heatmap_panels(h)}
        out.append(t)
    return out


def context(result: GradeResult) -> dict[str, Any]:
    checks = []
    budget = [MAX_HEATMAPS]
    for c in result.checks:
        shown = c.visibility is Visibility.PUBLIC
        checks.append({
            "name": c.name, "title": c.title, "status": c.status.value, "score": c.score,
            "max_score": c.max_score, "visibility": c.visibility.value,
            "message": c.message if c.visibility is not Visibility.HIDDEN else "",
            "output": c.output if shown and c.output != c.message else "",
            "tensors": _with_heatmaps(jsonable(c.details.get("tensors", [])), budget) if shown else [],
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
