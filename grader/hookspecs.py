"""Every hook ``grader`` calls: the whole plugin contract, in one module.

Plugins implement these with :data:`grader.hookimpl`, register as modules under the ``grader``
entry-point group (``[project.entry-points.grader]``), and are called with keyword arguments only.
The built-in sandboxes, exercises and reporters use exactly these hooks.

Registration hooks receive a typed registry object and call ``registry.add(...)``; every
implementation is called, in plugin order, and a duplicate name is an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from grader.assets import AssetConfig, AssetRegistry
    from grader.models import GradeResult
    from grader.policies import PolicyRegistry
    from grader.registry import CommandRegistry, ExerciseRegistry, ReporterRegistry, SandboxRegistry
    from grader.reports.exports import ExporterRegistry

hookspec = pluggy.HookspecMarker("grader")


@hookspec
def grader_register_exercises(registry: ExerciseRegistry) -> None:
    """Add exercises with ``registry.add(Exercise(...))`` or ``registry.add_folder(path)``.

    Called once per plugin manager, when the exercise list is first needed.  ``add_folder`` reads
    an exercise folder laid out like the built-in ones (``exercise.toml``, ``stub/``, ``checks/``)
    with its reference solution in a separate folder that never reaches the sandbox; ``add_course(root)``
    reads a whole course folder (``exercises/``, ``reference/`` or ``answers/``).  A folder that breaks the
    contract is kept in ``registry.broken`` with the reason instead of stopping the others.

    :param registry: the exercise registry; ``add``/``add_folder``/``add_course`` take a ``rank``: of two
        copies of one id the higher rank wins (a folder the user named, then a checkout, an instructor's
        course, a student's), two of one rank are an error.
    """


@hookspec
def grader_register_sandboxes(registry: SandboxRegistry) -> None:
    """Add sandbox backends (objects following :class:`grader.sandbox.Sandbox`) with ``registry.add``.

    When the user names no backend, the available one with the lowest ``priority`` is used.

    :param registry: the sandbox registry; names must be unique.
    """


@hookspec
def grader_register_reporters(registry: ReporterRegistry) -> None:
    """Add reporters: objects with a ``name`` and ``write(result, out_dir) -> Path``.

    Every registered reporter writes its file for each graded submission (``results.json`` and
    ``report.html`` are the built-in ones).

    :param registry: the reporter registry; names must be unique.
    """


@hookspec
def grader_register_assets(registry: AssetRegistry, config: AssetConfig) -> None:
    """Add named course assets (models, corpora, word lists) with ``registry.add(Asset(...))``.

    Called once per plugin manager, when the registries are collected.  ``config`` holds the cache
    folder and the course's map of asset names to hub ids (``[tool.grader.assets]`` in
    ./pyproject.toml, ``GRADER_ASSET_<NAME>`` variables), for online providers.  Every
    implementation is called; one name may be registered by several providers (``offline``,
    ``online`` ...), the lowest ``priority`` is used, and a duplicate (name, provider) is an error.
    Exercises name assets in their exercise.toml; see :mod:`grader.assets` and docs/assets.md.

    :param registry: the asset registry, keyed by (name, provider).
    :param config: the cache folder and the course's asset-name -> hub-id map.
    """


@hookspec
def grader_graded(result: GradeResult) -> None:
    """Called after a submission was graded and its reports were written.

    For notifications and logging; the result is frozen and return values are ignored.

    :param result: the frozen :class:`grader.models.GradeResult`, reports already written.
    """


@hookspec
def grader_register_policies(registry: PolicyRegistry) -> None:
    """Add course policies (late penalty, rate limits...) with ``registry.add(policy)``.

    Called when the plugins' registries are collected (``grader batch``, ``regrade``, ``serve``).  A policy
    subclasses :class:`grader.policies.PolicyBase` and has a ``name`` (its table in the class file) and three
    methods with defaults: ``admit(job, options) -> str`` returns ``""`` or why the job is not graded,
    ``next_allowed(job, options)`` when a refused job would be admitted, and
    ``adjust(job, score, max_score, options) -> (score, note)`` returns the score that is published.
    Only policies whose table is present in the class file take part; every one does, in plugin order.

    :param registry: the policy registry; names must be unique.
    """


@hookspec
def grader_register_commands(registry: CommandRegistry) -> None:
    """Add ``grader`` sub-commands with ``registry.add(command)``: a click command or group, run as
    ``grader NAME``.

    Called when the command line needs the list of commands (``grader --help``) or meets a name it does not
    know, so keep the module light: import what a command needs inside it. A name the core already uses, or
    that another plugin registered, is refused. The docker sandbox adds ``grader image`` this way.

    :param registry: the command registry; names must be unique and not a built-in command's.
    """


@hookspec
def grader_register_exporters(registry: ExporterRegistry) -> None:
    """Add export formats for ``grader export DIR --format NAME`` with ``registry.add(exporter)``.

    An exporter is a :class:`grader.reports.exports.Exporter`: a ``name``, a one-line ``help``, a ``default`` path
    relative to DIR, and ``write(rows, base, dest) -> Path``, given the published grades (gradebook rows:
    student, exercise, final_score, max_score, result_dir, policy_note...), the gradebook's folder and where to
    write. A grader_error is never published, so it never reaches an export. Built in: gradescope, csv, junit.

    :param registry: the exporter registry; names must be unique.
    """
