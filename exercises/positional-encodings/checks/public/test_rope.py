"""Public checks of rope_cos_sin and apply_rope (Su et al. 2021, RoFormer), rotate_half convention."""

import pytest
import torch

from grader.testing import expect_type

SHAPE_HINT = "apply_rope(x) returns a tensor of x's shape"
RULE = (
    "pair dimension j with j + head_dim/2, angle a_j = pos * base^(-2j/head_dim), and "
    "out = x * cos_t + rotate_half(x) * sin_t with rotate_half(x) = concat(-x[..., h:], x[..., :h])"
)


@pytest.mark.points(1)
def test_rope_cos_sin_matches_reference(student, reference, pe):
    """rope_cos_sin returns the (cos, sin) tables in the rotate_half layout"""
    for seq_len, head_dim, dtype in [(8, 16, "float32"), (20, 8, "float64"), (5, 2, "float32")]:
        call = f"rope_cos_sin({seq_len}, {head_dim}, dtype={dtype!r})"
        out = student.rope_cos_sin(seq_len, head_dim, dtype=dtype)
        expect_type(out, (tuple, list), f"the value returned by {call}")
        assert len(out) == 2, f"{call} should return two tables (cos, sin), got {len(out)} values"
        cos_ref, sin_ref = reference.rope_cos_sin(seq_len, head_dim, dtype=dtype)
        tol = pe.tol(dtype)

        def diagnose(actual, expected, other, name):
            if pe.close(actual, other, 1e-3):
                return "you return (sin, cos): return the tables in the order (cos, sin)"
            if pe.close(actual, pe.interleave_pairs(expected), 1e-3):
                return ("your table is in the interleaved layout [a_0, a_0, a_1, a_1, ...]; rotate_half needs the "
                        "half-width table repeated, torch.cat([freqs, freqs], dim=-1) = [a_0..a_{h-1}, a_0..a_{h-1}]")
            if not pe.close(actual[0], expected[0], 1e-3):
                return (f"row 0 (position 0) of {name} should be all {1 if name == 'cos' else 0}: positions start "
                        "at 0 (plus offset), so the angles of row 0 are all 0")
            return (f"{name}[p, j] should be {name}(p * base^(-2j/head_dim)) for j < head_dim/2, and the same "
                    "half repeated for j >= head_dim/2: is the exponent 2j/head_dim (j counts pairs)?")

        for name, actual, expected, other in (("cos", out[0], cos_ref, sin_ref), ("sin", out[1], sin_ref, cos_ref)):
            pe.assert_matches(
                actual, expected, name=f"{call}[{0 if name == 'cos' else 1}] ({name})", advice="",
                shape_hint="each table is (seq_len, head_dim)",
                diagnose=lambda a, e=expected, o=other, n=name: diagnose(a, e, o, n), **tol,
            )


@pytest.mark.points(1)
def test_rope_position_zero_unchanged(student, pe):
    """apply_rope leaves position 0 unchanged"""
    x = torch.randn(2, 3, 5, 8)
    out = student.apply_rope(x)
    pe.expect_tensor(out, tuple(x.shape), None, "apply_rope(x) for x of shape (2, 3, 5, 8)", SHAPE_HINT)
    pe.expect_rotated(out, x, "apply_rope(x) for x of shape (2, 3, 5, 8)")
    pe.assert_matches(
        out[..., 0, :], x[..., 0, :], name="apply_rope(x)[..., 0, :]", rtol=0.0, atol=1e-5, check_dtype=False,
        advice=("position 0 has angle 0, so RoPE must leave row 0 of the sequence axis (the second-to-last axis) "
                "unchanged: do positions start at 0, and is cos (not sin) the factor of x?"),
    )


@pytest.mark.points(1)
def test_rope_preserves_norm(student, pe):
    """apply_rope keeps every vector's norm (it is a rotation)"""
    x = 3.0 * torch.randn(2, 4, 12, 16, dtype=torch.float64)
    out = student.apply_rope(x)
    pe.expect_tensor(out, tuple(x.shape), None, "apply_rope(x) for x of shape (2, 4, 12, 16)", SHAPE_HINT)
    pe.expect_rotated(out, x, "apply_rope(x) for x of shape (2, 4, 12, 16)")
    pe.assert_matches(
        out.to(torch.float64).norm(dim=-1), x.norm(dim=-1), name="norm of apply_rope(x) along head_dim",
        rtol=1e-5, atol=1e-6, check_dtype=False,
        advice=("RoPE is a rotation, so each vector keeps its norm, but yours change: out[j] = x[j]cos(a_j) - "
                "x[j+h]sin(a_j) and out[j+h] = x[j+h]cos(a_j) + x[j]sin(a_j) with ONE angle a_j per pair; "
                "check the minus sign in rotate_half and that both halves use the same frequencies"),
    )


