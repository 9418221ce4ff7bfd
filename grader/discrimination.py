"""Does an exercise discriminate?  Reference 100 %, stub 0 %, every wrong solution loses what it names.

Wrong solutions live in the course folder beside the exercises, at ``tests/curriculum/<id>/``, in two forms:

* ``wrong_<what>.py``: a whole solution whose first lines say ``# wrong: <what>`` and
  ``# loses: test_a, test_b`` (a long list may repeat the ``# loses:`` line);
* ``mutations.toml``: ``[[mutation]]`` entries (``name``, ``wrong``, ``loses``, one or more
  ``[[mutation.edit]]`` with ``replace`` / ``with`` and an optional ``file``), applied to the reference at
  grading time, so a fix to the reference reaches every mutant.  Each ``replace`` must occur exactly once.

A wrong solution is graded only on the checks it must lose (a pytest ``-k`` selection), so the self-test
costs the reference's and the stub's full runs plus a few checks per mistake.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import PluginError
from grader.exercise_spec import static_checks
from grader.models import Exercise, GradeResult

_LOSES = re.compile(r"^# loses: (.+)$", re.MULTILINE)
_WRONG = re.compile(r"^# wrong: (.+)$", re.MULTILINE)


@dataclass(frozen=True)
class WrongSolution:
    """One plausible mistake and the checks that must catch it."""

    name: str
    wrong: str
    loses: tuple[str, ...]
    path: Path | None = None  # a wrong_*.py file
    edits: tuple[tuple[str, str, str], ...] = ()  # (file, replace, with) applied to the reference

    def materialize(self, reference_dir: Path | None, dest: Path) -> Path:
        """The submission to grade: the file itself, or a copy of the reference with the edits applied."""
        if self.path is not None:
            return self.path
        if reference_dir is None:
            raise PluginError(f"mutation {self.name!r} needs the exercise's reference, which is not installed")
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(reference_dir, dest, ignore=shutil.ignore_patterns("__pycache__"))
        for file, old, new in self.edits:
            target = dest / file
            text = target.read_text(encoding="utf-8")
            count = text.count(old)
            if count != 1:
                raise PluginError(f"mutation {self.name!r}: {old!r} occurs {count} times in the reference's "
                                  f"{file} (it must occur exactly once: update the mutation)")
            target.write_text(text.replace(old, new), encoding="utf-8")
        return dest


def curriculum_dir(exercise: Exercise) -> Path:
    """``<course>/tests/curriculum/<id>``: the course folder is the one holding ``exercises/<id>/``."""
    return exercise.checks_dir.parent.parent.parent / "tests" / "curriculum" / exercise.id


def wrong_solutions(folder: Path) -> list[WrongSolution]:
    """Every wrong solution kept in ``folder``, files first, then mutations; malformed entries raise."""
    found = [_from_file(path) for path in sorted(folder.glob("wrong_*.py"))]
    table = folder / "mutations.toml"
    if table.is_file():
        try:
            entries = tomllib.loads(table.read_text(encoding="utf-8")).get("mutation", [])
        except tomllib.TOMLDecodeError as exc:
            raise PluginError(f"{table}: {exc}") from None
        found += [_from_entry(entry, table) for entry in entries]
    names = [w.name for w in found]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PluginError(f"{folder}: two wrong solutions are named {', '.join(dupes)}")
    return found


def _from_file(path: Path) -> WrongSolution:
    text = path.read_text(encoding="utf-8")
    wrong = _WRONG.search(text)
    lines = _LOSES.findall(text)
    if not wrong or not lines:
        raise PluginError(f"{path} needs a '# wrong: ...' line and a '# loses: check_a, check_b' line")
    loses = [name.strip() for line in lines for name in line.split("#", 1)[0].split(",") if name.strip()]
    return WrongSolution(path.stem, wrong.group(1).strip(), tuple(loses), path=path)


def _from_entry(entry: Any, table: Path) -> WrongSolution:
    if not isinstance(entry, dict):
        raise PluginError(f"{table}: each [[mutation]] must be a table")
    unknown = set(entry) - {"name", "wrong", "loses", "edit"}
    name = entry.get("name")
    edits = entry.get("edit", [])
    problems = [f"unknown key {k!r}" for k in sorted(unknown)]
    if not isinstance(name, str) or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", name):
        problems.append("name must be lower-case letters, digits, '-' or '_'")
    if not isinstance(entry.get("wrong"), str) or not entry["wrong"].strip():
        problems.append("wrong must say what is wrong")
    loses = entry.get("loses")
    if not isinstance(loses, list) or not loses or not all(isinstance(x, str) for x in loses):
        problems.append("loses must list the checks it must lose")
    if not isinstance(edits, list) or not edits or not all(
        isinstance(e, dict) and isinstance(e.get("replace"), str) and isinstance(e.get("with"), str) and e["replace"]
        for e in edits
    ):
        problems.append("needs one or more [[mutation.edit]] with replace and with")
    if problems or not isinstance(name, str) or not isinstance(loses, list):
        raise PluginError(f"{table}: mutation {name!r}: " + "; ".join(problems))
    return WrongSolution(
        "wrong_" + name.replace("-", "_"), entry["wrong"].strip(), tuple(loses),
        edits=tuple((str(e.get("file", "solution.py")), e["replace"], e["with"]) for e in edits),
    )


def select_expression(names: tuple[str, ...] | list[str]) -> str:
    """A pytest ``-k`` expression matching the named checks (a superset when one name prefixes another)."""
    return " or ".join(sorted(set(names)))


# -- grading -----------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    """One graded submission of the discrimination run and what was wrong with its result."""

    label: str
    problems: list[str]
    seconds: float
    score: float = 0.0
    max_score: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def _summary(result: GradeResult) -> str:
    bad = [f"{c.name.rsplit('::', 1)[-1]}={c.status.value}: {c.message.splitlines()[0][:160] if c.message else ''}"
           for c in result.checks if c.status.value != "pass"]
    return "; ".join(bad)


def _grade(registries: Any, exercise: Exercise, path: Path, settings: Any, select: str | None) -> GradeResult:
    from grader import api

    return api.grade(registries, exercise.id, path, dataclasses.replace(settings, select=select))


def grade_reference(registries: Any, exercise: Exercise, settings: Any) -> Outcome:
    started = time.perf_counter()
    if exercise.reference_dir is None:
        return Outcome("reference", ["no reference solution is installed"], 0.0)
    result = _grade(registries, exercise, exercise.reference_dir, settings, None)
    problems = []
    if result.max_score != exercise.points:
        problems.append(f"graded out of {result.max_score:g}, but the exercise declares {exercise.points:g}")
    if result.score != result.max_score or result.status.value != "pass":
        problems.append(f"scores {result.score:g}/{result.max_score:g}: {_summary(result)}")
    return Outcome("reference", problems, time.perf_counter() - started, result.score, result.max_score)


def grade_stub(registries: Any, exercise: Exercise, settings: Any) -> Outcome:
    started = time.perf_counter()
    result = _grade(registries, exercise, exercise.stub_dir, settings, None)
    problems = []
    scored = [c.name for c in result.checks if c.score]
    if scored:
        problems.append(f"the untouched stub scores points in {', '.join(scored)}")
    crashed = [c for c in result.checks if c.status.value == "grader_error"]
    if crashed:
        problems.append(f"grader errors on the stub (a bug in the checks): {_summary(result)}")
    return Outcome("stub", problems, time.perf_counter() - started, result.score, result.max_score)


def grade_wrong(registries: Any, exercise: Exercise, wrong: WrongSolution, settings: Any, work: Path) -> Outcome:
    """Grade ``wrong`` on the checks it must lose; each must not pass, and none may be a grader error."""
    started = time.perf_counter()
    unknown = unknown_losses(exercise, [wrong])
    if unknown:
        return Outcome(wrong.name, unknown, 0.0)
    try:
        path = wrong.materialize(exercise.reference_dir, work / wrong.name)
    except PluginError as exc:
        return Outcome(wrong.name, [str(exc)], 0.0)
    result = _grade(registries, exercise, path, settings, select_expression(wrong.loses))
    by_name = {c.name.rsplit("::", 1)[-1]: c for c in result.checks}
    problems = [f"should lose {n} but it passes" for n in wrong.loses if by_name.get(n) and by_name[n].score]
    problems += [f"{n} did not run" for n in wrong.loses if n not in by_name]
    crashed = [c for c in result.checks if c.status.value == "grader_error"]
    if crashed:
        problems.append(f"grader errors (a bug in the checks): {_summary(result)}")
    return Outcome(wrong.name, problems, time.perf_counter() - started, result.score, result.max_score)


def unknown_losses(exercise: Exercise, wrongs: list[WrongSolution]) -> list[str]:
    """A ``loses`` entry that names no check of the exercise (a typo, or a check since renamed)."""
    names = {c.name for c in static_checks(exercise.checks_dir)[0]}
    return [f"{w.name}: loses {', '.join(bad)}, which is not a check of {exercise.id}"
            for w in wrongs if (bad := [n for n in w.loses if n not in names])]


def coverage_problems(exercise: Exercise, wrongs: list[WrongSolution]) -> list[str]:
    """Checks no kept wrong solution loses: a check nothing fails proves nothing."""
    names = {c.name for c in static_checks(exercise.checks_dir)[0]}
    lost = {n for w in wrongs for n in w.loses}
    missing = sorted(names - lost)
    return [f"no wrong solution loses {', '.join(missing)}"] if missing else []
