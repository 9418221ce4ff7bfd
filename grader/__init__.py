"""grader: a plugin-based grader for deep-learning exercises.

Importing this package is cheap: torch and friends load only where an exercise needs them.

Public import paths for plugins and check files: :data:`grader.hookimpl`, :mod:`grader.testing`,
:mod:`grader.sandbox`, :mod:`grader.assets` and :mod:`grader.policies` (the layout is in docs/plugins.md).
"""

from __future__ import annotations

import importlib
from typing import Any

import pluggy

__version__ = "0.1.0"

#: decorate hook implementations with this (see :mod:`grader.hookspecs`)
hookimpl = pluggy.HookimplMarker("grader")


#: in a notebook: ``grader.check("ID")``, ``grader.submit("ID")`` and ``%load_ext grader`` (see
#: :mod:`grader.client.notebook`), loaded when first used, so importing grader stays cheap and nothing below
#: the package imports it back
NOTEBOOK = ("check", "submit", "load_ipython_extension")


def __getattr__(name: str) -> Any:
    if name in NOTEBOOK:
        return getattr(importlib.import_module("grader.client.notebook"), name)
    raise AttributeError(f"module 'grader' has no attribute {name!r}")


__all__ = ["__version__", "check", "hookimpl", "load_ipython_extension", "submit"]