@pytest.mark.points(1)
def test_rope_relative_position(student, pe):
    """<apply_rope(q)[m], apply_rope(k)[n]> depends only on m - n"""
    seq_len, head_dim = 10, 16
    q, k = torch.randn(2, head_dim, dtype=torch.float64)
    x = torch.stack([q.expand(seq_len, head_dim), k.expand(seq_len, head_dim)])  # same q (k) at every position
    out = student.apply_rope(x)
    pe.expect_tensor(out, tuple(x.shape), None, "apply_rope(x) for x of shape (2, 10, 16)", SHAPE_HINT)
    pe.expect_rotated(out, x, "apply_rope(x) for x of shape (2, 10, 16)")
    out = out.to(torch.float64)
    scores = out[0] @ out[1].T  # scores[m, n] = <rope(q, m), rope(k, n)>
    scale = float(q.norm() * k.norm())
    assert float((scores[0] - scores[0, 0]).abs().max()) > 1e-3 * scale, (
        "<rope(q, 0), rope(k, n)> is the same for every n: positions must be rotated by different angles p * theta_j"
    )
    pe.assert_matches(
        scores[1:, 1:], scores[:-1, :-1], name="<rope(q, m+1), rope(k, n+1)> vs <rope(q, m), rope(k, n)>",
        rtol=0.0, atol=1e-5 * scale, check_dtype=False,
        advice=("<rope(q, m), rope(k, n)> should depend only on m - n, but it changes when m and n shift together: "
                "rotate each pair (j, j + head_dim/2) by exactly pos * theta_j, the same theta_j for both members"),
    )


@pytest.mark.points(1)
def test_rope_matches_reference(student, reference, pe):
    """apply_rope equals the reference (float32 and float64, several shapes)"""
    for shape, dtype in [((2, 3, 10, 8), torch.float32), ((6, 32), torch.float64), ((1, 2, 1, 7, 16), torch.float32)]:
        x = torch.randn(shape, dtype=dtype)
        call = f"apply_rope(x) for x of shape {shape} and dtype {str(dtype).removeprefix('torch.')}"
        tol = pe.tol(dtype, scale=float(x.abs().max()))
        known = pe.rope_diagnose(reference, x, 10 * tol["atol"])

        def diagnose(actual, x=x, known=known):
            found = known(actual)
            if found:
                return found
            actual = actual.to(torch.float64)
            if not pe.close(actual[..., 0, :], x[..., 0, :], 1e-4):
                return ("row 0 (position 0) changed, yet its angle is 0: positions start at 0, and out = "
                        "x * cos_t + rotate_half(x) * sin_t")
            if not pe.close(actual.norm(dim=-1), x.to(torch.float64).norm(dim=-1), 1e-3):
                return ("vector norms change, so this is no rotation: check the minus sign in rotate_half and that "
                        "both members of a pair (j, j + head_dim/2) use the same angle")
            return None

        pe.assert_matches(
            student.apply_rope(x), reference.apply_rope(x), name=call, shape_hint=SHAPE_HINT,
            advice=f"apply_rope differs from the reference: {RULE}", diagnose=diagnose, **tol,
        )


@pytest.mark.points(1)
def test_rope_keeps_dtype(student, reference, pe):
    """apply_rope returns x's dtype (bfloat16, float16, float64) with accurate values"""
    for shape, dtype in [((2, 4, 24, 32), torch.bfloat16), ((3, 9, 16), torch.float16), ((5, 8), torch.float64)]:
        x = torch.randn(shape, dtype=torch.float64).to(dtype)
        name = str(dtype).removeprefix("torch.")
        call = f"apply_rope(x) for x of shape {shape} and dtype {name}"
        tol = pe.tol(dtype, scale=float(x.abs().max()))
        known = pe.rope_diagnose(reference, x, 2 * tol["atol"])

        def diagnose(actual, x=x, name=name, known=known):
            found = known(actual)
            if found:
                return found
            x32 = x.to(torch.float32)
            out32 = student.apply_rope(x32)
            if isinstance(out32, torch.Tensor) and out32.shape == x32.shape and pe.close(
                out32, reference.apply_rope(x32), pe.tol(torch.float32, scale=float(x32.abs().max()))["atol"]
            ):
                return (f"right in float32 but not in {name}: compute the angles in float64 (or float32), never in "
                        f"{name}, and cast only the result (or the cos/sin tables) to {name}")
            return f"apply_rope is wrong in float32 too (see test_rope_matches_reference): {RULE}"

        pe.assert_matches(student.apply_rope(x), reference.apply_rope(x), name=call, shape_hint=SHAPE_HINT,
                          advice=RULE, diagnose=diagnose, **tol)
