"""The student pack: stubs, public checks and recorded answers; never reference code or hidden checks.

Layout (what ``$GRADER_EXERCISES`` reads, see :mod:`grader.builtin.exercises_path`)::

    PACK/README.md
    PACK/exercises/<id>/exercise.toml, stub/, checks/ (without hidden/)
    PACK/answers/<id>/solution.py, answers.json      (see grader.answers; with --answers)

The pack is built in a temporary folder, searched for every distinctive line and string literal of
the references and hidden checks (and for byte-identical copies of their files), and only then
renamed into place: a pack that would leak is never written.
"""

from __future__ import annotations

import ast
import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from grader import answers, engine
from grader.config import Settings
from grader.errors import GraderError
from grader.models import Exercise
from grader.plugins import Registries

MIN_LINE = 20
MIN_LITERAL = 12
README = """# Student pack

Exercises: {ids}

    pip install grader                      # the grader itself (ask your instructor which version)
    export GRADER_EXERCISES="$PWD"           # point grader at this pack (on Windows: set GRADER_EXERCISES=...)
    grader start EXERCISE                    # copy the stub to ./EXERCISE/solution.py
    grader check EXERCISE                    # run the public checks on your work

The public checks compare your answers with the reference solution's answers, recorded for exactly
the inputs these checks use (answers/). Hidden checks are not here: they run when your work is graded,
and `grader check` says how many points they are worth.
"""


@dataclass
class PackReport:
    path: Path
    exercises: list[str] = field(default_factory=list)
    recorded: dict[str, int] = field(default_factory=dict)
    unrecorded: dict[str, list[str]] = field(default_factory=dict)
    searched: int = 0

    def lines(self) -> list[str]:
        out = [f"Student pack: {self.path}"]
        for ex in self.exercises:
            out.append(f"  {ex}: stub, public checks, {self.recorded.get(ex, 0)} recorded answer(s)")
            out.extend(f"    warning: {c} cannot run in the pack ({why})" for c, why in
                       (item.split("\t", 1) for item in self.unrecorded.get(ex, [])))
        out.append(f"Verified: none of {self.searched} distinctive lines and literals of the references and "
                   "hidden checks occurs in the pack.")
        out.append(f"Students: GRADER_EXERCISES={self.path} grader check EXERCISE")
        return out


def _files(root: Path | None) -> list[Path]:
    if root is None or not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def _copy_public(exercise: Exercise, dest: Path) -> None:
    folder = exercise.checks_dir.parent
    dest.mkdir(parents=True)
    shutil.copyfile(folder / "exercise.toml", dest / "exercise.toml")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(exercise.stub_dir, dest / "stub", ignore=ignore)
    hidden = exercise.hidden_checks.resolve()

    def skip_hidden(directory: str, names: list[str]) -> set[str]:
        return set(ignore(directory, names)) | {n for n in names if (Path(directory) / n).resolve() == hidden}

    shutil.copytree(exercise.checks_dir, dest / "checks", ignore=skip_hidden)


def record_answers(registries: Registries, exercise: Exercise, settings: Settings, dest: Path) -> tuple[int, list[str]]:
    """Run the public checks on the reference through a recorder; write ``dest/answers.json``.

    :returns: the number of recorded operations, and ``check\\twhy`` for each check that did not pass
    """
    assert exercise.reference_dir is not None
    with tempfile.TemporaryDirectory(prefix="grader-pack-") as tmp:
        wrapper, tape = Path(tmp) / "recording", Path(tmp) / "tape.jsonl"
        wrapper.mkdir()
        tape.touch()
        (wrapper / "solution.py").write_text(
            answers.RECORDING_MODULE.format(reference=str(exercise.reference_dir.resolve()), tape=str(tape)),
            encoding="utf-8")
        result = engine.grade(replace(exercise, reference_dir=wrapper), exercise.reference_dir, settings, registries,
                              public_only=True)
        entries = [json.loads(line) for line in tape.read_text(encoding="utf-8").splitlines() if line.strip()]
    dest.mkdir(parents=True)
    (dest / answers.TAPE).write_text(json.dumps(entries, ensure_ascii=False), encoding="utf-8")
    (dest / "solution.py").write_text(answers.REPLAY_MODULE, encoding="utf-8")
    bad = [f"{c.title}\t{c.status.value}: {c.message}" for c in result.checks if c.status.value != "pass"]
    return len(entries), bad


