"""Leaderboards for open-ended exercises: a number worth comparing, per student, under a pseudonym.

An exercise declares ``[[leaderboard]]`` entries (name, the check that records the value, a dotted path into
what it records, order); results.json then carries Gradescope's ``leaderboard`` array for each graded
submission, and the class report and the server rank each student's best attempt.  Students appear under
pseudonyms drawn from a keyed hash (the key is the course's own, kept in its gradebook or server data), so
a board can be shown to a class: a student finds their own row, not anyone else's name.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_ADJECTIVES = ("amber", "brisk", "calm", "dapper", "eager", "fuzzy", "gentle", "hazel", "icy", "jolly", "keen",
               "lucid", "mellow", "nimble", "olive", "plucky", "quiet", "rapid", "sunny", "tidy", "umber", "vivid",
               "witty", "young", "zesty", "bold", "coral", "dusky", "fern", "golden", "humble", "ivory")
_ANIMALS = ("otter", "falcon", "badger", "heron", "lynx", "marmot", "newt", "orca", "panda", "quail", "raven",
            "seal", "tapir", "urchin", "vole", "walrus", "yak", "zebra", "ibis", "koala", "lemur", "moose",
            "narwhal", "ocelot", "puffin", "robin", "stoat", "toucan", "wombat", "gecko", "hare", "jackal")


def pseudonym(key: str, student: str, tail: int = 2) -> str:
    """A stable, unguessable pseudonym for ``student`` under the course's ``key`` ("brisk-heron-4f"); a longer
    ``tail`` (hex digits) tells apart two students whose short ones collide."""
    digest = hmac.new(key.encode(), student.encode(), hashlib.sha256).digest()
    adjective, animal = _ADJECTIVES[digest[0] % len(_ADJECTIVES)], _ANIMALS[digest[1] % len(_ANIMALS)]
    return f"{adjective}-{animal}-{digest[2:].hex()[:tail]}"


def pseudonyms(key: str, students: Iterable[str]) -> dict[str, str]:
    """A pseudonym for each of ``students``, distinct among them (colliding ones get longer tails)."""
    names = sorted(set(students))
    tails = dict.fromkeys(names, 2)
    while True:
        made = {s: pseudonym(key, s, tails[s]) for s in names}
        seen: dict[str, list[str]] = {}
        for s, p in made.items():
            seen.setdefault(p, []).append(s)
        clash = [s for group in seen.values() if len(group) > 1 for s in group]
        if not clash:
            return made
        for s in clash:
            tails[s] += 2


def _lookup(details: Any, path: str) -> float | None:
    value = details
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def entries(exercise: Any, checks: Iterable[Any]) -> list[dict[str, Any]]:
    """Gradescope's ``leaderboard`` array for one graded submission: each declared entry whose check ran and
    recorded a finite number there (a check that never got that far leaves its entry out)."""
    by_name = {c.name.rsplit("::", 1)[-1]: c for c in checks}
    out = []
    for entry in exercise.leaderboard:
        check = by_name.get(entry["check"])
        value = _lookup(check.details, entry["value"]) if check is not None else None
        if value is not None:
            out.append({"name": entry["name"], "value": value, "order": entry["order"]})
    return out


@dataclass(frozen=True)
class Row:
    rank: int
    who: str
    value: float
    mine: bool = False


def rank(attempts: Iterable[tuple[str, str, list[dict[str, Any]]]], name: str, key: str,
         me: str | None = None, reveal: bool = False) -> list[Row]:
    """The board for entry ``name``: each student's best value over ``attempts`` (student, when, leaderboard
    array), best first; ties keep the order in which they were reached (the earlier attempt first), equal
    ranks shared. ``me`` sees their own name and everyone else is a pseudonym; ``reveal`` (an instructor)
    sees every name."""
    best: dict[str, tuple[float, str, str]] = {}
    order = "desc"
    for student, when, board in attempts:
        for item in board:
            if item.get("name") != name or not isinstance(item.get("value"), int | float):
                continue
            order = item.get("order", "desc")
            value = float(item["value"])
            sign = -1.0 if order == "desc" else 1.0
            current = best.get(student)
            if current is None or (sign * value, when) < (sign * current[0], current[1]):
                best[student] = (value, when, student)
    sign = -1.0 if order == "desc" else 1.0
    ordered = sorted(best.values(), key=lambda v: (sign * v[0], v[1], v[2]))
    names = pseudonyms(key, best)
    rows: list[Row] = []
    for i, (value, _, student) in enumerate(ordered):
        shared = rows[-1].rank if rows and rows[-1].value == value else i + 1
        rows.append(Row(shared, student if reveal or student == me else names[student], value, student == me))
    return rows
