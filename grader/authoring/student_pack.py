"""The student pack: stubs, public checks and recorded answers; never reference code or hidden checks.

Layout (what ``$GRADER_EXERCISES`` reads, see :mod:`grader.builtin.exercises_path`)::

    PACK/README.md
    PACK/exercises/<id>/exercise.toml, stub/, checks/ (without hidden/)
    PACK/answers/<id>/solution.py, answers.json      (see grader.checks.answers; with --answers)

The pack is built in a temporary folder, searched for text specific to the references and hidden checks
(:mod:`grader.authoring.leaks`: token runs, literals and held-out data that no public file shows) and for
byte-identical copies of their files, and only then renamed into place: a pack that would leak is never
written, and the refusal names both places.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from grader.authoring import leaks
from grader.checks import answers
from grader.config import Settings
from grader.engine import core as engine
from grader.errors import GraderError
from grader.models import Exercise
from grader.plugins import Registries

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
        out.append(f"Verified: none of {self.searched} token runs, literals and data lines specific to the references "
                   "and hidden checks occurs in the pack.")
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


def find_leaks(pack: Path, exercises: list[Exercise]) -> tuple[list[str], int]:
    """Every place where ``pack`` holds text specific to a reference or hidden check (see
    :mod:`grader.authoring.leaks`), or a byte-identical copy of such a file; and how many secrets were searched."""
    found, searched = leaks.find_leaks(pack, exercises)
    public = {p.read_bytes() for ex in exercises for p in leaks.shipped_files(ex) if p.is_file()}
    blobs = {p.read_bytes(): p for ex in exercises for p in _files(ex.reference_dir) + _files(ex.hidden_checks)}
    out = [str(leak) for leak in found]
    for path in _files(pack):
        data = path.read_bytes()
        if data.strip() and data in blobs and data not in public:
            out.append(f"{path.relative_to(pack)} is a copy of {blobs[data]}")
    return out, searched


def build_pack(registries: Registries, dest: Path, exercise_ids: list[str], settings: Settings,
               answers_on: bool = True) -> PackReport:
    """Build and verify the pack for ``exercise_ids`` (default: every registered exercise) in ``dest``."""
    if dest.exists() and any(dest.iterdir()):
        raise GraderError(f"{dest} exists and is not empty; choose a new folder for the student pack")
    from grader.authoring.course_dist import course_exercises

    chosen = course_exercises(registries, exercise_ids)
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
        found, report.searched = find_leaks(tmp, chosen)
        if found:
            hint = " (rebuild with --no-answers if the leak is a recorded answer)" if any(
                x.startswith("answers/") for x in found) else ""
            raise GraderError("the student pack would leak reference or hidden-check text, so it was not written: "
                              + "; ".join(found[:5]) + hint)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report
