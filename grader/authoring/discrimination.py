"""Does an exercise discriminate?  Reference 100 %, stub 0 %, every wrong solution loses what it names.

Wrong solutions live in the course folder beside the exercises, at ``tests/curriculum/<id>/``, in two forms:

* ``wrong_<what>.py``: a whole solution whose first lines say ``# wrong: <what>`` and
  ``# loses: test_a, test_b`` (a long list may repeat the ``# loses:`` line);
* ``mutations.toml``: ``[[mutation]]`` entries (``name``, ``wrong``, ``loses``, one or more
  ``[[mutation.edit]]`` with ``replace`` / ``with`` and an optional ``file``), applied to the reference at
  grading time, so a fix to the reference reaches every mutant.  Each ``replace`` must occur exactly once.

A wrong solution is graded only on the checks it must lose (a pytest ``-k`` selection), so the self-test
costs the reference's and the stub's full runs plus a few checks per mistake.

Right solutions are the other half of discrimination: correct code written another way (another library,
another valid algorithm, einsum for matmul) that must keep full marks, so a check that rejects a correct
answer is caught as surely as one that accepts a wrong one.  They live in the same folder, as
``right_<what>.py`` (``# right: <what is different>``, optional ``# keeps: test_a, test_b``) or as
``[[right]]`` entries of ``mutations.toml`` (``name``, ``right``, optional ``keeps``, ``[[right.edit]]``);
without ``keeps`` a right solution is graded on every check.

``advice.toml`` beside them pins what a failing check must tell the author of a kept wrong solution
(``[[advice]]``: ``wrong``, ``check``, ``says``, words the check's message must contain) and which checks
an outcome check must still pass despite the mistake (``[[keeps]]``: ``wrong``, ``check``).  The pins
travel with their wrong solution and are proved in the same grading, so advice costs no job of its own.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
import time
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import PluginError
from grader.exercise_spec import static_checks
from grader.models import Exercise, GradeResult

_LOSES = re.compile(r"^# loses: (.+)$", re.MULTILINE)
_WRONG = re.compile(r"^# wrong: (.+)$", re.MULTILINE)
_KEEPS = re.compile(r"^# keeps: (.+)$", re.MULTILINE)
_RIGHT = re.compile(r"^# right: (.+)$", re.MULTILINE)
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
Edit = tuple[str, str, str]  # (file, replace, with)


@dataclass(frozen=True)
class WrongSolution:
    """One plausible mistake and the checks that must catch it."""

    name: str
    wrong: str
    loses: tuple[str, ...]
    path: Path | None = None  # a wrong_*.py file
    edits: tuple[Edit, ...] = ()  # applied to the reference
    advice: tuple[tuple[str, str], ...] = ()  # (check, words its failing message must contain)
    keeps: tuple[str, ...] = ()  # checks it must still pass (an outcome measured despite the mistake)

    @property
    def checks(self) -> tuple[str, ...]:
        """Every check this wrong solution is graded on: what it loses, what its advice names, what it keeps."""
        return tuple(dict.fromkeys(self.loses + tuple(check for check, _ in self.advice) + self.keeps))

    def materialize(self, reference_dir: Path | None, dest: Path) -> Path:
        """The submission to grade: the file itself, or a copy of the reference with the edits applied."""
        return _materialize(self.name, self.path, self.edits, reference_dir, dest)


@dataclass(frozen=True)
class RightSolution:
    """Correct code written another way, and the checks it must pass (empty: every check)."""

    name: str
    right: str
    keeps: tuple[str, ...] = ()
    path: Path | None = None  # a right_*.py file
    edits: tuple[Edit, ...] = ()

    @property
    def checks(self) -> tuple[str, ...]:
        return self.keeps

    def materialize(self, reference_dir: Path | None, dest: Path) -> Path:
        return _materialize(self.name, self.path, self.edits, reference_dir, dest)


def _materialize(name: str, path: Path | None, edits: tuple[Edit, ...], reference_dir: Path | None,
                 dest: Path) -> Path:
    if path is not None:
        return path
    if reference_dir is None:
        raise PluginError(f"mutation {name!r} needs the exercise's reference, which is not installed")
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(reference_dir, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for file, old, new in edits:
        target = dest / file
        text = target.read_text(encoding="utf-8")
        count = text.count(old)
        if count != 1:
            raise PluginError(f"mutation {name!r}: {old!r} occurs {count} times in the reference's "
                              f"{file} (it must occur exactly once: update the mutation)")
        target.write_text(text.replace(old, new), encoding="utf-8")
    return dest


def curriculum_dir(exercise: Exercise) -> Path:
    """``<course>/tests/curriculum/<id>``: the course folder is the one holding ``exercises/<id>/``."""
    return exercise.checks_dir.parent.parent.parent / "tests" / "curriculum" / exercise.id


def wrong_solutions(folder: Path) -> list[WrongSolution]:
    """Every wrong solution kept in ``folder``, files first, then mutations; malformed entries raise."""
    found = [_wrong_from_file(path) for path in sorted(folder.glob("wrong_*.py"))]
    found += [_wrong_from_entry(entry, folder / "mutations.toml") for entry in _entries(folder, "mutation")]
    _refuse_duplicates(folder, [w.name for w in found])
    return _with_advice(folder, found)


def right_solutions(folder: Path) -> list[RightSolution]:
    """Every right solution kept in ``folder``, files first, then ``[[right]]`` entries."""
    found = [_right_from_file(path) for path in sorted(folder.glob("right_*.py"))]
    found += [_right_from_entry(entry, folder / "mutations.toml") for entry in _entries(folder, "right")]
    _refuse_duplicates(folder, [r.name for r in found])
    return found


def _entries(folder: Path, key: str) -> list[Any]:
    table = folder / "mutations.toml"
    if not table.is_file():
        return []
    try:
        entries = tomllib.loads(table.read_text(encoding="utf-8")).get(key, [])
    except tomllib.TOMLDecodeError as exc:
        raise PluginError(f"{table}: {exc}") from None
    if not isinstance(entries, list):
        raise PluginError(f"{table}: {key} must be an array of tables ([[{key}]])")
    return entries


def _refuse_duplicates(folder: Path, names: list[str]) -> None:
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise PluginError(f"{folder}: two solutions are named {', '.join(dupes)}")


def _wrong_name(wrong: str) -> str:
    """The name of a wrong solution as ``advice.toml`` spells it: a file's stem, or a mutation's name."""
    return wrong if wrong.startswith("wrong_") else "wrong_" + wrong.replace("-", "_")


def _with_advice(folder: Path, wrongs: list[WrongSolution]) -> list[WrongSolution]:
    """``wrongs`` with the pins of ``folder/advice.toml`` attached; a pin for no kept wrong solution raises."""
    table = folder / "advice.toml"
    if not table.is_file():
        return wrongs
    try:
        pins = tomllib.loads(table.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise PluginError(f"{table}: {exc}") from None
    unknown = sorted(set(pins) - {"advice", "keeps"})
    if unknown:
        raise PluginError(f"{table}: unknown tables {unknown} (only [[advice]] and [[keeps]])")
    advice: dict[str, list[tuple[str, str]]] = {}
    keeps: dict[str, list[str]] = {}
    for kind, keys in (("advice", {"wrong", "check", "says"}), ("keeps", {"wrong", "check"})):
        entries = pins.get(kind, [])
        if not isinstance(entries, list):
            raise PluginError(f"{table}: {kind} must be an array of tables ([[{kind}]])")
        for entry in entries:
            if (not isinstance(entry, dict) or set(entry) != keys
                    or not all(isinstance(entry[k], str) and entry[k].strip() for k in keys)):
                raise PluginError(f"{table}: each [[{kind}]] needs exactly {', '.join(sorted(keys))}: {entry!r}")
            name = _wrong_name(entry["wrong"])
            if kind == "advice":
                advice.setdefault(name, []).append((entry["check"], entry["says"]))
            else:
                keeps.setdefault(name, []).append(entry["check"])
    stray = sorted((set(advice) | set(keeps)) - {w.name for w in wrongs})
    if stray:
        raise PluginError(f"{table}: pins for {', '.join(stray)}, which is no kept wrong solution")
    return [dataclasses.replace(w, advice=tuple(advice.get(w.name, ())), keeps=tuple(keeps.get(w.name, ())))
            for w in wrongs]


def _names(lines: list[str]) -> tuple[str, ...]:
    return tuple(name.strip() for line in lines for name in line.split("#", 1)[0].split(",") if name.strip())


def _wrong_from_file(path: Path) -> WrongSolution:
    text = path.read_text(encoding="utf-8")
    wrong = _WRONG.search(text)
    lines = _LOSES.findall(text)
    if not wrong or not lines:
        raise PluginError(f"{path} needs a '# wrong: ...' line and a '# loses: check_a, check_b' line")
    return WrongSolution(path.stem, wrong.group(1).strip(), _names(lines), path=path)


def _right_from_file(path: Path) -> RightSolution:
    text = path.read_text(encoding="utf-8")
    right = _RIGHT.search(text)
    if not right:
        raise PluginError(f"{path} needs a '# right: <what it does differently>' line")
    return RightSolution(path.stem, right.group(1).strip(), _names(_KEEPS.findall(text)), path=path)


def _common_problems(entry: dict[str, Any], kind: str, says: str) -> list[str]:
    """What is wrong with a [[mutation]] or [[right]] entry's name, description and edits."""
    problems = [f"unknown key {k!r}" for k in sorted(set(entry) - {"name", says, "loses", "keeps", "edit"})]
    if not isinstance(entry.get("name"), str) or not _NAME.fullmatch(entry["name"]):
        problems.append("name must be lower-case letters, digits, '-' or '_'")
    if not isinstance(entry.get(says), str) or not entry[says].strip():
        problems.append(f"{says} must say what is {'wrong' if says == 'wrong' else 'done differently'}")
    edits = entry.get("edit", [])
    if not isinstance(edits, list) or not edits or not all(
        isinstance(e, dict) and isinstance(e.get("replace"), str) and isinstance(e.get("with"), str) and e["replace"]
        for e in edits
    ):
        problems.append(f"needs one or more [[{kind}.edit]] with replace and with")
    return problems


