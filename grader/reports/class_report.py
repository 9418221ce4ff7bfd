"""The class report: one static HTML page, figures as inline SVG, nothing loaded from anywhere else.

Data comes from the gradebook (published grades, after policies) and each grade's results.json
(per-check status and time).  :func:`class_data` builds plain data; :func:`render` turns it into HTML
with jinja2 (autoescape on), so the benchmark can time both on synthetic classes.
"""

from __future__ import annotations

import os
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import __version__
from grader.errors import GraderError
from grader.fs import atomic_write_text
from grader.gradebook import now, require
from grader.reports import templating
from grader.reports.exports import load_results

BINS = 10
HIST_W, HIST_H = 520, 180


@dataclass
class CheckStats:
    exercise: str
    name: str
    title: str
    runs: int = 0
    passed: int = 0
    seconds: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def pass_rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0

    @property
    def mean_s(self) -> float:
        return statistics.fmean(self.seconds) if self.seconds else 0.0


def histogram(percents: list[float]) -> list[dict[str, Any]]:
    """Bars (x, y, w, h, count, label) of a 0-100 % histogram sized for the SVG."""
    counts = [0] * BINS
    for p in percents:
        counts[min(int(p // (100 / BINS)), BINS - 1)] += 1
    top = max(counts, default=0) or 1
    width = HIST_W / BINS
    bars = []
    for i, n in enumerate(counts):
        h = round((HIST_H - 36) * n / top, 1)
        bars.append({"x": round(i * width + 2, 1), "y": round(HIST_H - 20 - h, 1), "w": round(width - 4, 1),
                     "h": h, "count": n, "label": f"{i * 100 // BINS}–{(i + 1) * 100 // BINS}%"})
    return bars


def _link(result_dir: Path, page_dir: Path) -> str:
    target = result_dir / "report.html"
    try:
        return Path(os.path.relpath(target, page_dir)).as_posix()
    except ValueError:
        return target.resolve().as_uri()


def class_data(rows: list[Any], base: Path, page_dir: Path, title: str = "Class report") -> dict[str, Any]:
    """Everything the template shows, from published grade rows (``runs`` columns) of the gradebook in ``base``."""
    students: dict[str, dict[str, Any]] = {}
    per_exercise: dict[str, list[Any]] = defaultdict(list)
    checks: dict[tuple[str, str], CheckStats] = {}
    attempts: dict[str, list[tuple[str, str, list[Any]]]] = defaultdict(list)  # exercise -> leaderboard arrays
    for row in rows:
        doc = load_results(row, base)
        if doc.get("leaderboard"):
            attempts[row["exercise"]].append((row["student"], row["finished_at"], doc["leaderboard"]))
        entry = students.setdefault(row["student"], {"name": row["student"], "score": 0.0, "max": 0.0, "cells": {}})
        entry["score"] += row["final_score"]
        entry["max"] += row["max_score"]
        entry["cells"][row["exercise"]] = {"score": row["final_score"], "max": row["max_score"],
                                           "status": row["status"], "href": _link(base / row["result_dir"], page_dir),
                                           "note": row["policy_note"]}
        per_exercise[row["exercise"]].append(row)
        _count_checks(checks, row["exercise"], doc.get("tests", []))
    for entry in students.values():
        entry["pct"] = 100.0 * entry["score"] / entry["max"] if entry["max"] else 0.0
    ranked = sorted(students.values(), key=lambda s: (-s["pct"], s["name"]))
    exercises = [_exercise_summary(ex, rs) for ex, rs in sorted(per_exercise.items())]
    check_list = sorted(checks.values(), key=lambda c: (c.exercise, c.name))
    pcts = [s["pct"] for s in ranked]
    return {
        "title": title, "generated": now(), "grader_version": __version__,
        "n_students": len(ranked), "n_grades": len(rows),
        "mean_pct": statistics.fmean(pcts) if pcts else 0.0,
        "median_pct": statistics.median(pcts) if pcts else 0.0,
        "hist": histogram(pcts), "hist_w": HIST_W, "hist_h": HIST_H,
        "exercises": exercises, "exercise_ids": [e["id"] for e in exercises],
        "checks": [_check_row(c) for c in check_list],
        "slowest": [_check_row(c) for c in sorted(check_list, key=lambda c: -c.mean_s)[:10]],
        "students": ranked,
        "ungraded": 0,
        "attempts": dict(attempts),
    }


def _count_checks(checks: dict[tuple[str, str], CheckStats], exercise: str, tests: list[Any]) -> None:
    """Add one grading's checks (results.json ``tests``) to the per-check statistics."""
    for test in tests:
        extra = test.get("extra_data") or {}
        key = (exercise, str(test.get("number", test.get("name"))))
        stats = checks.setdefault(key, CheckStats(exercise, key[1], str(test.get("name", ""))))
        stats.runs += 1
        status = str(extra.get("status", "pass" if test.get("status") == "passed" else "fail"))
        stats.passed += status == "pass"
        stats.statuses[status] += 1
        stats.seconds.append(float(extra.get("duration_s", 0.0) or 0.0))


def _exercise_summary(exercise: str, rows: list[Any]) -> dict[str, Any]:
    scores = [r["final_score"] for r in rows]
    statuses: dict[str, int] = defaultdict(int)
    for r in rows:
        statuses[r["status"]] += 1
    full = sum(r["status"] == "pass" for r in rows)
    return {"id": exercise, "n": len(rows), "max": max(r["max_score"] for r in rows),
            "mean": statistics.fmean(scores), "median": statistics.median(scores),
            "pass_rate": full / len(rows), "statuses": dict(sorted(statuses.items()))}


def _check_row(c: CheckStats) -> dict[str, Any]:
    return {"exercise": c.exercise, "name": c.name, "title": c.title, "runs": c.runs, "passed": c.passed,
            "pass_rate": c.pass_rate, "mean_s": c.mean_s, "max_s": max(c.seconds, default=0.0),
            "statuses": dict(sorted(c.statuses.items()))}


def render(data: dict[str, Any]) -> str:
    return templating.render("class_report.html", **data)


def _leaderboards(out_dir: Path, attempts: dict[str, list[Any]], top: int = 25) -> list[dict[str, Any]]:
    """Per exercise and entry, each student's best attempt (published or since superseded), pseudonymous."""
    import secrets

    from grader.reports import leaderboard

    with require(out_dir) as gradebook:
        key = gradebook.get_meta("pseudonym_key")
        if key is None and attempts:
            key = secrets.token_hex(16)
            gradebook.set_meta("pseudonym_key", key)
        for row in gradebook.runs(state="superseded") if attempts else []:
            if row["exercise"] in attempts and row["status"] != "grader_error":
                try:
                    doc = load_results(row, out_dir.resolve())
                except GraderError:
                    continue  # an attempt whose files are gone cannot be ranked
                if doc.get("leaderboard"):
                    attempts[row["exercise"]].append((row["student"], row["finished_at"], doc["leaderboard"]))
    boards = []
    for exercise, tried in sorted(attempts.items()):
        names = list(dict.fromkeys(item["name"] for _, _, board in tried for item in board))
        for name in names:
            rows = leaderboard.rank(tried, name, str(key))
            order = next(item.get("order", "desc") for _, _, board in tried for item in board if item["name"] == name)
            boards.append({"exercise": exercise, "name": name, "order": order, "rows": rows[:top], "n": len(rows)})
    return boards


def write_class_report(out_dir: Path, dest: Path) -> Path:
    """Render the report for the grades published in ``out_dir`` into ``dest``."""
    with require(out_dir) as gradebook:
        rows = gradebook.grades()
        failed = len({(r["student"], r["exercise"]) for r in gradebook.runs(state="failed")}
                     - {(r["student"], r["exercise"]) for r in rows})
    data = class_data(rows, out_dir.resolve(), dest.resolve().parent, title=f"Class report — {out_dir.resolve().name}")
    data["ungraded"] = failed
    data["similarity"] = _similarity_summary(out_dir, dest.resolve().parent)
    data["leaderboards"] = _leaderboards(out_dir, data.pop("attempts"))
    atomic_write_text(dest, render(data))
    return dest


def _similarity_summary(out_dir: Path, page_dir: Path, top: int = 10) -> dict[str, Any] | None:
    """The most similar pairs `grader similarity` found in ``out_dir``, and a link to its page; None if never run."""
    import json

    path = out_dir / "similarity.json"
    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
        pairs = [{k: p[k] for k in ("exercise", "a", "b", "similarity")} for p in found["pairs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return {"problem": f"{path.name} is unreadable: run grader similarity again", "pairs": [], "n": 0}
    page = out_dir / "similarity.html"
    href = Path(os.path.relpath(page, page_dir)).as_posix() if page.is_file() else ""
    return {"pairs": pairs[:top], "n": len(pairs), "href": href, "problem": "",
            "threshold": found.get("threshold", 0.0)}
