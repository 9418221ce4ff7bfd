"""Public checks: shipped to students and run by `grader check`."""

from __future__ import annotations

import pytest
import torch

from grader.testing import StudentCodeError, expect_close, expect_tensor


def _columns_sum_to_one(actual: torch.Tensor, expected: torch.Tensor) -> str | None:
    ones = torch.ones(actual.shape[1], dtype=actual.dtype)
    return "each column sums to 1: is the sum taken over dim=0?" if torch.allclose(actual.sum(0), ones) else None


@pytest.mark.points(1)
def test_softmax_matches_torch(student, logits, targets):
    got = expect_tensor(student.softmax(logits, dim=-1), logits.shape, logits.dtype, what="softmax(x)")
    expect_close(got, torch.softmax(logits, dim=-1), targets=targets, what="softmax(x)", diagnose=_columns_sum_to_one,
                 advice="softmax(x)[i] = exp(x_i - max x) / sum_j exp(x_j - max x), along dim")


@pytest.mark.points(1)
def test_softmax_rejects_integer_tensors(student):
    with pytest.raises(StudentCodeError) as raised:
        student.softmax(torch.arange(4), dim=-1)
        pytest.fail("softmax of an integer tensor should raise ValueError, as the docstring says")
    assert raised.value.exc_type == "ValueError", f"raised {raised.value.exc_type}, expected ValueError"