def _edits(entry: dict[str, Any]) -> tuple[Edit, ...]:
    return tuple((str(e.get("file", "solution.py")), e["replace"], e["with"]) for e in entry["edit"])


def _check_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def _wrong_from_entry(entry: Any, table: Path) -> WrongSolution:
    if not isinstance(entry, dict):
        raise PluginError(f"{table}: each [[mutation]] must be a table")
    problems = _common_problems(entry, "mutation", "wrong")
    if "keeps" in entry:
        problems.append("keeps belongs to [[right]] entries; a mutation names what it loses")
    if not _check_list(entry.get("loses")) or not entry.get("loses"):
        problems.append("loses must list the checks it must lose")
    if problems:
        raise PluginError(f"{table}: mutation {entry.get('name')!r}: " + "; ".join(problems))
    return WrongSolution("wrong_" + entry["name"].replace("-", "_"), entry["wrong"].strip(), tuple(entry["loses"]),
                         edits=_edits(entry))


def _right_from_entry(entry: Any, table: Path) -> RightSolution:
    if not isinstance(entry, dict):
        raise PluginError(f"{table}: each [[right]] must be a table")
    problems = _common_problems(entry, "right", "right")
    if "loses" in entry:
        problems.append("a right solution loses nothing: name the checks it must pass as keeps")
    if "keeps" in entry and not _check_list(entry["keeps"]):
        problems.append("keeps must list check names")
    if problems:
        raise PluginError(f"{table}: right {entry.get('name')!r}: " + "; ".join(problems))
    return RightSolution("right_" + entry["name"].replace("-", "_"), entry["right"].strip(),
                         tuple(entry.get("keeps", ())), edits=_edits(entry))


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
    from grader.reports import leaderboard

    ranked = {e["name"] for e in leaderboard.entries(exercise, result.checks)}
    problems += [f"leaderboard {e['name']!r}: {e['check']} records no number at {e['value']!r} for the reference"
                 for e in exercise.leaderboard if e["name"] not in ranked]
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


