"""Assets while grading: resolved on the trusted side, read-only in the sandbox, never a student's loss."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from grader import api, hookimpl
from grader.assets import Asset, prepare
from grader.config import Settings
from grader.errors import PluginError
from grader.plugins import Registries, make_plugin_manager

CHECKS = '''
from pathlib import Path

import pytest


@pytest.mark.points(1)
def test_reads_the_asset(student, assets, targets):
    path = Path(assets["toy-words"]) / "words.txt"
    words = student.read_words(str(path))
    assert words == path.read_text().split()
    assert len(words) >= targets["min_words"]


@pytest.mark.points(1)
def test_asset_is_read_only_in_the_sandbox(student, assets):
    assert student.try_write(str(assets["toy-words"])) == "denied"
'''
SOLUTION = '''
def read_words(path):
    with open(path) as fh:
        return fh.read().split()


def try_write(folder):
    try:
        with open(folder + "/words.txt", "w") as fh:
            fh.write("overwritten")
    except OSError:
        return "denied"
    return "written"
'''


def _exercise(root: Path, extra: str = "") -> Path:
    folder = root / "ex"
    (folder / "stub").mkdir(parents=True)
    (folder / "checks" / "public").mkdir(parents=True)
    (folder / "exercise.toml").write_text(textwrap.dedent(f"""
        id = "toy-assets"
        title = "reads a course asset"
        level = "foundation"
        points = 2
        assets = ["toy-words"]
        {extra}
        [profiles.cpu]
        min_words = 2
    """))
    (folder / "stub" / "solution.py").write_text("def read_words(path):\n    raise NotImplementedError\n")
    (folder / "checks" / "public" / "test_toy.py").write_text(CHECKS)
    (root / "sub").mkdir()
    (root / "sub" / "solution.py").write_text(SOLUTION)
    return folder


def _toy_asset(ctx) -> None:
    (ctx.out / "words.txt").write_text("alpha beta gamma\n")


class ToyPlugin:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @hookimpl
    def grader_register_exercises(self, registry):
        registry.add_folder(self.folder)

    @hookimpl
    def grader_register_assets(self, registry, config):
        registry.add(Asset("toy-words", "word-lists", "three words", "CC0", "the test", _toy_asset))


@pytest.fixture
def toy(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADER_ASSETS_DIR", str(tmp_path / "cache"))
    folder = _exercise(tmp_path)
    registries = Registries.collect(make_plugin_manager(extra=(ToyPlugin(folder),), entry_points=False))
    settings = Settings.load({"work_dir": tmp_path / "jobs"}, cwd=tmp_path)
    return registries, settings, tmp_path / "sub"


def test_assets_unprepared_asset_is_a_grader_error_with_the_fix(toy):
    registries, settings, sub = toy
    result = api.grade(registries, "toy-assets", sub, settings)
    assert result.status.value == "grader_error" and result.score == 0 and result.max_score == 2
    for check in result.checks:
        assert check.status.value == "grader_error"
        assert "run `grader assets prepare toy-words` once" in check.message
        assert "no points are lost" in check.message


def test_assets_prepared_asset_is_mounted_read_only_with_targets(toy):
    registries, settings, sub = toy
    prepare(registries.assets, ["toy-words"])
    sandbox = next((s for s in registries.sandboxes if s.name == "bwrap"), None)
    if sandbox is None or not sandbox.available()[0]:
        pytest.skip("the read-only mount is enforced by filesystem-isolating sandboxes (bwrap here)")
    result = api.grade(registries, "toy-assets", sub, Settings.load({"work_dir": settings.work_dir,
                                                                      "sandbox": "bwrap"}))
    assert result.score == 2, [(c.name, c.message) for c in result.checks]
    assert result.provenance["profile"] == "cpu"
    assets = result.provenance["assets"]["toy-words"]
    assert assets["provider"] == "offline" and len(assets["sha256"]) == 64
    assert (registries.assets.path("toy-words") / "words.txt").read_text() == "alpha beta gamma\n"


@pytest.mark.parametrize("extra,message", [
    ('assets = ["Not A Name"]', "assets must be a list of asset names"),
    ("[profiles.tpu]\nx = 1", "[profiles.tpu] is not a profile (cpu and gpu are)"),
    ('device = "gpu-optional"', "declare [profiles.gpu] too"),
])
def test_assets_exercise_metadata_is_validated(tmp_path, extra, message):
    folder = _exercise(tmp_path)
    toml = (folder / "exercise.toml").read_text()
    if extra.startswith("assets"):
        toml = toml.replace('assets = ["toy-words"]', extra)
    elif extra.startswith("device"):
        toml = toml.replace("points = 2", f"points = 2\n{extra}")
    else:
        toml += extra + "\n"
    (folder / "exercise.toml").write_text(toml)
    # reported, not fatal: the exercise is listed as broken with the reason, and asking for it says why
    registries = Registries.collect(make_plugin_manager(extra=(ToyPlugin(folder),), entry_points=False))
    assert message in registries.exercises.broken[folder.name]
    with pytest.raises(PluginError, match="cannot be loaded"):
        registries.exercises.get(folder.name)


def test_assets_targets_follow_the_profile(tmp_path):
    folder = _exercise(tmp_path)
    (folder / "exercise.toml").write_text((folder / "exercise.toml").read_text().replace(
        "points = 2", 'points = 2\ndevice = "gpu-optional"') + "[profiles.gpu]\nmin_words = 3\n")
    registries = Registries.collect(make_plugin_manager(extra=(ToyPlugin(folder),), entry_points=False))
    exercise = registries.exercises.get("toy-assets")
    assert exercise.assets == ("toy-words",)
    assert exercise.targets("cpu") == {"min_words": 2} and exercise.targets("gpu") == {"min_words": 3}
    assert exercise.summary_dict()["assets"] == ["toy-words"]
