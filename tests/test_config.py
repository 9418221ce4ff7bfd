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
