"""Wheels: the core ships no course; the student course ships no answers; both work installed.

Each wheel is built from a copy of this checkout and installed with ``pip --target`` into a folder of its
own, which ``PYTHONPATH`` puts first (the test venv provides torch and the other dependencies).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUDENT_EXERCISE = "positional-encodings"  # fast, tensors only: its public checks run from recorded answers

pytestmark = pytest.mark.slow


def _run(args: list[str], site: Path, cwd: Path, **kw) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(site), GRADER_WORK_DIR=str(cwd / "jobs"))
    env.pop("GRADER_EXERCISES", None)
    return subprocess.run([sys.executable, "-m", "grader", *args], env=env, capture_output=True, text=True,
                          cwd=cwd, timeout=900, **kw)


def _install(wheels: list[Path], site: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--target",
                    str(site), *map(str, wheels)], check=True, capture_output=True, timeout=600)
    return site


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    """The core wheel, the student course wheel (one exercise) and the instructor course wheel."""
    tmp = tmp_path_factory.mktemp("wheels")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".venv", ".git", "*.egg-info", "build", "dist",
                                                             "__pycache__", ".ruff_cache", ".mypy_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(tmp / "dist"), str(src)], check=True, capture_output=True, timeout=600)
    core = next((tmp / "dist").glob("grader-*.whl"))
    env = dict(os.environ, GRADER_WORK_DIR=str(tmp / "jobs"))
    env.pop("GRADER_EXERCISES", None)
    for args in (["export-student", str(tmp / "pack"), "--exercise", STUDENT_EXERCISE, "--wheel", str(tmp / "dist")],
                 ["export-course", str(tmp / "course"), "--wheel", str(tmp / "dist")]):
        done = subprocess.run([sys.executable, "-m", "grader", *args], env=env, capture_output=True, text=True,
                              cwd=tmp, timeout=900)
        assert done.returncode == 0, done.stdout + done.stderr
    student = next((tmp / "dist").glob("grader_course_student-*.whl"))
    instructor = next((tmp / "dist").glob("grader_course-*.whl"))
    return {"core": core, "student": student, "instructor": instructor, "tmp": tmp}


def _course_secrets() -> dict[str, str]:
    """Every reference function body and every distinctive hidden-check line of the course -> where it is."""
    secrets = {}
    for ref in sorted((ROOT / "reference").glob("*/solution.py")):
        text = ref.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and len(node.body) > 1:
                body = " ".join(ast.get_source_segment(text, node.body[-1]).split())
                if len(body) >= 30:
                    secrets[body] = f"{ref.relative_to(ROOT)}:{node.name}"
    core = _installed_text(ROOT / "grader") + _installed_text(ROOT / "plugins")  # the core's own lines are no secret
    for ex in sorted((ROOT / "exercises").glob("*/checks")):
        public = " ".join(" ".join(p.read_text(encoding="utf-8", errors="replace").split())
                          for p in ex.rglob("*") if p.is_file() and "hidden" not in p.parts)
        for path in (ex / "hidden").rglob("*.py"):
            for line in path.read_text(encoding="utf-8").splitlines():
                s = " ".join(line.split())
                if len(s) >= 30 and s not in public and s not in core and not s.startswith(("#", '"', "@", "import ",
                                                                                          "from ")):
                    secrets[s] = str(path.relative_to(ROOT))
    return secrets


def _installed_text(site: Path) -> str:
    return "\n".join(" ".join(p.read_bytes().decode("utf-8", errors="replace").split())
                     for p in site.rglob("*") if p.is_file() and p.suffix in (".py", ".txt", ".json", ".toml", ".md"))


def test_packaging_core_wheel_ships_no_course(wheels, tmp_path):
    site = _install([wheels["core"]], tmp_path / "site")
    top = sorted(p.name for p in site.iterdir() if not p.name.endswith((".dist-info", ".data")))
    assert top == ["bin", "grader"] or top == ["grader"], top
    data = site / "grader" / "_data"
    assert (data / "templates" / "report.html").is_file() and (data / "templates" / "server_app.js").is_file()
    assert (site / "grader" / "server" / "app.py").is_file(), "the grading server ships in the wheel"
    assert (site / "grader" / "builtin" / "sandbox_bwrap.py").is_file()
    assert not (data / "exercises").exists() and not (data / "reference").exists()
    assert (site / "grader" / "sample" / "reference" / "solution.py").is_file(), "grader demo needs its sample"
    # every subpackage is listed in pyproject's [tool.setuptools] packages: a module left out breaks the install
    source = {p.relative_to(ROOT / "grader") for p in (ROOT / "grader").rglob("*.py") if "__pycache__" not in p.parts}
    assert source <= {p.relative_to(site / "grader") for p in (site / "grader").rglob("*.py")}, "missing from the wheel"
    text = _installed_text(site)
    leaked = [where for secret, where in _course_secrets().items() if secret in text]
    assert leaked == [], leaked[:5]
    listed = _run(["list", "--json"], site, tmp_path)
    assert [e["id"] for e in json.loads(listed.stdout)] == ["sample-softmax"], listed.stderr
    demo = _run(["demo", "--out", str(tmp_path / "demo")], site, tmp_path)
    assert demo.returncode == 0 and (tmp_path / "demo" / "sample" / "sample-softmax" / "report.html").is_file()


def test_packaging_student_course_has_no_answers_and_checks_work(wheels, tmp_path):
    site = _install([wheels["core"], wheels["student"]], tmp_path / "site")
    text = _installed_text(site)
    leaked = [where for secret, where in _course_secrets().items() if secret in text]
    assert leaked == [], leaked[:5]
    listed = json.loads(_run(["list", "--json"], site, tmp_path).stdout)
    assert {e["id"]: e["source"] for e in listed}[STUDENT_EXERCISE] == "grader-course-student"
    stub = site / "grader_course_student" / "_data" / "exercises" / STUDENT_EXERCISE / "stub"
    untouched = _run(["check", STUDENT_EXERCISE, str(stub)], site, tmp_path)
    assert untouched.returncode == 1 and "Score: 0/" in untouched.stdout, untouched.stdout + untouched.stderr
    # a correct solution (the reference, kept outside the installed files) passes every public check
    mine = tmp_path / "mine"
    shutil.copytree(ROOT / "reference" / STUDENT_EXERCISE, mine, ignore=shutil.ignore_patterns("__pycache__"))
    correct = _run(["check", STUDENT_EXERCISE, str(mine)], site, tmp_path)
    assert correct.returncode == 0, correct.stdout + correct.stderr
    assert "Hidden checks worth" in correct.stdout


def test_packaging_instructor_course_grades_and_yields_to_a_named_folder(wheels, tmp_path):
    site = _install([wheels["core"], wheels["instructor"], wheels["student"]], tmp_path / "site")
    listed = {e["id"]: e["source"] for e in json.loads(_run(["list", "--json"], site, tmp_path).stdout)}
    assert listed[STUDENT_EXERCISE] == "grader-course", "the instructor's copy wins over the student's"
    assert set(listed) >= {"self-attention", "encoder-block", "sample-softmax"}
    ref = site / "grader_course" / "_data" / "reference" / "self-attention"
    graded = _run(["grade", "self-attention", str(ref), "--out", str(tmp_path / "o")], site, tmp_path)
    assert graded.returncode == 0, graded.stdout + graded.stderr
    doc = json.loads((tmp_path / "o" / "self-attention" / "self-attention" / "results.json").read_text())
    assert doc["score"] == doc["max_score"] == 15
    # a folder the user names is their choice, over both installed copies
    env = {"GRADER_EXERCISES": str(wheels["tmp"] / "pack")}
    chosen = subprocess.run([sys.executable, "-m", "grader", "list", "--json"], capture_output=True, text=True,
                            cwd=tmp_path, env=dict(os.environ, PYTHONPATH=str(site), **env), timeout=300)
    sources = {e["id"]: e["source"] for e in json.loads(chosen.stdout)}
    assert sources[STUDENT_EXERCISE] == f"GRADER_EXERCISES {wheels['tmp'] / 'pack'}"
