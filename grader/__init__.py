"""grader: a plugin-based grader for deep-learning exercises.

Importing this package is cheap: torch and friends load only where an exercise needs them.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

#: decorate hook implementations with this (see :mod:`grader.hookspecs`)
hookimpl = pluggy.HookimplMarker("grader")

__all__ = ["__version__", "hookimpl"]
