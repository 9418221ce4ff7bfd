"""Shared helpers for the positional-encodings checks (trusted side), given to checks as the ``pe`` fixture."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type

DTYPE_HINT = (
    "build the result in float64, then cast it once at the end with .to(getattr(torch, dtype)) "
    "(apply_rope: .to(x.dtype); a bfloat16 x times a float32 cos table silently promotes to float32)"
)


def tol(dtype: str | torch.dtype, scale: float = 1.0, large_positions: bool = False) -> dict[str, float]:
    """Tolerance (rtol, atol) for comparing a result of ``dtype`` with the float64 reference.

    float32 and float64 get the same float32-level tolerance here (float64 accuracy has its own check);
    positions in the thousands lose ~1e-4 in float32 angles, hence ``large_positions``. ``scale`` is the
    largest |value| of the input (RoPE's outputs are as large as its inputs).
    """
    name = str(dtype).removeprefix("torch.")
    scale = max(float(scale), 1.0)
    if name == "bfloat16":
        atol = 8e-3
    elif name == "float16":
        atol = 2e-3
    else:
        atol = 1e-3 if large_positions else 1e-4
    return {"rtol": 0.0, "atol": atol * scale}


def _shape(value: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in value.shape)


def expect_tensor(actual: Any, shape: tuple[int, ...], dtype: torch.dtype | None, name: str,
                  shape_hint: str = "") -> None:
    """Fail with advice unless ``actual`` is a tensor of ``shape`` (and ``dtype`` when given)."""
    expect_type(actual, torch.Tensor, name)
    if _shape(actual) != tuple(shape):
        raise AssertionError(f"{name} has shape {_shape(actual)}, expected {tuple(shape)}. {shape_hint}".strip())
    if dtype is not None and actual.dtype != dtype:
        raise AssertionError(f"{name} has dtype {str(actual.dtype).removeprefix('torch.')}, expected "
                             f"{str(dtype).removeprefix('torch.')}: {DTYPE_HINT}")


def expect_rotated(actual: torch.Tensor, x: torch.Tensor, name: str) -> None:
    """Fail unless apply_rope's output is finite and differs from x somewhere past position 0."""
    out = actual.detach().to(torch.float64)
    assert bool(torch.isfinite(out).all()), f"{name} contains NaN or Inf: RoPE only multiplies x by cos and sin"
    moved = (out[..., 1:, :] - x[..., 1:, :].to(torch.float64)).abs().max() if x.shape[-2] > 1 else 1.0
    assert float(moved) > 1e-6, (
        f"{name} returned x unchanged: rotate pair (j, j + head_dim/2) of position p by the angle p * theta_j"
    )


def assert_matches(
    actual: Any,
    expected: torch.Tensor,
    *,
    name: str,
    advice: str,
    rtol: float,
    atol: float,
    shape_hint: str = "",
    check_dtype: bool = True,
    diagnose: Callable[[torch.Tensor], str | None] | None = None,
) -> None:
    """assert_tensor_close with a first line a student can act on.

    Type, shape and dtype problems get their own message; a value mismatch puts ``advice`` (or what
    ``diagnose(actual)`` recognises) on the first line and the figures of assert_tensor_close below it.
    """
    try:
        assert_tensor_close(actual, expected, rtol=rtol, atol=atol, name=name, check_dtype=check_dtype)
    except AssertionError as exc:
        expect_tensor(actual, _shape(expected), expected.dtype if check_dtype else None, name, shape_hint)
        better = diagnose(actual) if diagnose is not None else None
        raise AssertionError(f"{better or advice}\n{exc}") from None


def close(actual: torch.Tensor, other: torch.Tensor, atol: float) -> bool:
    """Whether two tensors of one shape agree within ``atol`` (for recognising a known mistake)."""
    return bool(((actual.to(torch.float64) - other.to(torch.float64)).abs() <= atol).all())


def interleave_pairs(y: torch.Tensor) -> torch.Tensor:
    """Map a rotate_half layout [a_0..a_{h-1}, b_0..b_{h-1}] to the interleaved one [a_0, b_0, a_1, b_1, ...]."""
    h = y.shape[-1] // 2
    return torch.stack([y[..., :h], y[..., h:]], dim=-1).reshape(y.shape)


def halve_pairs(x: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`interleave_pairs`."""
    return torch.cat([x[..., 0::2], x[..., 1::2]], dim=-1)


SINUSOIDAL_CONCATENATED = (
    "your table is in the concatenated layout [sin | cos] (all the sines, then all the cosines, as some "
    "implementations write it); this exercise interleaves them as the paper does: PE[:, 0::2] = sin and "
    "PE[:, 1::2] = cos, so columns 2i and 2i+1 are the pair of frequency i"
)


def sinusoidal_layout(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> str | None:
    """Recognise the [sin | cos] concatenated layout of a sinusoidal table (or of its row 0)."""
    if actual.shape[-1] >= 4 and close(actual, halve_pairs(expected.to(torch.float64)), atol):
        return SINUSOIDAL_CONCATENATED
    return None


def rope_variants(reference: Any, x: torch.Tensor, **kwargs: Any) -> dict[str, torch.Tensor]:
    """What apply_rope(x, **kwargs) gives under classic mistakes, computed with the reference."""
    seq_len = x.shape[-2]
    positions = kwargs.pop("positions", None)
    offset = kwargs.pop("offset", 0)
    base = kwargs.pop("base", 10000.0)
    pos = torch.arange(seq_len) if positions is None else positions
    variants = {
        "interleaved": interleave_pairs(reference.apply_rope(halve_pairs(x), base=base, positions=pos + offset)),
        "reversed": reference.apply_rope(x, base=base, positions=-(pos + offset)),
    }
    if float(base) != 10000.0:
        variants["base"] = reference.apply_rope(x, positions=pos + offset)
    if offset:
        variants["offset"] = reference.apply_rope(x, base=base, positions=pos)
    if positions is not None:
        variants["positions"] = reference.apply_rope(x, base=base, offset=offset)
    return variants


ROPE_ADVICE = {
    "interleaved": "you pair dimensions (2j, 2j+1) (GPT-J / interleaved style); this exercise uses rotate_half: "
                   "pair dimension j with j + head_dim/2",
    "reversed": "you rotate by -angle: with rotate_half(x) = concat(-x[h:], x[:h]) the rule is "
                "out = x * cos + rotate_half(x) * sin (the minus sign belongs to the second half)",
    "base": "your result is what base=10000 gives: use the base argument, theta_j = base^(-2j/head_dim)",
    "offset": "your result ignores offset: row p of the sequence axis is at position offset + p",
    "positions": "your result ignores positions: row p must be rotated by the angles of position positions[p]",
}


def rope_diagnose(reference: Any, x: torch.Tensor, atol: float, **kwargs: Any) -> Callable[[torch.Tensor], str | None]:
    """A ``diagnose`` for apply_rope that recognises the wrong pairing, direction, and ignored arguments."""

    def diagnose(actual: torch.Tensor) -> str | None:
        for kind, other in rope_variants(reference, x, **dict(kwargs)).items():
            if close(actual, other.to(actual.dtype), atol):
                return ROPE_ADVICE[kind]
        return None

    return diagnose


@pytest.fixture
def pe() -> SimpleNamespace:
    """Helpers for the positional-encodings checks."""
    return SimpleNamespace(
        tol=tol,
        expect_tensor=expect_tensor,
        expect_rotated=expect_rotated,
        assert_matches=assert_matches,
        close=close,
        interleave_pairs=interleave_pairs,
        rope_diagnose=rope_diagnose,
        sinusoidal_layout=sinusoidal_layout,
    )
