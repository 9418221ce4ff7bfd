"""Public checks of sinusoidal_encoding (Vaswani et al. 2017, section 3.5)."""

import pytest
import torch

SHAPE_HINT = "sinusoidal_encoding(seq_len, d_model) returns one row per position and one column per dimension"
FORMULA = (
    "PE[pos, 2i] = sin(pos / base^(2i/d_model)) and PE[pos, 2i+1] = cos(pos / base^(2i/d_model)), "
    "with i the index of the (sin, cos) PAIR, so columns 2i and 2i+1 share one frequency"
)


def _first_bad_column(actual: torch.Tensor, expected: torch.Tensor, atol: float) -> int:
    bad = ((actual.to(torch.float64) - expected.to(torch.float64)).abs() > atol).any(dim=0)
    return int(bad.nonzero()[0].item()) if bad.any() else -1


def _advice(actual: torch.Tensor, expected: torch.Tensor, atol: float, layout) -> str:
    known = layout(actual, expected, atol)
    if known:
        return known
    col = _first_bad_column(actual, expected, atol)
    if col < 0:
        return f"some values are NaN or Inf: {FORMULA}"
    if col <= 1:
        where = f"column {col} (frequency 1: sin(pos) / cos(pos)) already differs"
    else:
        where = f"columns 0-{col - 1} agree but column {col} (pair i={col // 2}) differs: check the frequency"
    return f"{where}: {FORMULA}"


@pytest.mark.points(1)
def test_sinusoidal_position_zero(student, pe):
    """sinusoidal_encoding: row 0 is [0, 1, 0, 1, ...]"""
    out = student.sinusoidal_encoding(6, 10)
    pe.expect_tensor(out, (6, 10), None, "sinusoidal_encoding(6, 10)", SHAPE_HINT)
    expected = torch.tensor([0.0, 1.0] * 5, dtype=torch.float64)

    def diagnose(row: torch.Tensor) -> str:
        layout = pe.sinusoidal_layout(row, expected, 1e-3)
        if layout:
            return f"row 0 is [0, ..., 0, 1, ..., 1]: {layout}"
        if pe.close(row, 1.0 - expected, 1e-3):
            return ("row 0 is [1, 0, 1, 0, ...]: sin and cos are swapped; sin goes in the even columns 2i, "
                    "cos in the odd columns 2i+1")
        return ("row 0 (position 0) should be [0, 1, 0, 1, ...], since sin(0) = 0 and cos(0) = 1: "
                "do positions start at 0 (torch.arange(seq_len)) and is sin in the even columns?")

    pe.assert_matches(out[0], expected, name="sinusoidal_encoding(6, 10)[0]", advice="", rtol=0.0, atol=1e-5,
                      check_dtype=False, diagnose=diagnose)


@pytest.mark.points(1)
def test_sinusoidal_matches_reference(student, reference, pe):
    """sinusoidal_encoding equals the reference (float32 and float64, several shapes)"""
    for seq_len, d_model, dtype in [(16, 8, "float32"), (50, 32, "float64"), (7, 2, "float32"), (33, 20, "float64")]:
        call = f"sinusoidal_encoding({seq_len}, {d_model}, dtype={dtype!r})"
        out = student.sinusoidal_encoding(seq_len, d_model, dtype=dtype)
        expected = reference.sinusoidal_encoding(seq_len, d_model, dtype=dtype)
        tol = pe.tol(dtype)
        pe.assert_matches(out, expected, name=call, advice=FORMULA, shape_hint=SHAPE_HINT,
                          diagnose=lambda a, e=expected, t=tol["atol"]: _advice(a, e, t, pe.sinusoidal_layout),
                          **tol)


@pytest.mark.points(1)
def test_sinusoidal_dtype(student, reference, pe):
    """sinusoidal_encoding returns the requested bfloat16 / float16 dtype, with accurate values"""
    for dtype in ("bfloat16", "float16"):
        call = f"sinusoidal_encoding(100, 16, dtype={dtype!r})"
        out = student.sinusoidal_encoding(100, 16, dtype=dtype)
        expected = reference.sinusoidal_encoding(100, 16, dtype=dtype)

        def diagnose(actual, dtype=dtype, expected=expected):
            layout = pe.sinusoidal_layout(actual, expected, pe.tol(dtype)["atol"])
            if layout:
                return layout
            out32 = student.sinusoidal_encoding(100, 16, dtype="float32")
            if isinstance(out32, torch.Tensor) and tuple(out32.shape) == (100, 16) and pe.close(
                out32, reference.sinusoidal_encoding(100, 16, dtype="float32"), pe.tol("float32")["atol"]
            ):
                return (f"right in float32 but not in {dtype}: compute positions, frequencies and angles in float64 "
                        f"(or float32) and cast only the finished table to {dtype}; in {dtype} itself "
                        "pos * frequency is wrong by a large fraction of a radian")
            return f"the float32 table is wrong too (see test_sinusoidal_matches_reference): {FORMULA}"

        pe.assert_matches(out, expected, name=call, shape_hint=SHAPE_HINT, advice=FORMULA, diagnose=diagnose,
                          **pe.tol(dtype))
