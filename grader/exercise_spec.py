"""The ``exercise.toml`` schema: every key, its type, default and meaning, in one place.

Loading (``grader.registry``), the docs table (``docs/authoring-exercises.md``), the JSON Schema for
editors (``grader exercise-schema``) and the scaffold (``grader new-exercise``) all read :data:`FIELDS` and
:data:`LIMITS`, so a default or a rule is written once.  Unknown keys are refused: a misspelt
``check_timout_s`` would otherwise silently keep the default.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from grader.errors import PluginError

ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,63}$"
_ID = re.compile(ID_PATTERN)
LEVELS = ("foundation", "intermediate", "advanced", "expert")
DEVICES = ("cpu", "gpu-optional", "gpu")
PROFILES = ("cpu", "gpu")


@dataclass(frozen=True)
class Field:
    """One key of exercise.toml."""

    name: str
    type: type | tuple[type, ...]
    default: Any
    description: str
    required: bool = False
    choices: tuple[str, ...] = ()

    @property
    def type_name(self) -> str:
        types = self.type if isinstance(self.type, tuple) else (self.type,)
        names = {str: "string", int: "integer", float: "number", list: "list of strings", bool: "boolean"}
        return " or ".join(dict.fromkeys(names.get(t, t.__name__) for t in types))


FIELDS: tuple[Field, ...] = (
    Field("id", str, None, "lower-case letters, digits and dashes; the folder's name", required=True),
    Field("title", str, None, "one line, shown by `grader list` and in reports", required=True),
    Field("level", str, None, "where it sits in the roadmap", required=True, choices=LEVELS),
    Field("points", (int, float), None, "the total; must equal the sum of the checks' points markers",
          required=True),
    Field("version", str, "1", "bump when checks change, so regrades can tell results apart"),
    Field("roadmap", int, None, "the roadmap task number (orders `grader list`)"),
    Field("device", str, "cpu", "cpu: always graded on CPU; gpu-optional: the gpu profile on a GPU when there "
          "is one; gpu: refused without one", choices=DEVICES),
    Field("summary", str, "", "one sentence: what the exercise grades"),
    Field("assets", list, [], "course asset names the checks use (read-only in the sandbox)"),
)

LIMITS: tuple[Field, ...] = (
    Field("check_timeout_s", (int, float), 60.0, "time budget of the student calls of one check "
          "(a check may override it with @pytest.mark.timeout_s)"),
    Field("import_timeout_s", (int, float), 60.0, "time to start the worker and import the solution"),
    Field("submission_timeout_s", (int, float), 600.0, "time budget of the whole submission"),
    Field("memory_mb", int, 3072, "the worker's memory limit"),
    Field("threads", int, 0, "torch/OpenMP threads of the worker: 0 takes the grader's `threads` setting; a "
          "smaller number for small models that run faster on one thread (never more than the setting)"),
)

TABLES = {"limits": LIMITS}
TARGET_TYPES = (str, int, float, bool, list)


def parse(meta: Mapping[str, Any], where: Path) -> dict[str, Any]:
    """Validate ``meta`` (a parsed exercise.toml) and return it with every default filled in.

    Raises :class:`PluginError` naming every problem at once, each with the file it is in.
    """
    problems: list[str] = []
    known = {f.name for f in FIELDS} | set(TABLES) | {"profiles", "leaderboard"}
    problems += [_unknown(key, known) for key in meta if key not in known]
    out = _fields(FIELDS, meta, problems)
    limits = meta.get("limits", {})
    if not isinstance(limits, Mapping):
        problems.append("[limits] must be a table")
        limits = {}
    problems += [f"[limits] {_unknown(key, {f.name for f in LIMITS})}" for key in limits
                 if key not in {f.name for f in LIMITS}]
    out["limits"] = _fields(LIMITS, limits, problems, prefix="[limits] ")
    negative = [k for k, v in out["limits"].items() if isinstance(v, int | float) and v < 0]
    problems += [f"[limits] {k} must not be negative" for k in negative]
    out["profiles"] = _profiles(meta.get("profiles", {}), out.get("device", "cpu"), problems)
    out["leaderboard"] = _leaderboard(meta.get("leaderboard", []), problems)
    if isinstance(out.get("id"), str) and not _ID.match(out["id"]):
        problems.append(f"id {out['id']!r} must be lower-case letters, digits and dashes")
    assets = out.get("assets", [])
    if not all(isinstance(a, str) and _ID.match(a) for a in assets):
        problems.append('assets must be a list of asset names such as "encoder-small"')
    if problems:
        raise PluginError(f"{where}: " + "; ".join(problems))
    return out


def _unknown(key: str, known: set[str]) -> str:
    close = [k for k in sorted(known) if _similar(key, k)]
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown key {key!r}{hint}"


def _similar(a: str, b: str) -> bool:
    import difflib

    return difflib.SequenceMatcher(None, a, b).ratio() >= 0.8


def _fields(fields: tuple[Field, ...], meta: Mapping[str, Any], problems: list[str], prefix: str = "") -> dict:
    out: dict[str, Any] = {}
    for f in fields:
        if f.name not in meta:
            if f.required:
                problems.append(f"{prefix}missing {f.name}")
            out[f.name] = list(f.default) if isinstance(f.default, list) else f.default
            continue
        value = meta[f.name]
        types = f.type if isinstance(f.type, tuple) else (f.type,)
        if (isinstance(value, bool) and bool not in types) or not isinstance(value, types):
            problems.append(f"{prefix}{f.name} must be a {f.type_name}, got {value!r}")
        elif f.choices and value not in f.choices:
            problems.append(f"{prefix}{f.name} must be one of {', '.join(f.choices)}, got {value!r}")
        out[f.name] = value
    return out


#: ``[[leaderboard]]``: key -> what it says; ``order`` defaults to desc (higher is better, as Gradescope's)
LEADERBOARD_KEYS = {
    "name": "the column's title (\"held-out accuracy\")",
    "check": "the check that records the value",
    "value": "a dotted path into what that check records with grader.testing.record (\"held_out.accuracy\")",
    "order": "desc: higher is better (the default); asc: lower is better (perplexity, loss, latency)",
}
ORDERS = ("desc", "asc")


def _leaderboard(entries: Any, problems: list[str]) -> list[dict[str, str]]:
    """The ``[[leaderboard]]`` entries, each with an order; problems for anything else."""
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) for e in entries):
        problems.append("leaderboard must be an array of tables ([[leaderboard]])")
        return []
    out = []
    for n, entry in enumerate(entries, 1):
        where = f"[[leaderboard]] {n}"
        problems += [f"{where}: {_unknown(k, set(LEADERBOARD_KEYS))}" for k in entry if k not in LEADERBOARD_KEYS]
        missing = [k for k in ("name", "check", "value") if not isinstance(entry.get(k), str) or not entry[k].strip()]
        problems += [f"{where}: {k} must be a non-empty string" for k in missing]
        order = entry.get("order", "desc")
        if order not in ORDERS:
            problems.append(f"{where}: order must be desc or asc, not {order!r}")
        out.append({"name": str(entry.get("name", "")), "check": str(entry.get("check", "")),
                    "value": str(entry.get("value", "")), "order": str(order)})
    names = [e["name"] for e in out]
    twice = sorted({n for n in names if names.count(n) > 1})
    problems += [f"two [[leaderboard]] entries are named {n!r}" for n in twice]
    return out


def leaderboard_problems(checks_dir: Path, entries: list[dict[str, str]] | tuple[Any, ...]) -> list[str]:
    """A leaderboard entry naming no check of the exercise (its column would stay empty forever)."""
    names = {c.name for c in static_checks(checks_dir)[0]}
    return [f"[[leaderboard]] {e['name']!r}: {e['check']} is not a check of this exercise"
            for e in entries if e["check"] not in names]


def _profiles(profiles: Any, device: Any, problems: list[str]) -> dict[str, dict[str, Any]]:
    if not isinstance(profiles, Mapping) or not all(isinstance(v, Mapping) for v in profiles.values()):
        problems.append("[profiles.cpu] and [profiles.gpu] must be tables")
        return {}
    for name in profiles:
        if name not in PROFILES:
            problems.append(f"[profiles.{name}] is not a profile ({' and '.join(PROFILES)} are)")
    if profiles and "cpu" not in profiles:
        problems.append("declare [profiles.cpu] targets too (the default profile)")
    if profiles and device != "cpu" and "gpu" not in profiles:
        problems.append(f"a {device} exercise is graded with the gpu profile on a GPU: declare [profiles.gpu] too")
    for name, table in profiles.items():
        for key, value in table.items():
            if not isinstance(value, TARGET_TYPES):
                problems.append(f"[profiles.{name}] {key} must be a number, string, boolean or list")
    return {str(k): dict(v) for k, v in profiles.items()}


# -- points markers, read without importing the checks ------------------------------------------------

@dataclass(frozen=True)
class StaticCheck:
    """A check as its file declares it."""

    name: str
    file: Path
    points: float | None
    hidden: bool


def static_checks(checks_dir: Path) -> tuple[list[StaticCheck], list[str]]:
    """Every ``def test_*`` under ``checks/public`` and ``checks/hidden`` with its points marker, and problems.

    Read from the source (never imported), so loading an exercise stays cheap and runs no check code.
    """
    found: list[StaticCheck] = []
    problems: list[str] = []
    for folder in ("public", "hidden"):
        for path in sorted((checks_dir / folder).glob("test_*.py")):
            checks, file_problems = _file_checks(path, folder == "hidden")
            found += checks
            problems += file_problems
    return found, problems


#: each check file's checks, by path, with the text they were read from: every runner loads every exercise, and
#: one forked from a warm server finds the files already parsed (reading is cheap, parsing is not; changed text
#: is parsed again)
_PARSED: dict[Path, tuple[str, list[StaticCheck], list[str]]] = {}


def _file_checks(path: Path, hidden: bool) -> tuple[list[StaticCheck], list[str]]:
    try:
        text = path.read_text(encoding="utf-8")
        cached = _PARSED.get(path)
        if cached is not None and cached[0] == text:
            return list(cached[1]), list(cached[2])
        tree = ast.parse(text, filename=str(path))
    except (OSError, SyntaxError, ValueError) as exc:
        return [], [f"{path.name}: cannot be read ({exc})"]
    checks: list[StaticCheck] = []
    problems: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_"):
            check, problem = _static_check(node, path, hidden)
            checks.append(check)
            if problem:
                problems.append(problem)
    _PARSED[path] = (text, checks, problems)
    return list(checks), list(problems)


def _static_check(node: ast.FunctionDef | ast.AsyncFunctionDef, path: Path, hidden: bool) -> tuple[StaticCheck, str]:
    points: float | None = None
    problem = ""
    for dec in node.decorator_list:
        name = ast.unparse(dec.func if isinstance(dec, ast.Call) else dec)
        if name.endswith("mark.parametrize"):
            problem = f"{path.name}::{node.name} is parametrized: loop inside one check instead (points are per check)"
        if name.endswith("mark.points"):
            value = dec.args[0] if isinstance(dec, ast.Call) and dec.args else None
            if isinstance(value, ast.Constant) and isinstance(value.value, int | float) and value.value > 0:
                points = float(value.value)
            else:
                problem = f"{path.name}::{node.name}: @pytest.mark.points needs one positive number"
    if points is None and not problem:
        problem = f"{path.name}::{node.name} has no @pytest.mark.points(N) marker"
    return StaticCheck(node.name, path, points, hidden), problem


def check_points(checks_dir: Path, declared: float, where: Path) -> None:
    """Refuse an exercise whose markers do not add up to its declared ``points`` (or that lacks markers).

    A student pack has no ``hidden/``: there the public checks may be worth less than the total.
    """
    checks, problems = static_checks(checks_dir)
    total = sum(c.points or 0.0 for c in checks)
    if not problems and (checks_dir / "hidden").is_dir() and abs(total - declared) > 1e-9:
        problems.append(f"the checks' points markers add up to {total:g}, but points = {declared:g}")
    elif not problems and total > declared + 1e-9:  # a student pack ships without hidden/: a part of the total
        problems.append(f"the public checks are worth {total:g} points, more than points = {declared:g}")
    if problems:
        raise PluginError(f"{where}: " + "; ".join(problems))


# -- documentation and editors -------------------------------------------------------------------------

def markdown_table() -> str:
    """The field table of docs/authoring-exercises.md (a test keeps the page equal to this)."""
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for prefix, fields in (("", FIELDS), ("limits.", LIMITS)):
        for f in fields:
            default = "required" if f.required else ("none" if f.default is None else f"`{f.default!r}`")
            meaning = f.description + (f" ({', '.join(f.choices)})" if f.choices else "")
            rows.append(f"| `{prefix}{f.name}` | {f.type_name} | {default} | {meaning} |")
    rows.append("| `profiles.cpu`, `profiles.gpu` | table | none | the `targets` fixture: budgets, thresholds, "
                "`<dtype>_rtol`/`<dtype>_atol` tolerances |")
    rows += [f"| `leaderboard[].{k}` | string | {'`desc`' if k == 'order' else 'required'} | {what} |"
             for k, what in LEADERBOARD_KEYS.items()]
    return "\n".join(rows)


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of exercise.toml, for editors that validate TOML against one."""

    def prop(f: Field) -> dict[str, Any]:
        types = f.type if isinstance(f.type, tuple) else (f.type,)
        kinds = {str: "string", int: "integer", float: "number", list: "array", bool: "boolean"}
        p: dict[str, Any] = {"description": f.description, "type": sorted({kinds[t] for t in types})}
        if f.choices:
            p["enum"] = list(f.choices)
        if list in types:
            p["items"] = {"type": "string", "pattern": ID_PATTERN}
        if f.default not in (None, []):
            p["default"] = f.default
        return p

    target = {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean", "array"]}}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "grader exercise.toml",
        "type": "object",
        "additionalProperties": False,
        "required": [f.name for f in FIELDS if f.required],
        "properties": {
            **{f.name: prop(f) for f in FIELDS},
            "limits": {"type": "object", "additionalProperties": False,
                       "properties": {f.name: prop(f) for f in LIMITS}},
            "profiles": {"type": "object", "additionalProperties": False,
                         "properties": {name: target for name in PROFILES}},
            "leaderboard": {"type": "array", "items": {
                "type": "object", "additionalProperties": False, "required": ["name", "check", "value"],
                "properties": {k: ({"type": "string", "enum": list(ORDERS), "description": what} if k == "order"
                                   else {"type": "string", "description": what})
                               for k, what in LEADERBOARD_KEYS.items()}}},
        },
    }
