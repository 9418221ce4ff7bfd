"""Hidden checks: run only by `grader grade` (message-only: students see the message, not this code)."""

from __future__ import annotations

import pytest
import torch

from grader.testing import expect_close, expect_tensor


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_softmax_is_stable_for_large_logits(student, logits, targets):
    big = logits * 300  # exp(1000) overflows float64
    got = expect_tensor(student.softmax(big, dim=1), big.shape, what="softmax(300 * x)")
    expect_close(got, torch.softmax(big, dim=1), targets=targets, what="softmax(300 * x)",
                 advice="large logits give inf/nan: subtract the maximum along dim before exponentiating")
