"""Hidden checks: odd sizes, float64 accuracy, long tables and other bases."""

import pytest
import torch

from grader.testing import StudentCodeError, expect_type

FORMULA = (
    "PE[pos, 2i] = sin(pos / base^(2i/d_model)), PE[pos, 2i+1] = cos(pos / base^(2i/d_model)), "
    "with base the argument (not always 10000)"
)


@pytest.mark.points(1)
def test_odd_dimensions_raise(student):
    """An odd d_model or head_dim raises ValueError"""
    calls = [
        ("sinusoidal_encoding(4, 7)", lambda: student.sinusoidal_encoding(4, 7)),
        ("rope_cos_sin(4, 5)", lambda: student.rope_cos_sin(4, 5)),
        ("apply_rope(x) for x of shape (3, 4, 5)", lambda: student.apply_rope(torch.randn(3, 4, 5))),
    ]
    for what, call in calls:
        with pytest.raises(StudentCodeError) as info:
            call()
            # reached only when the student's code returned normally
            raise AssertionError(f"{what} returned a value: an odd size has no partner for its last dimension; "
                                 "check it first and raise ValueError")
        assert info.value.exc_type != "NotImplementedError", f"{what} is not implemented yet (NotImplementedError)"
        assert info.value.exc_type == "ValueError", (
            f"{what} raised {info.value.exc_type}, expected ValueError: check the size is even before computing "
            "and raise ValueError with a message saying so"
        )


@pytest.mark.points(1)
def test_float64_precision(student, reference, pe):
    """float64 results are float64-accurate"""
    x = torch.randn(2, 300, 32, dtype=torch.float64)
    tables = student.rope_cos_sin(300, 32, offset=100, dtype="float64")
    expect_type(tables, (tuple, list), "the value returned by rope_cos_sin(300, 32, offset=100, dtype='float64')")
    assert len(tables) == 2, "rope_cos_sin(...) should return two tables (cos, sin)"
    results = [
        ("sinusoidal_encoding(1024, 64, dtype='float64')", student.sinusoidal_encoding(1024, 64, dtype="float64"),
         reference.sinusoidal_encoding(1024, 64, dtype="float64")),
        ("rope_cos_sin(300, 32, offset=100, dtype='float64')[1] (sin)", tables[1],
         reference.rope_cos_sin(300, 32, offset=100, dtype="float64")[1]),
        ("apply_rope(x, offset=100) for a float64 x of shape (2, 300, 32)", student.apply_rope(x, offset=100),
         reference.apply_rope(x, offset=100)),
    ]
    for name, actual, expected in results:
        scale = max(float(expected.abs().max()), 1.0)

        def diagnose(a, e=expected, s=scale):
            err = float((a.to(torch.float64) - e.to(torch.float64)).abs().max())
            if err < 1e-2 * s:
                return ("float64 results are only float32-accurate: compute positions, frequencies and angles "
                        "in float64 (torch.arange(..., dtype=torch.float64)), not in float32 and then cast up")
            return None

        pe.assert_matches(actual, expected, name=name, rtol=0.0, atol=1e-9 * scale, diagnose=diagnose,
                          advice=f"{name} is wrong by far more than float32 rounding: the formula itself is off")


@pytest.mark.points(1)
def test_sinusoidal_long_and_custom_base(student, reference, pe):
    """sinusoidal_encoding with long tables and other bases"""
    for seq_len, d_model, base, dtype in [(1024, 96, 10000.0, "float32"), (300, 64, 100.0, "float64"),
                                          (257, 6, 10.0, "float32")]:
        call = f"sinusoidal_encoding({seq_len}, {d_model}, base={base}, dtype={dtype!r})"
        tol = pe.tol(dtype, large_positions=True)

        def diagnose(actual, seq_len=seq_len, d_model=d_model, base=base, dtype=dtype, atol=tol["atol"]):
            layout = pe.sinusoidal_layout(actual, reference.sinusoidal_encoding(seq_len, d_model, base=base,
                                                                                dtype=dtype), atol)
            if layout:
                return layout
            if base != 10000.0 and pe.close(actual, reference.sinusoidal_encoding(seq_len, d_model, dtype=dtype), atol):
                return f"your table is what base=10000 gives: use the base argument. {FORMULA}"
            small = student.sinusoidal_encoding(16, 8)
            right = reference.sinusoidal_encoding(16, 8)
            if not (isinstance(small, torch.Tensor) and small.shape == right.shape and pe.close(small, right, 1e-3)):
                return "sinusoidal_encoding(16, 8) is already wrong: make the public checks pass first"
            return None

        pe.assert_matches(
            student.sinusoidal_encoding(seq_len, d_model, base=base, dtype=dtype),
            reference.sinusoidal_encoding(seq_len, d_model, base=base, dtype=dtype),
            name=call, advice=f"{call} is wrong: {FORMULA}", diagnose=diagnose, **tol,
        )
