"""The student pack: usable by `grader check`, and provably free of reference code and hidden checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.errors import GraderError
from grader.student_pack import build_pack

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = FIXTURES / "sample_plugin" / "grader_sample_exercise"
HOSTILE = FIXTURES / "hostile_target"
SECRET = "7f3a-REFERENCE-SECRET-91c2"
GOOD = "def add(a, b):\n    return a + b\n\n\ndef scale(t, k):\n    return t * k\n"


def _pack_text(pack: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", errors="replace") for p in pack.rglob("*") if p.is_file())


def _secrets(exercise: Path, reference: Path) -> set[str]:
    """Every line of the reference and hidden checks that the stub and public checks do not already show."""
    public = "\n".join(p.read_text() for p in [*exercise.joinpath("stub").rglob("*.py"),
                                                *exercise.joinpath("checks", "public").rglob("*.py")])
    lines = set()
    for path in [*reference.rglob("*.py"), *exercise.joinpath("checks", "hidden").rglob("*.py")]:
        lines |= {s for line in path.read_text().splitlines()
                  if len(s := line.strip()) >= 8 and s not in public and not s.startswith(("import ", "from "))}
    return lines


def _check(pack: Path, folder: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, GRADER_EXERCISES=str(pack), GRADER_WORK_DIR=str(tmp_path / "jobs"))
    return subprocess.run([sys.executable, "-m", "grader", "check", "sample-add", str(folder)], env=env,
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_student_pack_has_no_reference_or_hidden_text_and_grader_check_works(registries, settings, tmp_path):
    pack = tmp_path / "pack"
    report = build_pack(registries, pack, ["sample-add"], settings)
    assert report.recorded["sample-add"] >= 1 and not report.unrecorded["sample-add"]
    files = sorted(p.relative_to(pack).as_posix() for p in pack.rglob("*") if p.is_file())
    assert files == ["README.md", "answers/sample-add/answers.json", "answers/sample-add/solution.py",
                     "exercises/sample-add/checks/public/test_add.py", "exercises/sample-add/exercise.toml",
                     "exercises/sample-add/stub/solution.py"]
    text = _pack_text(pack)
    secrets = _secrets(SAMPLE / "exercise", SAMPLE / "reference")
    assert {"return t * k", "def test_scale(student, reference):", '"""scale() of a float tensor"""'} <= secrets
    assert [s for s in secrets if s in text] == []

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "solution.py").write_text(GOOD)
    good = _check(pack, tmp_path / "mine", tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "Score: 1/1 (pass)" in good.stdout and "Hidden checks worth 3 point(s) were not run" in good.stdout
    (tmp_path / "mine" / "solution.py").write_text(GOOD.replace("a + b", "a - b"))
    wrong = _check(pack, tmp_path / "mine", tmp_path)
    assert wrong.returncode == 1 and "add(2, 3) is wrong" in wrong.stdout


def test_student_pack_refuses_to_write_a_pack_that_would_leak(registries, settings, tmp_path):
    # hostile-target's public check compares answer() with the reference's secret: recording it would ship it
    with pytest.raises(GraderError, match="would leak") as info:
        build_pack(registries, tmp_path / "pack", ["hostile-target"], settings)
    assert "--no-answers" in str(info.value)
    assert not (tmp_path / "pack").exists()
    build_pack(registries, tmp_path / "pack", ["hostile-target"], settings, answers_on=False)
    text = _pack_text(tmp_path / "pack")
    assert SECRET not in text and "def add(a, b):\n    return a + b" not in text
    assert [s for s in _secrets(HOSTILE / "exercise", HOSTILE / "reference") if s in text] == []
    assert not (tmp_path / "pack" / "exercises" / "hostile-target" / "checks" / "hidden").exists()
    with pytest.raises(GraderError, match="not empty"):
        build_pack(registries, tmp_path / "pack", ["hostile-target"], settings, answers_on=False)


def _as_new_id(pack: Path, old: str, new: str) -> None:
    """The packaged copy of a built-in exercise wins over a pack's; a new id lets `grader check` use the pack's."""
    for parent in (pack / "exercises", pack / "answers"):
        (parent / old).rename(parent / new)
    toml = pack / "exercises" / new / "exercise.toml"
    toml.write_text(toml.read_text().replace(f'id = "{old}"', f'id = "{new}"'))


@pytest.mark.slow
def test_student_pack_carries_self_attention_without_its_mistake_catalogue(registries, settings, tmp_path):
    exercises = Path(__file__).parent.parent / "exercises" / "self-attention"
    reference = Path(__file__).parent.parent / "reference" / "self-attention"
    pack = tmp_path / "pack"
    build_pack(registries, pack, ["self-attention"], settings)
    checks = pack / "exercises" / "self-attention" / "checks"
    assert (checks / "conftest.py").is_file() and not (checks / "hidden").exists()
    text = _pack_text(pack)
    assert "def sdpa_variant" not in text and "SDPA_MISTAKES" not in text
    # the pack builder's own search passed; here, no line of attention arithmetic from the reference or the
    # hidden folder is in the pack (generic lines such as `return None` are shared by any two Python files)
    arithmetic = ("softmax", "masked_fill", "transpose", "sqrt", " @ ", ".tril(")
    leaked = [s for s in _secrets(exercises, reference) if s in text and any(a in s for a in arithmetic)]
    assert leaked == []

    wrong = Path(__file__).parent / "curriculum" / "self-attention" / "wrong_no_scaling.py"
    env = dict(os.environ, GRADER_WORK_DIR=str(tmp_path / "jobs"))
    # the full course names the mistake, from the catalogue beside the hidden checks
    course = subprocess.run([sys.executable, "-m", "grader", "check", "self-attention", str(wrong)], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert course.returncode == 1 and "did you divide the scores q k^T by sqrt(d_k)" in course.stdout, course.stdout
    _as_new_id(pack, "self-attention", "self-attention-pack")
    env["GRADER_EXERCISES"] = str(pack)
    run = [sys.executable, "-m", "grader", "check", "self-attention-pack"]
    good = subprocess.run([*run, str(reference / "solution.py")], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "(pass)" in good.stdout and "were not run" in good.stdout, "hidden checks are absent, and said to be"
    # in the pack the same mistake still fails every affected check, with the general advice
    bad = subprocess.run([*run, str(wrong)], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "check the scale, the softmax axis" in bad.stdout, bad.stdout
    assert "did you divide the scores" not in bad.stdout
