"""The student pack: usable by `grader check`, and provably free of reference code and hidden checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grader.authoring.student_pack import build_pack
from grader.errors import GraderError

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


# -- the leak check: precise on honest content, and still refusing planted leaks -------------------------

ROOT = Path(__file__).resolve().parent.parent


def _copied(tmp_path: Path, ex_id: str):
    """A copy of a shipped exercise and its reference, loaded as an Exercise (to plant leaks in)."""
    import shutil

    from grader.registry import load_exercise

    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "exercises" / ex_id, tmp_path / "exercises" / ex_id, ignore=ignore)
    shutil.copytree(ROOT / "reference" / ex_id, tmp_path / "reference" / ex_id, ignore=ignore)
    return load_exercise(tmp_path / "exercises" / ex_id, tmp_path / "reference" / ex_id, source="test")


def _leaks(tmp_path: Path, exercises) -> list[str]:
    from grader.authoring.student_pack import _copy_public, find_leaks

    pack = tmp_path / "pack"
    for ex in exercises:
        _copy_public(ex, pack / "exercises" / ex.id)
    return find_leaks(pack, exercises)[0]


def test_student_pack_leak_check_passes_the_whole_course(tmp_path):
    from grader import api

    exercises = [e for e in api.load().exercises.ordered() if e.source == "builtin"]
    assert len(exercises) >= 6
    assert _leaks(tmp_path, exercises) == []


def test_student_pack_refuses_a_reference_function_copied_into_a_conftest(tmp_path):
    ex = _copied(tmp_path / "src", "encoder-block")
    source = (ex.reference_dir / "solution.py").read_text()
    start = source.index("class EncoderBlock")
    conftest = ex.checks_dir / "conftest.py"
    conftest.write_text(conftest.read_text() + "\n\n" + source[start:start + 900])
    leaks = _leaks(tmp_path, [ex])
    assert leaks, "a copied reference class must be refused"
    assert any("exercises/encoder-block/checks/conftest.py:" in x and "reference/encoder-block/solution.py:" in x
               for x in leaks), leaks


def test_student_pack_refuses_a_held_out_sentence_in_a_public_message(tmp_path):
    ex = _copied(tmp_path / "src", "pretrained-classifier")
    sentence = (ex.hidden_checks / "data" / "held_out.txt").read_text().splitlines()[1].split("\t", 1)[1]
    public = next(ex.public_checks.glob("test_*.py"))
    public.write_text(public.read_text() + f'\n\nEXAMPLE = "for instance: {sentence}"\n')
    leaks = _leaks(tmp_path, [ex])
    assert any("held_out.txt:2" in x and sentence[:40] in x for x in leaks), leaks


def test_student_pack_refuses_a_hidden_check_copied_into_a_public_helper(tmp_path):
    ex = _copied(tmp_path / "src", "self-attention")
    hidden = next(ex.hidden_checks.glob("test_*.py")).read_text()
    body = hidden[hidden.index("\ndef test_"):][:700]
    (ex.checks_dir / "helpers.py").write_text(body)
    assert any("checks/helpers.py" in x and "checks/hidden/" in x for x in _leaks(tmp_path, [ex]))


def test_student_pack_export_student_builds_the_whole_course(tmp_path):
    """`grader export-student` for the whole course (without answers: recording them grades every reference)."""
    from click.testing import CliRunner

    from grader.cli import main

    result = CliRunner().invoke(main, ["export-student", str(tmp_path / "pack"), "--no-answers"])
    assert result.exit_code == 0, result.output
    packed = sorted(p.name for p in (tmp_path / "pack" / "exercises").iterdir())
    assert packed == sorted(p.name for p in (ROOT / "exercises").iterdir() if (p / "exercise.toml").is_file())
    assert not list((tmp_path / "pack").rglob("hidden")) and not (tmp_path / "pack" / "reference").exists()