def _grade_kept(registries: Any, exercise: Exercise, solution: WrongSolution | RightSolution, settings: Any,
                work: Path, select: str | None) -> tuple[GradeResult, dict[str, Any]] | list[str]:
    """Grade a kept solution on ``select``: (result, check name -> check), or the problems that stopped it."""
    unknown = unknown_losses(exercise, [solution])
    if unknown:
        return unknown
    try:
        path = solution.materialize(exercise.reference_dir, work / solution.name)
    except PluginError as exc:
        return [str(exc)]
    result = _grade(registries, exercise, path, settings, select)
    return result, {c.name.rsplit("::", 1)[-1]: c for c in result.checks}


def grade_wrong(registries: Any, exercise: Exercise, wrong: WrongSolution, settings: Any, work: Path) -> Outcome:
    """Grade ``wrong`` on the checks it must lose and those its pins name: each it loses must not pass, each
    pinned advice must be in its check's message, each check it keeps must pass; none may be a grader error."""
    started = time.perf_counter()
    graded = _grade_kept(registries, exercise, wrong, settings, work, select_expression(wrong.checks))
    if isinstance(graded, list):
        return Outcome(wrong.name, graded, 0.0)
    result, by_name = graded
    problems = [f"{n} did not run" for n in wrong.checks if n not in by_name]
    # a check that could not judge on this machine (it records why as not_judged) passes everyone here
    problems += [f"should lose {n} but it passes" for n in wrong.loses
                 if by_name.get(n) and by_name[n].score and not by_name[n].details.get("not_judged")]
    for check, words in wrong.advice:
        got = by_name.get(check)
        if got is not None and got.status.value == "pass":
            problems.append(f"should lose {check} (its advice is pinned) but it passes")
        elif got is not None and words not in (got.message or ""):
            problems.append(f"{check}: expected advice with {words!r}, got {got.message!r}")
    problems += [f"should keep {n}: {by_name[n].status.value}: {by_name[n].message}"
                 for n in wrong.keeps if n in by_name and by_name[n].status.value != "pass"]
    crashed = [c for c in result.checks if c.status.value == "grader_error"]
    if crashed:
        problems.append(f"grader errors (a bug in the checks): {_summary(result)}")
    return Outcome(wrong.name, problems, time.perf_counter() - started, result.score, result.max_score)


