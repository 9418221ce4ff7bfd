"""Writes report.html: every lost point explained, student output always escaped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grader import hookimpl
from grader.models import GradeResult, Visibility
from grader.registry import ReporterRegistry
from grader.reports.results import jsonable
from grader.reports.templating import render

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


#: at most this many curves and confusion matrices in one report (a few tens of kB each)
MAX_CURVES = 6
MAX_CONFUSIONS = 4
_W, _H, _LEFT, _RIGHT, _TOP, _BOTTOM = 480, 200, 56, 12, 14, 34


def _segments(xs: list[int], ys: list[Any], fx: Any, fy: Any) -> list[str]:
    """SVG polyline point lists, broken where a value is missing (a NaN step is a gap, not a zero)."""
    out: list[str] = []
    run: list[str] = []
    for x, y in zip(xs, ys, strict=False):
        if y is None:
            if len(run) > 1:
                out.append(" ".join(run))
            run = []
        else:
            run.append(f"{fx(x):.1f},{fy(y):.1f}")
    if len(run) > 1:
        out.append(" ".join(run))
    return out


def chart(rec: dict[str, Any]) -> dict[str, Any]:
    """The geometry of a curve's picture: the student's line, the reference's, the target, axes and ticks."""
    ref = rec.get("reference") or {}
    xs, ys = list(rec.get("x", [])), list(rec.get("values", []))
    rxs, rys = list(ref.get("x", [])), list(ref.get("values", []))
    target = rec.get("target")
    known = [v for v in (*ys, *rys, target) if isinstance(v, (int, float))]
    lo, hi = (min(known), max(known)) if known else (0.0, 1.0)
    pad = (hi - lo) * 0.05 or abs(hi) * 0.1 or 1.0
    lo, hi = lo - pad, hi + pad
    xmax = max([*xs, *rxs, 1])
    pw, ph = _W - _LEFT - _RIGHT, _H - _TOP - _BOTTOM

    def fx(x: float) -> float:
        return _LEFT + x / xmax * pw

    def fy(y: float) -> float:
        return _TOP + (hi - y) / (hi - lo) * ph

    finite = [(x, y) for x, y in zip(xs, ys, strict=False) if y is not None]
    ref_last = next((y for y in reversed(rys) if y is not None), None)
    return {
        "width": _W, "height": _H, "left": _LEFT, "right": _W - _RIGHT, "top": _TOP, "bottom": _H - _BOTTOM,
        "y_label": rec.get("y_label", "loss"), "steps": rec.get("steps", len(ys)),
        "mine": _segments(xs, ys, fx, fy), "reference": _segments(rxs, rys, fx, fy),
        "points": [{"cx": round(fx(x), 1), "cy": round(fy(y), 1), "step": x, "v": y} for x, y in finite],
        "target": None if target is None else {"y": round(fy(target), 1), "v": target,
                                               "label": rec.get("target_label", "target")},
        "yticks": [{"y": round(fy(v), 1), "v": v} for v in (lo + pad, (lo + hi) / 2, hi - pad)],
        "xticks": [{"x": round(fx(x), 1), "v": x} for x in sorted({0, xmax // 2, xmax})],
        "first": finite[0][1] if finite else None, "last": finite[-1][1] if finite else None,
        "ref_last": ref_last, "nonfinite": rec.get("nonfinite", 0),
    }


def confusion_chart(rec: dict[str, Any]) -> dict[str, Any]:
    """The cells of a confusion matrix's picture: shaded by the share of their row (the true class)."""
    classes, predicted, matrix = rec["classes"], rec["predicted"], rec["matrix"]
    size, left, top = 56, 96, 56
    cells = []
    for i, row in enumerate(matrix):
        total = sum(row) or 1
        for j, count in enumerate(row):
            share = count / total
            cells.append({"x": left + j * size, "y": top + i * size, "count": count, "share": share,
                          "fill": _colour(share), "ink": "#000" if share > 0.6 else "#fff",
                          "true": classes[i], "predicted": predicted[j], "diagonal": i == j})
    return {"size": size, "left": left, "top": top, "cells": cells,
            "width": left + size * len(predicted) + 8, "height": top + size * len(classes) + 8,
            "rows": [{"y": top + i * size + size / 2, "name": str(c)[:12]} for i, c in enumerate(classes)],
            "cols": [{"x": left + j * size + size / 2, "name": str(c)[:9]} for j, c in enumerate(predicted)],
            "n": rec.get("n", 0), "correct": rec.get("correct", 0)}


def _pictures(details: dict[str, Any], public: bool, budget: dict[str, int]) -> tuple[list[Any], list[Any]]:
    """The curves and confusion matrices of one check, within the report's budget."""
    curves, matrices = [], []
    for key, value in details.items():
        kind, _, name = key.partition("/")
        if kind == "series" and public and isinstance(value, list):  # a bare list of numbers, public only
            from grader.checks.pictures import curve_record

            kind, value = "curve", curve_record(value)
        if kind == "curve" and isinstance(value, dict) and budget["curves"] > 0:
            budget["curves"] -= 1
            curves.append({"name": name, **chart(value)})
        elif kind == "confusion" and isinstance(value, dict) and budget["confusions"] > 0:
            budget["confusions"] -= 1
            matrices.append({"name": name, **confusion_chart(value)})
    return curves, matrices


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
    pictured = {"curves": MAX_CURVES, "confusions": MAX_CONFUSIONS}
    for c in result.checks:
        shown = c.visibility is Visibility.PUBLIC
        # a message-only check's pictures are of the student's own run (and the reference's curve): shown
        curves, matrices = _pictures(c.details, shown, pictured) if c.visibility is not Visibility.HIDDEN else ([], [])
        checks.append({
            "name": c.name, "title": c.title, "status": c.status.value, "score": c.score,
            "max_score": c.max_score, "visibility": c.visibility.value,
            "message": c.message if c.visibility is not Visibility.HIDDEN else "",
            "output": c.output if shown and c.output != c.message else "",
            "tensors": _with_heatmaps(jsonable(c.details.get("tensors", [])), budget) if shown else [],
            "curves": curves, "confusions": matrices,
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

    def render(self, result: GradeResult) -> str:
        """The report page for ``result`` (the server shows it behind a signed link)."""
        return render("report.html", **context(result))

    def write(self, result: GradeResult, out_dir: Path) -> Path:
        path = out_dir / self.filename
        path.write_text(self.render(result), encoding="utf-8")
        return path


@hookimpl
def grader_register_reporters(registry: ReporterRegistry) -> None:
    registry.add(HtmlReporter())
