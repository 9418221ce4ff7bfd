"""A non-editable wheel install works, and lands nothing generic in site-packages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "dist",
                                                             "__pycache__", ".ruff_cache", ".mypy_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True, timeout=600)
    wheel = next((tmp / "dist").glob("grader-*.whl"))
    site = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, timeout=600)
    return site


def test_packaging_only_grader_lands_in_site_packages(installed):
    top = sorted(p.name for p in installed.iterdir() if not p.name.endswith((".dist-info", ".data")))
    assert top == ["bin", "grader"] or top == ["grader"], top
    data = installed / "grader" / "_data"
    assert (data / "templates" / "report.html").is_file()
    assert (data / "templates" / "server_index.html").is_file() and (data / "templates" / "server_app.js").is_file()
    assert (installed / "grader" / "server" / "app.py").is_file(), "the grading server ships in the wheel"
    assert (installed / "grader" / "builtin" / "sandbox_bwrap.py").is_file()
    exercises = [p.name for p in (data / "exercises").iterdir() if (p / "exercise.toml").is_file()]
    assert exercises, "no exercises in the wheel"
    for ex in exercises:
        assert (data / "reference" / ex / "solution.py").is_file()
        assert list((data / "exercises" / ex / "checks").rglob("test_*.py"))


def test_packaging_wheel_install_lists_and_grades(installed, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(installed))
    listed = subprocess.run([sys.executable, "-m", "grader", "list", "--json"], env=env, capture_output=True,
                            text=True, check=True, cwd=tmp_path)
    ids = [e["id"] for e in json.loads(listed.stdout)]
    probe = subprocess.run([sys.executable, "-c", "import grader, sys; print(grader.__file__)"], env=env,
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert probe.stdout.startswith(str(installed))
    ex = ids[0]
    ref = installed / "grader" / "_data" / "reference" / ex
    graded = subprocess.run([sys.executable, "-m", "grader", "grade", ex, str(ref), "--out", str(tmp_path / "o")],
                            env=env, capture_output=True, text=True, cwd=tmp_path)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    doc = json.loads((tmp_path / "o" / ex / ex / "results.json").read_text())
    assert doc["score"] == doc["max_score"] > 0
