"""The export formats grader ships: gradescope, csv and junit (see :mod:`grader.reports.exports`)."""

from __future__ import annotations

from grader import hookimpl
from grader.reports.exports import BUILTIN, ExporterRegistry


@hookimpl
def grader_register_exporters(registry: ExporterRegistry) -> None:
    for exporter in BUILTIN:
        registry.add(exporter)
