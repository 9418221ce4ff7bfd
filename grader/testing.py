"""Helpers for check authors: tensor comparison with a report a student can act on, seeding.

Everything here runs in the trusted process, on data that already crossed the boundary.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import ModuleType
from typing import Any

from grader.checks.details import JobFiles, current, record, seed_everything
from grader.checks.details import begin_details as begin_details  # re-exported: tests of check helpers start a record
from grader.sandbox.remote import (  # re-exported for checks
    BoundaryError,
    StudentCodeError,
    StudentError,
    SubmissionLoadError,
    WorkerCrash,
    WorkerOOM,
    WorkerTimeout,
)

__all__ = [
    "BoundaryError",
    "JobFiles",
    "StudentCodeError",
    "StudentError",
    "SubmissionLoadError",
    "WorkerCrash",
    "WorkerOOM",
    "WorkerTimeout",
    "assert_tensor_close",
    "confusion",
    "curve",
    "expect_close",
    "expect_tensor",
    "expect_type",
    "load_module",
    "record",
    "seed_everything",
    "tensor_report",
    "tolerance",
]

#: used when a profile names no tolerance for a dtype: a few ulps of accumulated rounding in each
DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {
    "float64": (1e-9, 1e-10),
    "float32": (1e-4, 1e-5),
    "bfloat16": (2e-2, 2e-2),
    "float16": (2e-3, 2e-3),
}

def curve(name: str, values: Any, *, reference: Any = None, target: float | None = None,
          target_label: str = "target", y_label: str = "loss") -> None:
    """Record a training curve (one number per step) to draw in the report, over the reference's curve when
    given (the ``reference_curve`` fixture) and with the target as a line.  Drawn for public and message-only
    checks, never hidden ones; at most :data:`grader.checks.pictures.MAX_POINTS` points are kept."""
    from grader.checks.pictures import curve_record

    record(f"curve/{name}", curve_record(values, reference, target, target_label, y_label))


def confusion(name: str, labels: Any, predicted: Any, classes: Any = None) -> None:
    """Record a confusion matrix (rows: the true class, columns: the predicted one) to draw in the report, for
    public and message-only checks; ``classes`` names the class indices."""
    from grader.checks.pictures import confusion_record

    record(f"confusion/{name}", confusion_record(list(labels), list(predicted), classes))


def load_module(path: Path, name: str, *, optional: bool = False) -> ModuleType | None:
    """The Python file at ``path`` imported as module ``name`` (a helper kept beside the checks).

    Helpers that solve the exercise (a catalogue of classic mistakes that recomputes them) live under
    ``checks/hidden/``, which student packs leave out: load those with ``optional=True`` and get None where
    the file is absent, so the public checks still run and fall back to their general advice.
    """
    if not path.is_file():
        if optional:
            return None
        raise FileNotFoundError(f"no helper module at {path}")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"{path} cannot be imported as a module")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def expect_type(value: Any, expected: type | tuple[type, ...], what: str) -> None:
    """Fail (not crash) when student data has the wrong type."""
    if not isinstance(value, expected):
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        raise AssertionError(f"{what} should be a {names}, got {type(value).__name__}")


def tensor_report(actual: Any, expected: Any, rtol: float, atol: float, equal_nan: bool = False) -> dict[str, Any]:
    """Compare two tensors of one shape; every figure a student needs to find the bug."""
    import torch

    a = actual.detach().to(torch.float64) if not actual.is_complex() else actual.detach().to(torch.complex128)
    e = expected.detach().to(a.dtype)
    diff = (a - e).abs()
    finite = torch.isfinite(diff)
    tol = atol + rtol * e.abs()
    bad = ~(diff <= tol) | (torch.isnan(a) != torch.isnan(e))
    both_nan = torch.isnan(a) & torch.isnan(e)
    bad = bad & ~both_nan if equal_nan else bad | both_nan
    rel = diff / e.abs().clamp_min(1e-12)
    safe_diff = torch.where(finite, diff, torch.full_like(diff, float("inf")))
    ranked = torch.where(both_nan, torch.zeros_like(safe_diff), safe_diff)
    worst_flat = int(torch.argmax(ranked).item()) if diff.numel() else 0
    worst = [int(i) for i in torch.unravel_index(torch.tensor(worst_flat), tuple(a.shape))] if a.dim() else []
    return {
        "shape": list(actual.shape),
        "dtype": str(actual.dtype).removeprefix("torch."),
        "expected_dtype": str(expected.dtype).removeprefix("torch."),
        "max_abs_error": float(diff[finite].max().item()) if finite.any() else float("inf"),
        "max_rel_error": float(rel[finite].max().item()) if finite.any() else float("inf"),
        "worst_index": worst,
        "worst_actual": _scalar(a.reshape(-1)[worst_flat]) if a.numel() else None,
        "worst_expected": _scalar(e.reshape(-1)[worst_flat]) if e.numel() else None,
        "mismatched": int(bad.sum().item()),
        "total": int(a.numel()),
        "percent_mismatched": round(100.0 * float(bad.sum().item()) / max(a.numel(), 1), 3),
        "nan_count": int(torch.isnan(actual).sum().item()) if actual.is_floating_point() else 0,
        "inf_count": int(torch.isinf(actual).sum().item()) if actual.is_floating_point() else 0,
        "rtol": rtol,
        "atol": atol,
    }


#: a heatmap has at most this many cells a side (larger matrices are shown in blocks)
HEATMAP_CELLS = 16


def heatmap(actual: Any, expected: Any, worst: list[int]) -> dict[str, Any]:
    """The 2-D slice of a failing comparison that holds its worst element, in at most HEATMAP_CELLS blocks a
    side: got and expected as block means, |got - expected| as block maxima (a single bad value stays
    visible), the worst block marked. Values have 4 significant digits; non-finite ones are None."""
    import torch
    import torch.nn.functional as F

    lead = tuple(worst[:-2])
    got = actual.detach()[lead].to(torch.float64)  # the slice first: a batch of logits is large
    want = expected.detach()[lead].to(torch.float64)
    h, w = got.shape
    size = (min(h, HEATMAP_CELLS), min(w, HEATMAP_CELLS))
    diff = (got - want).abs().nan_to_num(nan=float("inf"))

    def blocks(t: Any, reduce: Any) -> list[list[float | None]]:
        pooled = reduce(t[None, None], size)[0, 0]
        return [[float(f"{v:.4g}") if math.isfinite(v) else None for v in row] for row in pooled.tolist()]

    return {"slice": list(lead), "shape": [h, w], "cells": list(size),
            "got": blocks(got, F.adaptive_avg_pool2d), "expected": blocks(want, F.adaptive_avg_pool2d),
            "diff": blocks(diff, F.adaptive_max_pool2d),
            "worst": [worst[-2] * size[0] // h, worst[-1] * size[1] // w]}


def _scalar(t: Any) -> Any:
    value = t.item()
    return value if not isinstance(value, complex) else str(value)


def assert_tensor_close(
    actual: Any,
    expected: Any,
    rtol: float = 1e-5,
    atol: float = 1e-6,
    name: str = "output",
    check_dtype: bool = True,
    equal_nan: bool = False,
    advice: str = "",
) -> None:
    """Assert ``actual`` equals ``expected`` within ``atol + rtol * |expected|``, elementwise.

    The failure message and the check's recorded details give shape, dtype, max abs/rel error,
    the worst index, the share of elements out of tolerance and NaN/Inf counts.  A NaN never equals
    anything unless ``equal_nan``.  ``advice`` becomes the message's first line (what students read).
    """
    try:
        _compare(actual, expected, rtol, atol, name, check_dtype, equal_nan)
    except AssertionError as exc:
        if advice:
            raise AssertionError(f"{advice}\n{exc}") from None
        raise


def _compare(actual: Any, expected: Any, rtol: float, atol: float, name: str, check_dtype: bool,
             equal_nan: bool) -> None:
    import torch

    entry: dict[str, Any] = {"name": name}
    tensors = current().setdefault("tensors", [])
    tensors.append(entry)
    if not isinstance(actual, torch.Tensor):
        entry["problem"] = f"not a tensor ({type(actual).__name__})"
        raise AssertionError(f"{name} should be a torch.Tensor, got {type(actual).__name__}")
    if tuple(actual.shape) != tuple(expected.shape):
        entry.update(shape=list(actual.shape), expected_shape=list(expected.shape), problem="shape")
        raise AssertionError(f"{name} has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
    if check_dtype and actual.dtype != expected.dtype:
        entry.update(dtype=str(actual.dtype), expected_dtype=str(expected.dtype), problem="dtype")
        raise AssertionError(f"{name} has dtype {actual.dtype}, expected {expected.dtype}")
    report = tensor_report(actual, expected, rtol, atol, equal_nan)
    entry.update(report)
    if report["mismatched"]:
        entry["problem"] = "values"
        if actual.dim() >= 2 and not actual.is_complex() and not expected.is_complex():
            entry["heatmap"] = heatmap(actual, expected, report["worst_index"])
        raise AssertionError(
            f"{name}: {report['mismatched']} of {report['total']} values ({report['percent_mismatched']}%) "
            f"differ beyond rtol={rtol}, atol={atol}; max abs error {report['max_abs_error']:.3g}, "
            f"max rel error {report['max_rel_error']:.3g}, worst at index {tuple(report['worst_index'])} "
            f"(got {report['worst_actual']}, expected {report['worst_expected']}); "
            f"NaN: {report['nan_count']}, Inf: {report['inf_count']}"
        )


def _dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def tolerance(targets: Any, dtype: Any, scale: float = 1.0) -> dict[str, float]:
    """``{"rtol":, "atol":}`` for ``dtype`` from the active profile's ``<dtype>_rtol`` / ``<dtype>_atol`` keys.

    ``targets`` is the ``targets`` fixture (or any mapping, or ``None``); a dtype the profile does not name
    takes :data:`DEFAULT_TOLERANCES`.  ``scale`` widens both (for a longer chain of operations, say).
    """
    name = _dtype_name(dtype)
    rtol, atol = DEFAULT_TOLERANCES.get(name, DEFAULT_TOLERANCES["float32"])
    targets = targets or {}
    return {"rtol": float(targets.get(f"{name}_rtol", rtol)) * scale,
            "atol": float(targets.get(f"{name}_atol", atol)) * scale}


def expect_tensor(value: Any, shape: Any = None, dtype: Any = None, what: str = "output") -> Any:
    """Fail (not crash) unless ``value`` is a tensor of ``shape`` (``None`` entries match any size) and ``dtype``.

    Returns the tensor, so a check can go on with it: ``out = expect_tensor(student.f(x), (2, None), what="f(x)")``.
    """
    import torch

    expect_type(value, torch.Tensor, what)
    if shape is not None:
        want = tuple(shape)
        got = tuple(value.shape)
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got, strict=False)):
            shown = "(" + ", ".join("*" if w is None else str(w) for w in want) + ")"
            raise AssertionError(f"{what} has shape {got}, expected {shown}")
    if dtype is not None and value.dtype != dtype:
        raise AssertionError(f"{what} has dtype {_dtype_name(value.dtype)}, expected {_dtype_name(dtype)}")
    return value


def expect_close(
    actual: Any,
    expected: Any,
    *,
    targets: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    what: str = "output",
    advice: str = "",
    diagnose: Any = None,
    equal_nan: bool = False,
    check_dtype: bool = True,
) -> None:
    """:func:`assert_tensor_close` with the tolerance of the active profile for ``expected``'s dtype.

    Explicit ``rtol``/``atol`` win over ``targets``.  When the values differ, ``diagnose(actual, expected)``
    may name the specific mistake (a string leads the message, before ``advice``); it returns ``None`` when
    it does not recognise one.  A diagnose function that raises is a bug in the check, never hidden.
    """
    tol = tolerance(targets, getattr(expected, "dtype", "float32"))
    rtol = tol["rtol"] if rtol is None else rtol
    atol = tol["atol"] if atol is None else atol
    try:
        _compare(actual, expected, rtol, atol, what, check_dtype, equal_nan)
    except AssertionError as exc:
        lines = []
        if diagnose is not None and _values_compared(actual, expected):
            named = diagnose(actual, expected)
            if named:
                lines.append(str(named))
        if advice and advice not in lines:
            lines.append(advice)
        if lines:
            raise AssertionError("\n".join([*lines, str(exc)])) from None
        raise


def _values_compared(actual: Any, expected: Any) -> bool:
    import torch

    return isinstance(actual, torch.Tensor) and tuple(actual.shape) == tuple(expected.shape)