def grade_right(registries: Any, exercise: Exercise, right: RightSolution, settings: Any, work: Path) -> Outcome:
    """Grade ``right`` on the checks it keeps (every check when it names none); each must pass in full."""
    started = time.perf_counter()
    select = select_expression(right.keeps) if right.keeps else None
    graded = _grade_kept(registries, exercise, right, settings, work, select)
    if isinstance(graded, list):
        return Outcome(right.name, graded, 0.0)
    result, by_name = graded
    problems = [f"a correct solution loses {n} ({c.status.value}: "
                f"{c.message.splitlines()[0][:160] if c.message else 'no message'}): the check rejects a right answer"
                for n, c in by_name.items()
                if (not right.keeps or n in right.keeps) and (c.status.value != "pass" or c.score != c.max_score)]
    problems += [f"{n} did not run" for n in right.keeps if n not in by_name]
    if not right.keeps and result.max_score != exercise.points:
        problems.append(f"graded out of {result.max_score:g}, but the exercise declares {exercise.points:g}")
    return Outcome(right.name, problems, time.perf_counter() - started, result.score, result.max_score)


def unknown_losses(exercise: Exercise, solutions: Sequence[WrongSolution | RightSolution]) -> list[str]:
    """A ``loses``, ``keeps`` or advice.toml entry that names no check of the exercise (a typo, or a renamed check)."""
    names = {c.name for c in static_checks(exercise.checks_dir)[0]}
    found = []
    for s in solutions:
        said = [("loses", s.loses), ("is pinned in advice.toml to", [c for c, _ in s.advice] + list(s.keeps))] \
            if isinstance(s, WrongSolution) else [("keeps", s.keeps)]
        found += [f"{s.name}: {verb} {', '.join(bad)}, which is not a check of {exercise.id}"
                  for verb, checks in said if (bad := [n for n in checks if n not in names])]
    return found


def coverage_problems(exercise: Exercise, wrongs: list[WrongSolution]) -> list[str]:
    """Checks no kept wrong solution loses: a check nothing fails proves nothing."""
    names = {c.name for c in static_checks(exercise.checks_dir)[0]}
    lost = {n for w in wrongs for n in w.loses}
    missing = sorted(names - lost)
    return [f"no wrong solution loses {', '.join(missing)}"] if missing else []
