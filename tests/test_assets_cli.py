"""``grader assets``: list, prepare (idempotent, with time and disk), where, verify."""

from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from grader import cli
from grader.assets import Asset, AssetConfig, AssetRegistry
from grader.cli.common import CliState


def _build_words(ctx) -> None:
    (ctx.out / "words.txt").write_text("alpha beta\n")


@pytest.fixture
def run(tmp_path, monkeypatch):
    reg = AssetRegistry(AssetConfig(cache_dir=tmp_path / "cache"))
    reg.add(Asset("toy-words", "word-lists", "two words", "CC0", "the test", _build_words, size_mb=0.01))
    reg.add(Asset("toy-vectors", "vectors", "from the words", "CC0", "derived", _build_words, depends=("toy-words",)))
    reg.add(Asset("needs-missing", "text", "cannot build", "CC0", "nowhere", _build_words,
                  modules=("no_such_module_for_grader",), install="pip install nothing"))
    exercise = SimpleNamespace(id="toy-ex", assets=("toy-words",))
    registries = SimpleNamespace(assets=reg, exercises=SimpleNamespace(ordered=lambda: [exercise]))
    state = CliState(registries)  # type: ignore[arg-type]

    def invoke(*args: str):
        return CliRunner().invoke(cli.main, ["assets", *args], catch_exceptions=False, obj=state)

    invoke.registry = reg
    return invoke


def test_assets_cli_list_shows_provider_size_status_and_users(run):
    table = run("list")
    assert table.exit_code == 0
    lines = table.output.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "PROVIDER", "SIZE", "STATUS", "USED", "BY"]
    toy = next(line for line in lines if line.startswith("toy-words"))
    assert "offline" in toy and "not prepared" in toy and toy.endswith("toy-ex")
    assert "unavailable: needs the Python module(s) no_such_module_for_grader" in table.output
    run("prepare", "toy-words")
    items = {i["name"]: i for i in json.loads(run("list", "--json").output)}
    assert items["toy-words"]["status"] == "ready" and items["toy-words"]["size_bytes"] == 11
    assert items["toy-words"]["licence"] == "CC0" and items["toy-words"]["used_by"] == ["toy-ex"]


def test_assets_cli_prepare_is_idempotent_and_reports_time_and_disk(run):
    first = run("prepare", "toy-vectors")
    assert first.exit_code == 0, first.output
    assert "toy-words" in first.output and "prepared in" in first.output  # the dependency came first
    assert "2 asset(s) ready (2 built)" in first.output and "in all in" in first.output and "GB free" in first.output
    again = run("prepare", "toy-vectors")
    assert again.exit_code == 0 and again.output.count("already prepared") == 2
    assert "2 asset(s) ready (0 built)" in again.output


def test_assets_cli_prepare_needed_and_failures(run):
    needed = run("prepare", "--needed")
    assert needed.exit_code == 0 and "toy-words" in needed.output and "toy-vectors" not in needed.output
    every = run("prepare")  # no names: every asset; one cannot be built here
    assert every.exit_code == 1
    assert "cannot prepare needs-missing: it needs the Python module(s)" in every.output
    assert "not prepared: needs-missing" in every.output


def test_assets_cli_where_and_verify(run):
    before = run("where", "toy-words")
    assert before.exit_code == 1 and "run `grader assets prepare toy-words`" in before.output
    run("prepare", "toy-words")
    where = run("where", "toy-words")
    path = where.output.strip().splitlines()[0]
    assert where.exit_code == 0 and path == str(run.registry.path("toy-words"))
    assert run("verify").exit_code == 0
    os.chmod(f"{path}/words.txt", 0o644)
    with open(f"{path}/words.txt", "w") as fh:
        fh.write("changed\n")
    broken = run("verify", "toy-words")
    assert broken.exit_code == 1 and "changed: words.txt" in broken.output


def test_assets_cli_unknown_asset_is_a_one_line_usage_error(run):
    result = run("prepare", "no-such-asset")
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: unknown asset 'no-such-asset'") and "Traceback" not in result.output
