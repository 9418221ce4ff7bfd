from __future__ import annotations

import pytest

from grader.config import Settings
from grader.errors import GraderError


def test_config_layers_defaults_pyproject_env_flags(tmp_path, monkeypatch):
    assert Settings.load(cwd=tmp_path).seed == 0
    (tmp_path / "pyproject.toml").write_text("[tool.grader]\nseed = 5\nsandbox = 'process'\n")
    assert Settings.load(cwd=tmp_path).seed == 5
    monkeypatch.setenv("GRADER_SEED", "7")
    s = Settings.load(cwd=tmp_path)
    assert (s.seed, s.sandbox) == (7, "process")
    assert Settings.load({"seed": 9, "sandbox": None}, cwd=tmp_path).seed == 9


def test_config_rejects_unknown_and_bad_values(tmp_path, monkeypatch):
    (tmp_path / "pyproject.toml").write_text("[tool.grader]\nsed = 5\n")
    with pytest.raises(GraderError, match="unknown setting"):
        Settings.load(cwd=tmp_path)
    (tmp_path / "pyproject.toml").unlink()
    monkeypatch.setenv("GRADER_SEED", "many")
    with pytest.raises(GraderError, match="must be a number"):
        Settings.load(cwd=tmp_path)


def test_every_environment_variable_grader_reads_is_in_the_documented_table():
    """A GRADER_* name in the code that the table lacks is a variable no user can find out about."""
    import re
    from dataclasses import fields
    from pathlib import Path

    from grader.config import ENVIRONMENT, INTERNAL_ENVIRONMENT, environment_markdown

    root = Path(__file__).resolve().parent.parent
    known = set(ENVIRONMENT) | set(INTERNAL_ENVIRONMENT) | {f"GRADER_{f.name.upper()}" for f in fields(Settings)}
    known |= {"GRADER_ASSET_"}  # the prefix of GRADER_ASSET_<NAME>, as grader.assets spells it
    named = {m for folder in ("grader", "plugins") for path in (root / folder).rglob("*.py")
             for m in re.findall(r"\bGRADER_[A-Z_]+[A-Z]_?\b", path.read_text(encoding="utf-8"))
             if not m.startswith("GRADER_ERROR")}
    named = {n for n in named if not n.startswith("GRADER_ASSET_") or n == "GRADER_ASSET_"}
    assert named <= known, f"read but not in grader.config.ENVIRONMENT: {sorted(named - known)}"
    assert (root / "docs" / "environment.md").read_text(encoding="utf-8") == environment_markdown(), (
        "docs/environment.md is generated: python -c 'from grader.config import environment_markdown as m; "
        "print(m(), end=\"\")' > docs/environment.md")
