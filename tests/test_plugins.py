"""The plugin contract: every hook documented and tested; built-ins register like third parties."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader import hookimpl, hookspecs
from grader.errors import PluginError, UnknownName
from grader.plugins import Registries, make_plugin_manager

HOOKS = sorted(n for n, f in vars(hookspecs).items() if n.startswith("grader_") and inspect.isfunction(f))


def test_hooks_are_all_documented_and_tested():
    this_file = Path(__file__).read_text()
    for name in HOOKS:
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.strip()) > 40, f"{name} needs a docstring saying when it is called"
        assert f"def test_hook_{name}" in this_file, f"{name} needs a test_hook_{name}"


def test_hook_grader_register_exercises(registries):
    ids = [e.id for e in registries.exercises]
    assert "sample-add" in ids
    sample = registries.exercises.get("sample-add")
    assert sample.source == "grader_sample_exercise"
    assert sample.points == 4 and sample.reference_dir is not None


def test_hook_grader_register_sandboxes(registries):
    names = [s.name for s in registries.sandboxes]
    assert {"bwrap", "process"} <= set(names)
    for sandbox in registries.sandboxes:
        ok, why = sandbox.available()
        assert isinstance(ok, bool) and why


def test_sandbox_contract_is_declared_and_a_duck_typed_backend_gets_the_defaults():
    from grader.registry import SandboxRegistry
    from grader.sandbox import Sandbox, SandboxBase

    class Minimal:  # what a third-party backend written before SandboxBase declares
        name, priority = "minimal", 5

        def available(self):
            return True, "always"

        def start(self, spec):
            raise OSError("not in this test")

    class Declared(SandboxBase):
        name, priority, isolates_filesystem, supports_gpu = "declared", 6, True, True

        def cleanup(self, job_id):
            return 2

    registry = SandboxRegistry()
    declared = Declared()
    registry.add(Minimal())
    registry.add(declared)
    minimal = registry.get("minimal")
    assert isinstance(minimal, Sandbox) and minimal.available() == (True, "always")
    assert (minimal.isolates_filesystem, minimal.supports_gpu, minimal.cleanup("job")) == (None, False, 0)
    assert registry.get("declared") is declared, "a SandboxBase subclass is registered as itself"
    for backend in Registries.collect(make_plugin_manager(entry_points=False)).sandboxes:
        assert isinstance(backend, SandboxBase), f"the built-in {backend.name} backend declares the whole contract"


def test_hook_grader_register_commands(tmp_path):
    """A plugin's command runs as `grader NAME` and is listed; one that takes a built-in name is refused."""
    (tmp_path / "hello_plugin.py").write_text(
        "import click\nfrom grader import hookimpl\n\n"
        "@click.command('hello')\n@click.argument('who')\ndef hello(who):\n"
        "    \"\"\"Say hello (a plugin's command).\"\"\"\n    click.echo(f'hello {who}')\n\n"
        "@hookimpl\ndef grader_register_commands(registry):\n    registry.add(hello)\n")
    (tmp_path / "clash_plugin.py").write_text(
        "import click\nfrom grader import hookimpl\n\n@click.command('list')\ndef mine():\n    pass\n\n"
        "@hookimpl\ndef grader_register_commands(registry):\n    registry.add(mine)\n")

    def grader(*args: str, plugins: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=str(tmp_path), GRADER_PLUGINS=plugins)
        return subprocess.run([sys.executable, "-m", "grader", *args], env=env, capture_output=True, text=True,
                              timeout=120, cwd=tmp_path)

    said = grader("hello", "class", plugins="hello_plugin")
    assert said.returncode == 0 and said.stdout == "hello class\n", said.stderr
    listed = grader("--help", plugins="hello_plugin").stdout
    assert "hello " in listed and "Say hello" in listed and "image " in listed, listed
    clash = grader("--help", plugins="clash_plugin")  # plugin commands load for the listing
    assert clash.returncode == 0 and "sandboxes " in clash.stdout, clash.stderr
    assert "plugin commands unavailable" in clash.stderr and "'list'" in clash.stderr


