"""Exports of the published grades: Gradescope results.json, an LMS gradebook CSV, JUnit XML.

All three read the gradebook (which grade is published, after policies) and the results.json files
it points at (per-check detail).  A ``grader_error`` is never published, so it never reaches an LMS
as a score: that cell stays empty until a rerun grades it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import sqlite3
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import GraderError
from grader.fs import atomic_write_text
from grader.gradebook import require
from grader.registry import Registry

_XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
GRADESCOPE_TEST_KEYS = ("name", "number", "score", "max_score", "status", "output", "visibility", "extra_data")


def load_results(row: sqlite3.Row, base: Path) -> dict[str, Any]:
    """The results.json of a run (``result_dir`` is relative to the gradebook's folder ``base``)."""
    path = base / row["result_dir"] / "results.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:
        raise GraderError(f"{path}: cannot read the published result ({exc}); rerun `grader batch`") from None


def gradescope_document(row: sqlite3.Row, doc: dict[str, Any]) -> dict[str, Any]:
    """Gradescope's schema only; our status and provenance move under ``extra_data``."""
    output = str(doc.get("output", ""))
    if row["policy_note"]:
        output += f"\nPolicy: {row['policy_note']} (raw score {row['score']:g})"
    return {
        "score": row["final_score"],
        "max_score": row["max_score"],
        "execution_time": doc.get("execution_time", 0),
        "output": output,
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": [{k: t[k] for k in GRADESCOPE_TEST_KEYS if k in t} for t in doc.get("tests", [])],
        "extra_data": {"grader": doc.get("grader", {}), "raw_score": row["score"], "policy_note": row["policy_note"]},
    }


def export_gradescope(rows: list[sqlite3.Row], base: Path, dest: Path) -> Path:
    for row in rows:
        doc = gradescope_document(row, load_results(row, base))
        atomic_write_text(dest / row["student"] / row["exercise"] / "results.json", json.dumps(doc, indent=2))
    return dest


def export_csv(rows: list[sqlite3.Row], dest: Path) -> Path:
    """One row per student, one column per exercise (published score after policies), then the total."""
    exercises = sorted({r["exercise"] for r in rows})
    table: dict[str, dict[str, float]] = {}
    for row in rows:
        table.setdefault(row["student"], {})[row["exercise"]] = float(row["final_score"])
    lines = [["student", *exercises, "total"]]
    for student in sorted(table):
        scores = table[student]
        lines.append([student, *(f"{scores[e]:g}" if e in scores else "" for e in exercises),
                      f"{sum(scores.values()):g}"])
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=dest.parent, delete=False, newline="", encoding="utf-8",
                                     prefix=f".{dest.name}.") as fh:
        csv.writer(fh).writerows(lines)
    os.chmod(fh.name, 0o644)
    os.replace(fh.name, dest)
    return dest


def _clean(text: Any) -> str:
    return _XML_BAD.sub("?", str(text))


def _testcases(suite: ET.Element, doc: dict[str, Any], classname: str) -> Iterator[str]:
    for test in doc.get("tests", []):
        status = (test.get("extra_data") or {}).get("status", "pass" if test.get("status") == "passed" else "fail")
        case = ET.SubElement(suite, "testcase", name=_clean(test.get("name", "")), classname=classname,
                             time=str((test.get("extra_data") or {}).get("duration_s", 0)))
        if status == "fail":
            ET.SubElement(case, "failure", message=_clean(test.get("output", ""))[:500], type=status).text = \
                _clean(test.get("output", ""))
        elif status != "pass":
            ET.SubElement(case, "error", message=_clean(test.get("output", ""))[:500], type=status).text = \
                _clean(test.get("output", ""))
        yield status


def export_junit(rows: list[sqlite3.Row], base: Path, dest: Path) -> Path:
    """One <testsuite> per (student, exercise), one <testcase> per check; non-pass -> failure or error."""
    root = ET.Element("testsuites", name="grader")
    for row in rows:
        doc = load_results(row, base)
        suite = ET.SubElement(root, "testsuite", name=f"{row['student']}/{row['exercise']}",
                              timestamp=row["finished_at"], time=str(doc.get("execution_time", 0)))
        props = ET.SubElement(suite, "properties")
        for key in ("score", "final_score", "max_score", "status", "exercise_version", "grader_version"):
            ET.SubElement(props, "property", name=key, value=_clean(row[key]))
        statuses = list(_testcases(suite, doc, f"{row['exercise']}.{row['student']}"))
        suite.set("tests", str(len(statuses)))
        suite.set("failures", str(statuses.count("fail")))
        suite.set("errors", str(sum(s not in ("pass", "fail") for s in statuses)))
    ET.indent(root)
    atomic_write_text(dest, ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n")
    return dest


@dataclass(frozen=True)
class Exporter:
    """An export format: ``write(rows, base, dest)`` writes the published grades ``rows`` (sqlite rows of the
    gradebook at ``base``) to ``dest``, by default ``base / default``, and returns what it wrote."""

    name: str
    help: str
    default: str
    write: Callable[[list[sqlite3.Row], Path, Path], Path]


#: the formats grader ships (registered by the built-in plugin ``grader.builtin.export_formats``)
BUILTIN = (
    Exporter("gradescope", "results.json per submission, Gradescope's schema", "exports/gradescope",
             export_gradescope),
    Exporter("csv", "one row per student, one column per exercise (LMS import)", "exports/grades.csv",
             lambda rows, base, dest: export_csv(rows, dest)),
    Exporter("junit", "XML for CI systems: a suite per submission, a case per check", "exports/junit.xml",
             export_junit),
)


class ExporterRegistry(Registry[Exporter]):
    kind = "export format"


def builtin_registry() -> ExporterRegistry:
    registry = ExporterRegistry()
    for exporter in BUILTIN:
        registry.add(exporter)
    return registry


def export(out_dir: Path, fmt: str, dest: Path | None = None, exporters: ExporterRegistry | None = None) -> Path:
    """Write ``fmt`` for the grades published in ``out_dir``; return what was written."""
    exporter = (exporters or builtin_registry()).get(fmt)  # an unknown name lists the known ones
    with require(out_dir) as gradebook:
        rows = gradebook.grades()
    if not rows:
        raise GraderError(f"{out_dir} has no published grades yet")
    return exporter.write(rows, out_dir, dest or out_dir / exporter.default)
