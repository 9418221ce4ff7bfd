"""The asset system: registry, course config, cache, preparing (atomic, idempotent, resumable, locked)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grader.assets import (
    Asset,
    AssetConfig,
    AssetError,
    AssetRegistry,
    default_cache_dir,
    prepare,
    read_manifest,
    resolve,
    verify,
)
from grader.errors import GraderError, PluginError, UnknownName


def _registry(tmp_path: Path, online: dict[str, str] | None = None) -> AssetRegistry:
    return AssetRegistry(AssetConfig(cache_dir=tmp_path / "cache", online=online or {}))


def _text_asset(name: str = "toy", calls: list[str] | None = None, **kw) -> Asset:
    def build(ctx):
        if calls is not None:
            calls.append(name)
        (ctx.out / "words.txt").write_text("alpha\nbeta\n")
        (ctx.out / "sub").mkdir(exist_ok=True)
        (ctx.out / "sub" / "more.txt").write_text("gamma\n")

    return Asset(name, "word-lists", "a toy word list", "CC0", "made in the test", build, **kw)


def test_assets_registry_prefers_lowest_priority_and_rejects_duplicates(tmp_path):
    reg = _registry(tmp_path)
    reg.add(_text_asset())
    reg.add(_text_asset(provider="online", priority=10))
    assert reg.get("toy").provider == "online"
    assert reg.get("toy", provider="offline").provider == "offline"
    assert [a.provider for a in reg.providers("toy")] == ["online", "offline"]
    with pytest.raises(PluginError, match="two plugins register the asset 'toy' for provider 'offline'"):
        reg.add(_text_asset())
    with pytest.raises(UnknownName, match=r"unknown asset 'toi' \(known: toy\)"):
        reg.get("toi")
    with pytest.raises(PluginError, match="lower-case"):
        reg.add(_text_asset(name="Bad Name"))
    with pytest.raises(PluginError, match="kind must be one of"):
        reg.add(Asset("weird", "blob", "", "", "", lambda ctx: None))


def test_assets_config_reads_pyproject_then_env(tmp_path):
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [tool.grader.assets]
        encoder-small = "hf:distilbert-base-uncased"
        word-vectors = "gensim:glove-wiki-gigaword-100"
    """))
    env = {"GRADER_ASSET_WORD_VECTORS": "", "GRADER_ASSET_WIKI_SAMPLE": "hf-dataset:wikitext",
           "GRADER_ASSETS_DIR": str(tmp_path / "c")}
    config = AssetConfig.load(cwd=tmp_path, environ=env)
    assert config.online == {"encoder-small": "hf:distilbert-base-uncased", "wiki-sample": "hf-dataset:wikitext"}
    assert config.cache_dir == (tmp_path / "c").resolve()
    (tmp_path / "pyproject.toml").write_text("[tool.grader.assets]\nencoder-small = 3\n")
    with pytest.raises(GraderError, match=r"\[tool.grader.assets\] maps asset names to hub ids"):
        AssetConfig.load(cwd=tmp_path, environ={})


def test_assets_cache_dir_defaults_to_user_cache(tmp_path, monkeypatch):
    assert default_cache_dir({"XDG_CACHE_HOME": str(tmp_path)}) == (tmp_path / "grader" / "assets").resolve()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir({}) == (tmp_path / "home" / ".cache" / "grader" / "assets").resolve()


def test_assets_settings_accept_the_course_asset_table(tmp_path):
    from grader.config import Settings

    (tmp_path / "pyproject.toml").write_text('[tool.grader]\nseed = 3\n[tool.grader.assets]\nx = "hf:y"\n')
    assert Settings.load(cwd=tmp_path).seed == 3


def test_assets_prepare_builds_once_read_only_with_manifest(tmp_path):
    calls: list[str] = []
    reg = _registry(tmp_path)
    reg.add(_text_asset(calls=calls))
    first = prepare(reg, ["toy"])
    again = prepare(reg, ["toy"])
    assert calls == ["toy"] and first[0].built and not again[0].built
    folder = reg.path("toy")
    assert folder == tmp_path / "cache" / "toy" / "offline" and first[0].path == folder
    manifest = read_manifest(folder)
    assert manifest["licence"] == "CC0" and manifest["source"] == "made in the test"
    assert set(manifest["files"]) == {"words.txt", "sub/more.txt"} and len(manifest["sha256"]) == 64
    assert manifest["size_bytes"] == 17 == first[0].size_bytes
    assert reg.status(reg.get("toy")) == "ready"
    for path in [folder, *folder.rglob("*")]:
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH), path
    assert not (tmp_path / "cache" / ".partial" / "toy--offline").exists()
    prepare(reg, ["toy"], force=True)
    assert calls == ["toy", "toy"]


def test_assets_prepare_resumes_after_an_interrupted_build(tmp_path):
    ran: list[str] = []

    def build(ctx):
        if ctx.pending("download"):
            ran.append("download")
            (ctx.out / "big.bin").write_bytes(b"x" * 1000)
            ctx.finished("download")
        ran.append("convert")
        if not (ctx.out / "attempted").exists():
            (ctx.out / "attempted").write_text("1")
            raise RuntimeError("killed half-way")
        (ctx.out / "model.txt").write_text("done")

    reg = _registry(tmp_path)
    reg.add(Asset("resumable", "model", "", "MIT", "test", build))
    with pytest.raises(AssetError, match="finished steps are kept; rerun `grader assets prepare resumable`"):
        prepare(reg, ["resumable"])
    assert reg.status(reg.get("resumable")) == "not prepared"
    prepare(reg, ["resumable"])
    assert ran == ["download", "convert", "convert"]
    assert set(read_manifest(reg.path("resumable"))["files"]) == {"big.bin", "attempted", "model.txt"}