def test_hook_grader_register_exporters(tmp_path):
    """A plugin's export format is offered by `grader export --format`; an unknown name lists the installed."""
    from click.testing import CliRunner
    from fixtures.class_roster import make_class

    from grader import cli
    from grader.cli.common import CliState
    from grader.reports.exports import Exporter

    def write_tsv(rows, base, dest):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("".join(f"{r['student']}\t{r['exercise']}\t{r['final_score']:g}\n" for r in rows))
        return dest

    class TsvPlugin:
        @hookimpl
        def grader_register_exporters(self, registry):
            registry.add(Exporter("tsv", "tab-separated grades", "exports/grades.tsv", write_tsv))

    make_class.synthetic_results(tmp_path, students=2, exercises=("ex-a",), checks=1)
    state = CliState(Registries.collect(make_plugin_manager(extra=(TsvPlugin(),), entry_points=False)))
    assert {e.name for e in state.registries().exporters} == {"gradescope", "csv", "junit", "tsv"}
    done = CliRunner().invoke(cli.main, ["export", str(tmp_path), "--format", "tsv"], obj=state)
    assert done.exit_code == 0, done.output
    lines = (tmp_path / "exports" / "grades.tsv").read_text().splitlines()
    assert len(lines) == 2 and all(line.count("\t") == 2 for line in lines)
    unknown = CliRunner().invoke(cli.main, ["export", str(tmp_path), "--format", "xlsx"], obj=state)
    assert unknown.exit_code == 2 and "unknown export format 'xlsx'" in unknown.output
    assert "csv, gradescope, junit, tsv" in unknown.output


def test_hook_grader_register_reporters(registries):
    assert {r.name for r in registries.reporters} >= {"json", "html"}


def test_hook_grader_register_assets(tmp_path):
    from grader.assets import Asset, AssetConfig

    seen = []

    class Extra:
        @hookimpl
        def grader_register_assets(self, registry, config):
            seen.append(config)
            registry.add(Asset("extra-words", "word-lists", "words", "CC0", "a plugin", lambda ctx: None))

    pm = make_plugin_manager(extra=(Extra(),), entry_points=False)
    reg = Registries.collect(pm)
    assert isinstance(seen[0], AssetConfig) and seen[0] is reg.assets.config
    assert {"encoder-small", "word-vectors", "wiki-sample", "extra-words"} <= {a.name for a in reg.assets}
    assert reg.assets.get("encoder-small").provider == "offline"


def test_hook_grader_graded(registries, tmp_path, good_sample):
    seen = []

    class Listener:
        @hookimpl
        def grader_graded(self, result):
            seen.append((result.exercise.id, result.score))

    from grader import api
    from grader.config import Settings

    registries.pm.register(Listener(), name="listener")
    try:
        sub = tmp_path / "s.py"
        sub.write_text(good_sample)
        api.grade(registries, "sample-add", sub, Settings.load({"work_dir": tmp_path / "j"}, cwd=tmp_path))
    finally:
        registries.pm.unregister(name="listener")
    assert seen == [("sample-add", 4.0)]


def test_hook_grader_register_policies(registries):
    from grader.policies import ClassPolicy, JobInfo, admit, collect

    policies = collect(registries.pm)
    assert {"late_penalty", "rate_limit"} <= {p.name for p in policies}

    class Closed:
        name = "closed"

        def admit(self, job, options):
            return options["why"]

        def adjust(self, job, score, max_score, options):
            return score, ""

    class Plugin:
        @hookimpl
        def grader_register_policies(self, registry):
            registry.add(Closed())

    registries.pm.register(Plugin(), name="closed-policy")
    try:
        policies = list(collect(registries.pm))
    finally:
        registries.pm.unregister(name="closed-policy")
    from datetime import UTC, datetime

    job = JobInfo("alice", "sample-add", datetime.now(UTC))
    assert admit(policies, ClassPolicy.from_dict({"closed": {"why": "the course is over"}}), job) == \
        "closed: the course is over"
    assert admit(policies, ClassPolicy(), job) == "", "a policy without a table in the class file does nothing"


