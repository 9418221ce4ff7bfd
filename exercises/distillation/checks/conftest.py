"""Shared fixtures for the distillation checks (trusted side), given to checks as the ``kd`` fixture.

The task is built here from the grading seed: 10 classes of 16-dimensional Gaussian points (unit variance
around random class means), so classes overlap and a good model's output distribution carries the Bayes
posterior -- what a teacher knows and a few hard labels do not say. The teacher, ``make_mlp([16, 128, 128, 10],
0.1)``, is trained here on 8,192 points; the student sees only a few dozen labelled points; accuracy is
measured on 2,000 hidden points drawn from the same distribution.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from grader.testing import expect_tensor, load_module

# tiny models: one thread avoids the thread hand-offs that dominate small ops on a busy machine
torch.set_num_threads(1)

DIM, CLASSES = 16, 10
TEACHER = [DIM, 128, 128, CLASSES]
STUDENT = [DIM, 32, CLASSES]


# hidden/mistakes.py recomputes classic loss mistakes; it computes KD losses, so student packs leave it out.
MISTAKES = load_module(Path(__file__).parent / "hidden" / "mistakes.py", "distillation_mistakes", optional=True)


def diagnose(s: torch.Tensor, t: torch.Tensor, temperature: float, got: float) -> str | None:
    """The classic mistake that gives ``got`` for these (n, C) logits, when the catalogue is present."""
    return MISTAKES.kd_diagnose(s, t, temperature, got) if MISTAKES is not None else None


def _sampler(seed: int) -> Any:
    g = torch.Generator().manual_seed(90_001 + seed)
    means = torch.randn(CLASSES, DIM, generator=g) * 0.8

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(CLASSES, (n,), generator=g)
        return means[labels] + torch.randn(n, DIM, generator=g), labels

    return sample, g


@pytest.fixture(scope="session")
def task(reference: Any, seed: int, targets: Any) -> SimpleNamespace:
    """Teacher weights (trained here), the student's labelled points and the hidden points."""
    sample, g = _sampler(seed)
    x, y = sample(8192)
    torch.manual_seed(seed)
    teacher = reference.make_mlp(TEACHER, 0.1)
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=3e-3)
    for _ in range(200):
        idx = torch.randint(len(x), (128,), generator=g)
        loss = F.cross_entropy(teacher(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    teacher.eval()
    train_x, train_y = sample(int(targets["train_points"]))
    hidden_x, hidden_y = sample(2000)
    with torch.no_grad():
        teacher_accuracy = float((teacher(hidden_x).argmax(-1) == hidden_y).float().mean())
    state = {k: v.detach().clone() for k, v in teacher.state_dict().items()}
    student_shapes = {k: v.shape for k, v in reference.make_mlp(STUDENT).state_dict().items()}
    return SimpleNamespace(teacher=teacher, teacher_state=state, train_x=train_x, train_y=train_y,
                           hidden_x=hidden_x, hidden_y=hidden_y, teacher_accuracy=teacher_accuracy, sample=sample,
                           student_shapes=student_shapes)


def logits_pair(seed: int, shape: tuple[int, ...], scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g) * scale, torch.randn(*shape, generator=g) * scale


def loss_value(value: Any, what: str) -> torch.Tensor:
    return expect_tensor(value, (), None, what)


@pytest.fixture(scope="session")
def kd() -> SimpleNamespace:
    """Helpers for the distillation checks."""
    return SimpleNamespace(TEACHER=TEACHER, STUDENT=STUDENT, CLASSES=CLASSES, logits_pair=logits_pair,
                           loss_value=loss_value, diagnose=diagnose)
