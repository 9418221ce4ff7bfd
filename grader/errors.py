"""The few errors the grader raises on purpose; each prints as one line, without a traceback."""

from __future__ import annotations


class GraderError(Exception):
    """Something the user can fix (bad arguments, unknown exercise...).  Exit code 2."""

    exit_code = 2


class UnknownName(GraderError):
    """An exercise, sandbox or reporter that is not registered."""


class PluginError(GraderError):
    """A plugin that broke the contract (duplicate id, bad metadata, misspelt hook)."""

    exit_code = 3


class SandboxUnavailable(GraderError):
    """The requested sandbox backend cannot run on this machine."""