def test_plugins_misspelt_hook_is_an_error():
    class Typo:
        @hookimpl
        def grader_register_exercise(self, registry):  # missing "s"
            pass

    with pytest.raises(PluginError, match="grader_register_exercise"):
        make_plugin_manager(extra=(Typo(),), entry_points=False)


def test_plugins_duplicate_exercise_id_is_an_error(sample_plugin):
    class Again:
        @hookimpl
        def grader_register_exercises(self, registry):
            registry.add_folder(sample_plugin.HERE / "exercise", reference=sample_plugin.HERE / "reference")

    pm = make_plugin_manager(extra=(sample_plugin, Again()), entry_points=False)
    with pytest.raises(PluginError, match="two plugins register the exercise 'sample-add'"):
        Registries.collect(pm)


def test_plugins_unknown_names_list_the_known_ones(registries):
    with pytest.raises(UnknownName, match=r"known: .*sample-add"):
        registries.exercises.get("sample-ad")


def test_plugins_bad_exercise_metadata_is_reported(tmp_path):
    folder = tmp_path / "ex"
    (folder / "stub").mkdir(parents=True)
    (folder / "checks" / "public").mkdir(parents=True)
    (folder / "exercise.toml").write_text('id = "Bad Id"\ntitle = "t"\nlevel = "foundation"\npoints = 1\n')

    class Bad:
        @hookimpl
        def grader_register_exercises(self, registry):
            registry.add_folder(folder)

    # reported, not fatal: the other exercises stay usable, and the broken one says why when asked for
    registries = Registries.collect(make_plugin_manager(extra=(Bad(),), entry_points=False))
    assert "lower-case" in registries.exercises.broken["ex"]
    with pytest.raises(PluginError, match=r"cannot be loaded: .*lower-case"):
        registries.exercises.get("ex")


@pytest.mark.slow
def test_plugins_installed_entry_point_plugin_lists_and_grades(tmp_path):
    """A separately installed exercise plugin (a real wheel install) shows up and grades."""
    site = tmp_path / "site"
    plugin_src = Path(__file__).parent / "fixtures" / "sample_plugin"
    build = tmp_path / "src"
    import shutil

    shutil.copytree(plugin_src, build)
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(build)],
        check=True, capture_output=True, timeout=300,
    )
    env = dict(os.environ, PYTHONPATH=str(site))
    listed = subprocess.run([sys.executable, "-m", "grader", "list", "--json"], env=env, capture_output=True,
                            text=True, check=True, cwd=tmp_path)
    assert '"sample-add"' in listed.stdout
    ref = site / "grader_sample_exercise" / "reference"
    graded = subprocess.run([sys.executable, "-m", "grader", "grade", "sample-add", str(ref), "--out",
                             str(tmp_path / "out")], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    assert "Score: 4/4 (pass)" in graded.stdout
    assert (tmp_path / "out" / "reference" / "sample-add" / "report.html").exists()


def test_plugins_every_hook_is_documented():
    """docs/plugins.md has a heading per hook, and every hookspec documents its parameters."""
    from grader import hookspecs

    docs = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text(encoding="utf-8")
    for name, fn in inspect.getmembers(hookspecs, inspect.isfunction):
        if not name.startswith("grader_"):
            continue
        assert f"\n## {name}\n" in docs, f"docs/plugins.md needs a '## {name}' section"
        for param in inspect.signature(fn).parameters:
            assert f":param {param}:" in (fn.__doc__ or ""), f"{name}'s docstring needs ':param {param}:'"
