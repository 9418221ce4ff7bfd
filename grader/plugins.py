"""Building a plugin manager: built-ins first, then the ``grader`` entry-point group."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field

import pluggy

from grader import hookspecs
from grader.assets import AssetRegistry
from grader.errors import PluginError
from grader.policies import PolicyRegistry
from grader.registry import ExerciseRegistry, ReporterRegistry, SandboxRegistry
from grader.reports.exports import ExporterRegistry

#: built-in plugins, registered exactly like third-party ones
DEFAULT_PLUGINS = (
    "grader.builtin.exercises_sample",
    "grader.builtin.exercises_builtin",
    "grader.builtin.sandbox_bwrap",
    "grader.builtin.sandbox_process",
    "grader.builtin.sandbox_docker",
    "grader.builtin.report_json",
    "grader.builtin.report_html",
    "grader.builtin.assets_offline",
    "grader.builtin.assets_seq2seq",
    "grader.builtin.assets_online",
    "grader.builtin.policy_late",
    "grader.builtin.policy_rate_limit",
    "grader.builtin.export_formats",
    "grader.builtin.exercises_path",
)


def make_plugin_manager(extra: tuple[object, ...] = (), entry_points: bool = True) -> pluggy.PluginManager:
    """A fresh manager: defaults, then installed plugins, then ``extra`` (tests register fakes here)."""
    pm = pluggy.PluginManager("grader")
    pm.add_hookspecs(hookspecs)
    for name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    if entry_points:
        pm.load_setuptools_entrypoints("grader")
    # GRADER_PLUGINS=mod1,mod2 loads plugin modules without installing them; the check runner
    # inherits the variable, so sandboxes registered this way reach it too
    for name in filter(None, (n.strip() for n in os.environ.get("GRADER_PLUGINS", "").split(","))):
        if pm.get_plugin(name) is None:
            try:
                pm.register(importlib.import_module(name), name=name)
            except ImportError as exc:
                raise PluginError(f"GRADER_PLUGINS names {name!r}, which cannot be imported: {exc}") from None
    for plugin in extra:
        pm.register(plugin)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from None
    return pm


@dataclass
class Registries:
    """Everything the plugins registered, collected once per manager."""

    pm: pluggy.PluginManager
    exercises: ExerciseRegistry = field(default_factory=ExerciseRegistry)
    sandboxes: SandboxRegistry = field(default_factory=SandboxRegistry)
    reporters: ReporterRegistry = field(default_factory=ReporterRegistry)
    assets: AssetRegistry = field(default_factory=AssetRegistry)
    exporters: ExporterRegistry = field(default_factory=ExporterRegistry)
    policies: PolicyRegistry = field(default_factory=PolicyRegistry)

    @classmethod
    def collect(cls, pm: pluggy.PluginManager) -> Registries:
        reg = cls(pm)
        for impl in pm.hook.grader_register_exercises.get_hookimpls():
            reg.exercises.source = "builtin" if impl.plugin_name in DEFAULT_PLUGINS else impl.plugin_name
            impl.function(registry=reg.exercises)
        pm.hook.grader_register_sandboxes(registry=reg.sandboxes)
        pm.hook.grader_register_reporters(registry=reg.reporters)
        pm.hook.grader_register_assets(registry=reg.assets, config=reg.assets.config)
        pm.hook.grader_register_exporters(registry=reg.exporters)
        pm.hook.grader_register_policies(registry=reg.policies)
        return reg
