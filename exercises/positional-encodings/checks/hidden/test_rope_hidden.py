"""Hidden checks of RoPE: offsets, explicit positions, larger shapes, other dtypes and bases."""

import pytest
import torch

from grader.testing import expect_type

PUBLIC_FIRST = (
    "apply_rope(x) is already wrong on small float32 inputs with default arguments: make the public checks pass first"
)


def _rope_diagnose(student, reference, pe, x, atol, **kwargs):
    """Known mistakes first; else tell whether the plain apply_rope(x) is right at all."""
    known = pe.rope_diagnose(reference, x, atol, **kwargs)

    def diagnose(actual):
        found = known(actual)
        if found:
            return found
        plain = student.apply_rope(x)
        right = reference.apply_rope(x)
        if isinstance(plain, torch.Tensor) and plain.shape == right.shape and pe.close(plain, right, atol):
            return None
        return PUBLIC_FIRST

    return diagnose


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_rope_offset_and_positions(student, reference, pe):
    """apply_rope and rope_cos_sin honour offset and explicit positions"""
    x = torch.randn(2, 3, 9, 16)
    tol = pe.tol(torch.float32, scale=float(x.abs().max()), large_positions=True)
    pe.assert_matches(
        student.apply_rope(x, offset=37), reference.apply_rope(x, offset=37), name="apply_rope(x, offset=...)",
        advice="apply_rope(x, offset=k) is wrong: row p of the sequence axis is at position k + p",
        diagnose=_rope_diagnose(student, reference, pe, x, tol["atol"], offset=37), **tol,
    )

    out = student.rope_cos_sin(12, 16, offset=100, dtype="float64")
    expect_type(out, (tuple, list), "the value returned by rope_cos_sin(..., offset=...)")
    assert len(out) == 2, "rope_cos_sin(..., offset=k) should return two tables (cos, sin)"
    tol64 = pe.tol("float64", large_positions=True)
    plain = reference.rope_cos_sin(12, 16, dtype="float64")
    for i, (actual, expected) in enumerate(zip(out, reference.rope_cos_sin(12, 16, offset=100, dtype="float64"),
                                               strict=True)):
        pe.assert_matches(
            actual, expected, name=f"rope_cos_sin(..., offset=...)[{i}]", **tol64,
            advice="rope_cos_sin(seq_len, head_dim, offset=k) is wrong: row p holds the angles of position k + p",
            diagnose=lambda a, i=i: ("rope_cos_sin ignores offset: row p holds the angles of position offset + p"
                                     if pe.close(a, plain[i], tol64["atol"]) else None),
        )

    y = torch.randn(3, 7, 8)
    positions = torch.tensor([5, 0, 3, 3, 42, 1, 1000])
    tol = pe.tol(torch.float32, scale=float(y.abs().max()), large_positions=True)
    pe.assert_matches(
        student.apply_rope(y, positions=positions), reference.apply_rope(y, positions=positions),
        name="apply_rope(x, positions=...)", **tol,
        advice=("apply_rope(x, positions=pos) is wrong: row p must be rotated by the angles of position pos[p] "
                "(unsorted, repeated and large positions included), not p"),
        diagnose=_rope_diagnose(student, reference, pe, y, tol["atol"], positions=positions),
    )
    # both at once: row p is at position offset + positions[p] (a cache of `offset` tokens, then given positions)
    pe.assert_matches(
        student.apply_rope(y, offset=11, positions=positions), reference.apply_rope(y, offset=11, positions=positions),
        name="apply_rope(x, offset=..., positions=...)", **tol,
        advice="apply_rope(x, offset=k, positions=pos) is wrong: row p is at position k + pos[p], both arguments count",
        diagnose=_rope_diagnose(student, reference, pe, y, tol["atol"], offset=11, positions=positions),
    )


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_rope_hidden_shapes_and_dtypes(student, reference, pe):
    """apply_rope on larger shapes, other dtypes and other bases"""
    cases = [
        ((1, 4, 300, 64), torch.bfloat16, 10000.0, "a bfloat16 input with 300 positions"),
        ((2, 2, 200, 128), torch.float64, 500.0, "a float64 input with base=500"),
        ((3, 50, 6), torch.float16, 10000.0, "a float16 input with head_dim 6"),
        ((2, 1, 3, 40, 24), torch.float32, 1e6, "a 5-D float32 input with base=1e6"),
    ]
    small = torch.randn(2, 6, 8)
    for shape, dtype, base, what in cases:
        x = torch.randn(shape, dtype=torch.float64).to(dtype)
        tol = pe.tol(dtype, scale=float(x.abs().max()), large_positions=True)
        known = pe.rope_diagnose(reference, x, 2 * tol["atol"], base=base)

        def diagnose(actual, known=known):
            found = known(actual)
            if found:
                return found
            plain, right = student.apply_rope(small), reference.apply_rope(small)
            if not (isinstance(plain, torch.Tensor) and plain.shape == right.shape and pe.close(plain, right, 1e-3)):
                return PUBLIC_FIRST
            return None

        pe.assert_matches(
            student.apply_rope(x, base=base), reference.apply_rope(x, base=base), name=f"apply_rope on {what}",
            shape_hint="apply_rope(x) returns a tensor of x's shape, for any number of leading axes",
            advice=(f"apply_rope is wrong on {what}: use the base argument, keep x's dtype, compute the angles "
                    "in float64 and pair dimension j with j + head_dim/2"),
            diagnose=diagnose, **tol,
        )
