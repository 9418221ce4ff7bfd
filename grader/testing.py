"""Helpers for check authors: tensor comparison with a report a student can act on, seeding.

Everything here runs in the trusted process, on data that already crossed the boundary.
"""

from __future__ import annotations

import random
from typing import Any

from grader.remote import (  # re-exported for checks
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
    "StudentCodeError",
    "StudentError",
    "SubmissionLoadError",
    "WorkerCrash",
    "WorkerOOM",
    "WorkerTimeout",
    "assert_tensor_close",
    "expect_type",
    "record",
    "seed_everything",
    "tensor_report",
]

_DETAILS: list[dict[str, Any]] = []


def _current() -> dict[str, Any]:
    if not _DETAILS:
        _DETAILS.append({})
    return _DETAILS[-1]


def begin_details() -> dict[str, Any]:
    """Start a fresh details record (the grader's pytest plugin calls this per check)."""
    _DETAILS.clear()
    _DETAILS.append({})
    return _DETAILS[-1]


def record(key: str, value: Any) -> None:
    """Attach JSON-able structured data to the current check (shown in results.json and the report).

    A list of numbers under ``series/<name>`` is drawn as a curve in the HTML report.
    """
    _current()[key] = value


def seed_everything(seed: int) -> None:
    """Seed python, numpy (if imported) and torch (if imported) in the trusted process."""
    import sys

    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


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
    tensors = _current().setdefault("tensors", [])
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
        raise AssertionError(
            f"{name}: {report['mismatched']} of {report['total']} values ({report['percent_mismatched']}%) "
            f"differ beyond rtol={rtol}, atol={atol}; max abs error {report['max_abs_error']:.3g}, "
            f"max rel error {report['max_rel_error']:.3g}, worst at index {tuple(report['worst_index'])} "
            f"(got {report['worst_actual']}, expected {report['worst_expected']}); "
            f"NaN: {report['nan_count']}, Inf: {report['inf_count']}"
        )