def test_assets_recipe_change_rebuilds_and_outdated_is_reported(tmp_path):
    calls: list[str] = []
    reg = _registry(tmp_path)
    reg.add(_text_asset(calls=calls))
    prepare(reg, ["toy"])
    newer = _registry(tmp_path)
    newer.add(_text_asset(calls=calls, recipe="2"))
    assert newer.status(newer.get("toy")) == "outdated"
    assert "not prepared" in resolve(newer, ["toy"]).problem
    prepare(newer, ["toy"])
    assert calls == ["toy", "toy"] and read_manifest(newer.path("toy"))["recipe"] == "2"


def test_assets_dependencies_come_first_and_cycles_are_errors(tmp_path):
    seen: dict[str, object] = {}

    def uses_toy(ctx):
        seen.update(ctx.inputs)
        (ctx.out / "v.txt").write_text((ctx.inputs["toy"] / "words.txt").read_text().upper())

    reg = _registry(tmp_path)
    reg.add(Asset("vectors-from-toy", "vectors", "", "CC0", "derived", uses_toy, depends=("toy",)))
    reg.add(_text_asset())
    done = prepare(reg, ["vectors-from-toy"])
    assert [p.asset.name for p in done] == ["toy", "vectors-from-toy"]
    assert seen == {"toy": reg.path("toy")}
    assert (reg.path("vectors-from-toy") / "v.txt").read_text() == "ALPHA\nBETA\n"
    loop = _registry(tmp_path / "loop")
    loop.add(Asset("a", "text", "", "", "", lambda ctx: None, depends=("b",)))
    loop.add(Asset("b", "text", "", "", "", lambda ctx: None, depends=("a",)))
    with pytest.raises(PluginError, match="cycle: a -> b -> a"):
        loop.closure(["a"])


def test_assets_missing_module_is_unavailable_with_install_hint(tmp_path):
    reg = _registry(tmp_path)
    reg.add(_text_asset(modules=("no_such_module_for_grader",), install="pip install no-such"))
    assert reg.status(reg.get("toy")).startswith("unavailable: needs the Python module(s) no_such_module_for_grader")
    with pytest.raises(AssetError, match=r"cannot prepare toy: .*\(pip install no-such\)"):
        prepare(reg, ["toy"])


def test_assets_verify_finds_changed_files(tmp_path):
    reg = _registry(tmp_path)
    reg.add(_text_asset())
    prepare(reg, ["toy"])
    asset = reg.get("toy")
    assert verify(reg, asset) == []
    target = reg.path("toy") / "words.txt"
    os.chmod(target, 0o644)
    target.write_text("tampered\n")
    assert verify(reg, asset) == ["words.txt"]


def test_assets_resolve_maps_prepared_names_and_explains_the_rest(tmp_path):
    reg = _registry(tmp_path)
    reg.add(_text_asset())
    missing = resolve(reg, ["toy"])
    assert missing.paths == {} and "run `grader assets prepare toy` once" in missing.problem
    assert "no installed plugin provides the asset(s) nope" in resolve(reg, ["nope"]).problem
    prepare(reg, ["toy"])
    found = resolve(reg, ["toy"])
    assert found.problem == "" and found.paths == {"toy": str(reg.path("toy"))}
    assert found.provenance["toy"]["sha256"] == read_manifest(reg.path("toy"))["sha256"]


PREPARE_SCRIPT = """
import sys, time
from pathlib import Path
from grader.assets import Asset, AssetConfig, AssetRegistry, prepare
log = Path(sys.argv[2])
def build(ctx):
    with open(log, "a") as fh:
        fh.write("build\\n")
    time.sleep(1.5)
    (ctx.out / "data.txt").write_text("slow")
reg = AssetRegistry(AssetConfig(cache_dir=Path(sys.argv[1])))
reg.add(Asset("slow", "text", "", "CC0", "test", build))
messages = []
done = prepare(reg, ["slow"], progress=lambda m, f: messages.append(m))
print(done[0].built, any("waiting" in m for m in messages))
"""


def test_assets_two_processes_preparing_at_once_build_once(tmp_path):
    log = tmp_path / "builds.log"
    argv = [sys.executable, "-c", PREPARE_SCRIPT, str(tmp_path / "cache"), str(log)]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = sorted(p.communicate(timeout=60)[0].strip() for p in procs)
    assert all(p.returncode == 0 for p in procs)
    assert log.read_text() == "build\n"
    assert outs == ["False True", "True False"]  # one built it, the other waited and found it ready
    assert (tmp_path / "cache" / "slow" / "offline" / "data.txt").read_text() == "slow"


def test_assets_every_exercise_names_registered_assets(registries):
    for exercise in registries.exercises:
        for name in exercise.assets:
            assert name in registries.assets, f"{exercise.id} needs {name!r}, which no plugin registers"


def test_assets_offline_assets_record_licence_and_source(registries):
    expected = {"encoder-small", "causal-lm-small", "wiki-sample", "sentiment-sentences", "lee-corpus",
                "word-benchmarks", "shakespeare", "word-vectors"}
    offline = {a.name: a for name in expected for a in registries.assets.providers(name) if a.provider == "offline"}
    assert set(offline) == expected
    for asset in offline.values():
        assert asset.licence and asset.source and asset.summary and asset.size_mb > 0, asset.name


def test_assets_manifest_is_plain_json(tmp_path):
    reg = _registry(tmp_path)
    reg.add(_text_asset())
    prepare(reg, ["toy"])
    data = json.loads((reg.path("toy") / "asset.json").read_text())
    assert data["name"] == "toy" and data["provider"] == "offline" and data["build_seconds"] >= 0
