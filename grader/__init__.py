"""grader: a plugin-based grader for deep-learning exercises.

Importing this package is cheap: torch and friends load only where an exercise needs them.
"""

from __future__ import annotations

from typing import Any

import pluggy

__version__ = "0.1.0"

#: decorate hook implementations with this (see :mod:`grader.hookspecs`)
hookimpl = pluggy.HookimplMarker("grader")


def check(exercise: str, notebook: Any = None, **options: Any) -> Any:
    """In a notebook: run EXERCISE's public checks on this notebook's code and show the report inline.

    See :func:`grader.notebook_check.check` (``notebook=``, ``display=``, ``sandbox=``, ``out=``).
    """
    from grader.notebook_check import check as run

    return run(exercise, notebook, **options)


def submit(exercise: str, notebook: Any = None, **options: Any) -> Any:
    """In a notebook: send this notebook's code to the grading server; see :func:`grader.notebook_check.submit`."""
    from grader.notebook_check import submit as send

    return send(exercise, notebook, **options)


def load_ipython_extension(shell: Any) -> None:
    """``%load_ext grader`` in IPython or Jupyter: adds ``%grader check EXERCISE`` and ``%grader submit EXERCISE``."""
    from grader.notebook_check import load_ipython_extension as load

    load(shell)


__all__ = ["__version__", "check", "hookimpl", "load_ipython_extension", "submit"]
