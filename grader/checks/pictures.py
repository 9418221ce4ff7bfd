"""What a check records for the report's pictures: training curves (with the reference's curve and the target)
and confusion matrices, bounded in size; and the trusted side's cache of reference curves.

A curve is the student's own run; the reference's curve beside it is the reference trained on the trusted side
with the same inputs, seed and budget.  That costs a second training, so it is computed once per reference,
checks, profile and seed and kept in a cache only the grader writes (``RunnerConfig.reference_cache``); a
grading of the reference folder itself records its own curve there instead of training twice.  The reference
curve only draws: no verdict reads it, so a failure to compute it loses the line, never a point.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from grader.fs import PYCACHE, atomic_write_text, files_under

#: a curve keeps at most this many points (bucket means of longer runs; the first and last steps kept)
MAX_POINTS = 200
#: a confusion matrix has at most this many classes a side (more is a table, not a picture)
MAX_CLASSES = 20


def _number(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def as_numbers(values: Any) -> list[float | None]:
    """Student data as a curve: a list or tuple's items as floats (None where not a finite number); anything
    else is no curve at all (a check draws what it got, it never crashes on it)."""
    return [_number(v) for v in values] if isinstance(values, (list, tuple)) else []


def downsample(values: Sequence[Any], limit: int = MAX_POINTS) -> tuple[list[int], list[float | None]]:
    """``(steps, values)`` with at most ``limit`` points: bucket means, each at its bucket's middle step, None for
    a bucket holding a NaN or inf (a diverged step stays visible as a gap); first and last steps kept."""
    ys = [_number(v) for v in values]
    n = len(ys)
    if n <= limit:
        return list(range(n)), ys
    edges = [round(i * (n - 1) / (limit - 2)) for i in range(limit - 1)]
    steps, out = [0], [ys[0]]
    for a, b in itertools.pairwise(edges):
        part = ys[a + 1:b + 1]
        steps.append((a + 1 + b) // 2)
        out.append(sum(part) / len(part) if part and None not in part else None)  # type: ignore[arg-type]
    steps.append(n - 1)
    out.append(ys[-1])
    return steps, [float(f"{y:.6g}") if y is not None else None for y in out]


def curve_record(values: Any, reference: Any = None, target: float | None = None, target_label: str = "target",
                 y_label: str = "loss") -> dict[str, Any]:
    """The JSON a check records under ``curve/<name>`` (values that are not a list of numbers: an empty curve)."""
    values = as_numbers(values)
    x, ys = downsample(values)
    rec: dict[str, Any] = {"steps": len(values), "x": x, "values": ys, "y_label": y_label,
                           "nonfinite": sum(1 for v in values if v is None)}
    if reference is not None:
        reference = as_numbers(reference)
        rx, ry = downsample(reference)
        rec["reference"] = {"steps": len(reference), "x": rx, "values": ry}
    if target is not None and _number(target) is not None:
        rec["target"] = float(target)
        rec["target_label"] = target_label
    return rec


def confusion_record(labels: Sequence[Any], predicted: Sequence[Any],
                     classes: Sequence[str] | None = None) -> dict[str, Any]:
    """The JSON a check records under ``confusion/<name>``: rows are the true class, columns the predicted one.

    Labels and predictions are class indices (``classes`` names them) or any hashable values (sorted);
    a prediction outside the classes gets its own column, ``other``.
    """
    if len(labels) != len(predicted):
        raise ValueError(f"{len(labels)} labels but {len(predicted)} predictions")
    if classes is None:
        seen = sorted({str(v) for v in labels})
        index: dict[Any, int] = {v: i for i, v in enumerate(seen)}
        names = seen
        key: Callable[[Any], Any] = str
    else:
        names, index = [str(c) for c in classes], {i: i for i in range(len(classes))}
        key = _as_index
    if len(names) > MAX_CLASSES:
        raise ValueError(f"{len(names)} classes: a confusion matrix is drawn for at most {MAX_CLASSES}")
    other = any(key(p) not in index for p in predicted)
    matrix = [[0] * (len(names) + other) for _ in names]
    for y, p in zip(labels, predicted, strict=True):
        row = index.get(key(y))
        if row is None:
            raise ValueError(f"label {y!r} is not one of the classes {names}")
        matrix[row][index.get(key(p), len(names))] += 1
    return {"classes": names, "predicted": names + (["other"] if other else []), "matrix": matrix,
            "n": len(labels), "correct": sum(matrix[i][i] for i in range(len(names)))}


def _as_index(v: Any) -> Any:
    return int(v) if isinstance(v, (int, float)) and float(v).is_integer() and not isinstance(v, bool) else v


# -- the reference curves, on the trusted side ----------------------------------------------------------
def reference_cache_dir() -> Path | None:
    """``$GRADER_REFERENCE_CACHE`` (empty: keep none), else ``$XDG_CACHE_HOME/grader/reference-curves``, else
    ``~/.cache/grader/reference-curves``."""
    value = os.environ.get("GRADER_REFERENCE_CACHE")
    if value is not None:
        return Path(value).expanduser().resolve() if value.strip() else None
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return (base / "grader" / "reference-curves").resolve()


def tree_digest(folder: str | Path | None) -> str:
    """sha256 over a folder's files (relative names and bytes; caches and bytecode skipped)."""
    h = hashlib.sha256()
    if folder is None or not Path(folder).is_dir():
        return "none"
    root = Path(folder)
    for path in files_under(root, PYCACHE):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


class ReferenceCurves:
    """The ``reference_curve`` fixture: ``reference_curve(name, values, compute)`` -> the reference's curve or
    None.  ``values`` is the student's curve (kept as the reference's when the graded folder is the reference
    itself); ``compute()`` trains the reference with the same inputs, seed and budget, called on a cache miss
    with the RNG state saved and restored, and its time given back to the job's deadlines (``on_spent``)."""

    def __init__(self, cache: str | None, identity: dict[str, Any], is_reference: bool,
                 on_spent: Callable[[float], None]) -> None:
        self.cache = Path(cache) if cache else None
        self.identity = identity
        self.is_reference = is_reference
        self.on_spent = on_spent
        self.problems: list[str] = []

    def _path(self, check: str, name: str) -> Path | None:
        if self.cache is None:
            return None
        key = json.dumps({**self.identity, "check": check, "name": name}, sort_keys=True)
        return self.cache / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def __call__(self, check: str, name: str, values: Sequence[Any],
                 compute: Callable[[], Sequence[Any]] | None = None) -> list[float | None] | None:
        path = self._path(check, name)
        if self.is_reference:
            curve = as_numbers(values)
            self._store(path, curve)
            return curve
        if path is not None and path.is_file():
            try:
                return list(json.loads(path.read_text(encoding="utf-8"))["values"])
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable: computed again below
        if compute is None:
            return None
        from grader.checks.answers import _rng_state

        restore = _rng_state()
        started = time.monotonic()
        try:
            curve = as_numbers(list(compute()))
        except Exception as exc:  # the picture loses its line; the verdict never depends on it
            self.problems.append(f"the reference curve could not be computed: {type(exc).__name__}: {exc}")
            return None
        finally:
            restore()
            self.on_spent(time.monotonic() - started)
        self._store(path, curve)
        return curve

    def _store(self, path: Path | None, curve: list[float | None]) -> None:
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            atomic_write_text(path, json.dumps({"values": curve, **self.identity}), mode=0o600)
        except OSError:
            pass  # a read-only cache: computed again next time