def _text(paths: list[Path]) -> str:
    return "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in paths)


def _distinctive(path: Path, public: str) -> set[str]:
    """Lines and string literals of ``path`` long enough to identify it, that ``public`` does not contain."""
    text = path.read_bytes().decode("utf-8", errors="replace")
    found = {s for line in text.splitlines() if len(s := line.strip()) >= MIN_LINE
             and not s.startswith(("import ", "from ", "@pytest.mark", "#"))}
    if path.suffix == ".py":
        with contextlib.suppress(SyntaxError):
            found |= {n.value.strip() for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Constant)
                      and isinstance(n.value, str) and len(n.value.strip()) >= MIN_LITERAL}
    return {s for s in found if s not in public}


def _secret_texts(exercise: Exercise) -> tuple[set[str], set[bytes]]:
    """What must not be in a pack: distinctive text of the reference and of the hidden checks.

    Reference text counts unless the stub or the public checks already show it; hidden-check text
    unless any shipped checks file (public checks, conftest, data) does, since hidden checks may reuse
    those helpers.  A conftest that repeats reference code is therefore a leak.
    """
    public = _text(_files(exercise.stub_dir) + _files(exercise.public_checks))
    hidden = exercise.hidden_checks.resolve()
    shipped = public + _text([p for p in _files(exercise.checks_dir) if not p.resolve().is_relative_to(hidden)
                              and p.suffix in (".py", ".txt", ".json", ".toml", ".md")])
    texts: set[str] = set()
    for path in _files(exercise.reference_dir):
        texts |= _distinctive(path, public)
    for path in _files(exercise.hidden_checks):
        texts |= _distinctive(path, shipped)
    blobs = {p.read_bytes() for p in _files(exercise.reference_dir) + _files(exercise.hidden_checks)}
    return texts, blobs


def find_leaks(pack: Path, exercises: list[Exercise]) -> tuple[list[str], int]:
    """Every (pack file, secret) pair where the pack holds reference or hidden-check text; and how many searched."""
    texts: set[str] = set()
    blobs: set[bytes] = set()
    for ex in exercises:
        t, b = _secret_texts(ex)
        texts |= t
        blobs |= b
    leaks = []
    for path in _files(pack):
        data = path.read_bytes()
        if data in blobs and data.strip():
            leaks.append(f"{path.relative_to(pack)} is a copy of a reference or hidden-check file")
        content = data.decode("utf-8", errors="replace")
        leaks.extend(f"{path.relative_to(pack)} contains {secret[:60]!r}" for secret in texts if secret in content)
    return leaks, len(texts)


def build_pack(registries: Registries, dest: Path, exercise_ids: list[str], settings: Settings,
               answers_on: bool = True) -> PackReport:
    """Build and verify the pack for ``exercise_ids`` (default: every registered exercise) in ``dest``."""
    if dest.exists() and any(dest.iterdir()):
        raise GraderError(f"{dest} exists and is not empty; choose a new folder for the student pack")
    chosen = [registries.exercises.get(i) for i in exercise_ids] or registries.exercises.ordered()
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".pack-", dir=dest.parent))
    report = PackReport(dest, [e.id for e in chosen])
    try:
        for ex in chosen:
            _copy_public(ex, tmp / "exercises" / ex.id)
            if answers_on and ex.reference_dir is not None:
                report.recorded[ex.id], report.unrecorded[ex.id] = record_answers(
                    registries, ex, settings, tmp / "answers" / ex.id)
        (tmp / "README.md").write_text(README.format(ids=", ".join(report.exercises)), encoding="utf-8")
        leaks, report.searched = find_leaks(tmp, chosen)
        if leaks:
            raise GraderError("the student pack would leak reference or hidden-check text, so it was not written: "
                              + "; ".join(leaks[:5]) + (" (rebuild with --no-answers if the leak is a recorded "
                                                        "answer)" if any("answers" in x for x in leaks) else ""))
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report
