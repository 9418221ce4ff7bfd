"""Fixtures of the sample-softmax checks (trusted side: never imports the student's code)."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def logits(seed: int) -> torch.Tensor:
    """A non-square batch (3 x 5), so a softmax over the wrong dimension cannot pass by symmetry."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(3, 5, generator=generator, dtype=torch.float64) * 4
