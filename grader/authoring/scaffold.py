"""``grader new-exercise``: an exercise folder that already grades, in the one shape every exercise has.

It starts from the sample exercise that ships with grader (``grader/sample/``, also what ``grader demo``
grades) and writes, under a course folder (the layout ``GRADER_EXERCISES`` reads)::

    exercises/<id>/exercise.toml          every key, commented (from grader.exercise_spec)
    exercises/<id>/stub/solution.py       a stub that teaches: shapes, dtypes, formula, what to raise
    exercises/<id>/checks/conftest.py     a fixture of the checks (trusted side)
    exercises/<id>/checks/public/test_softmax.py, checks/hidden/test_softmax_hidden.py   points markers
    reference/<id>/solution.py            the hidden reference
    tests/curriculum/<id>/mutations.toml  wrong solutions as edits of the reference

The example is a numerically stable softmax, small enough to replace and real enough to show the helpers.
"""

from __future__ import annotations

import re
from pathlib import Path

from grader.errors import GraderError
from grader.exercise_spec import FIELDS, ID_PATTERN, LEVELS, LIMITS
from grader.paths import PACKAGE_DIR

SAMPLE = PACKAGE_DIR / "sample"
SAMPLE_ID = "sample-softmax"
#: scaffold path -> the sample file it starts from ("{id}" is the new exercise's id)
FILES = {
    "exercises/{id}/stub/solution.py": "exercise/stub/solution.py",
    "exercises/{id}/checks/conftest.py": "exercise/checks/conftest.py",
    "exercises/{id}/checks/public/test_softmax.py": "exercise/checks/public/test_softmax.py",
    "exercises/{id}/checks/hidden/test_softmax_hidden.py": "exercise/checks/hidden/test_softmax_hidden.py",
    "reference/{id}/solution.py": "reference/solution.py",
    "tests/curriculum/{id}/mutations.toml": "mutations.toml",
}


def exercise_toml(ex_id: str, level: str, points: int, title: str) -> str:
    """exercise.toml with every key of the schema: the set ones first, the rest commented with defaults."""
    values = {"id": ex_id, "title": title, "level": level, "points": points, "version": "1", "device": "cpu",
              "summary": "What this exercise grades, in one sentence."}
    lines = []
    for f in FIELDS:
        choices = f" ({', '.join(f.choices)})" if f.choices else ""
        lines.append(f"# {f.description}{choices}")
        if f.name in values:
            lines.append(f"{f.name} = {_toml(values[f.name])}")
        else:
            lines.append(f"# {f.name} = {_toml(f.default) if f.default is not None else '...'}")
    lines += ["", "# targets and tolerances of the default profile (the `targets` fixture); add [profiles.gpu]",
              "# for a GPU with stricter targets (required when device is not cpu)", "[profiles.cpu]",
              "float64_rtol = 1e-9", "float64_atol = 1e-12", "", "[limits]"]
    for f in LIMITS:
        lines += [f"# {f.description}", f"{f.name} = {_toml(f.default)}"]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def new_exercise(course: Path, ex_id: str, level: str, points: int, title: str | None = None) -> list[Path]:
    """Write the scaffold of ``ex_id`` under ``course`` from the sample exercise; refuses to overwrite anything."""
    if not re.match(ID_PATTERN, ex_id):
        raise GraderError(f"exercise id {ex_id!r} must be lower-case letters, digits and dashes")
    if level not in LEVELS:
        raise GraderError(f"level must be one of {', '.join(LEVELS)}")
    if points < 3:
        raise GraderError("points must be at least 3 (two public checks and a hidden one, a point or more each)")
    hidden = points // 3
    matches = points - hidden - 1
    title = title or ex_id.replace("-", " ")
    files = {"exercises/{id}/exercise.toml": exercise_toml(ex_id, level, points, title)}
    for rel, source in FILES.items():
        text = (SAMPLE / source).read_text(encoding="utf-8").replace(SAMPLE_ID, ex_id)
        files[rel] = text
    stub = "exercises/{id}/stub/solution.py"
    files[stub] = f'"""{title}.' + files[stub].split("\n", 1)[1]
    pub, hid = "exercises/{id}/checks/public/test_softmax.py", "exercises/{id}/checks/hidden/test_softmax_hidden.py"
    # the matches-torch check takes what the other two do not
    files[pub] = files[pub].replace("@pytest.mark.points(1)\ndef test_softmax_matches_torch",
                                    f"@pytest.mark.points({matches})\ndef test_softmax_matches_torch")
    files[hid] = files[hid].replace("@pytest.mark.points(1)", f"@pytest.mark.points({hidden})")
    paths = {course / rel.format(id=ex_id): text for rel, text in files.items()}
    taken = [p for p in paths if p.exists()] or (
        [course / "exercises" / ex_id] if (course / "exercises" / ex_id).exists() else [])
    if taken:
        raise GraderError(f"{taken[0]} already exists: choose another id or remove it")
    for path, text in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return list(paths)
