"""Shared fixtures for the fine-tuning checks (trusted side), given to checks as the ``ft`` fixture.

The training-loop checks drive the student's ``train_classifier`` through the stub's given ``train_linear``
on a tiny known model (a float64 nn.Linear, 5 features, 3 classes) and compare with AdamW's update worked
out by hand and with the reference loop. The fine-tuning checks use the packaged encoder (asset
``encoder-small``) and the 200 labelled sentences of ``sentiment-sentences`` as the training split.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_tensor, expect_type

KEYS = ("losses", "lrs", "grad_norms")


@pytest.fixture(scope="session")
def model_dir(assets: Any) -> str:
    return str(assets["encoder-small"])


@pytest.fixture(scope="session")
def train_split(assets: Any) -> tuple[list[str], list[int]]:
    """The provided training split: the 200 labelled sentences of the sentiment-sentences asset."""
    rows = (Path(assets["sentiment-sentences"]) / "sentences.tsv").read_text(encoding="utf-8").splitlines()
    pairs = [row.split("\t", 1) for row in rows if row.strip()]
    return [text for _, text in pairs], [int(label) for label, _ in pairs]


def tiny_problem(seed: int, steps: int, scales: tuple[float, ...] = (1.0,), batch: int = 8
                 ) -> tuple[torch.Tensor, torch.Tensor, list[dict[str, torch.Tensor]]]:
    """A float64 Linear(5, 3) with known weights (bias 0) and ``steps`` batches; batch k's features scaled by
    scales[k % len(scales)] (gradients of very different sizes make clipping visible through Adam)."""
    g = torch.Generator().manual_seed(4242 + seed)
    weight = torch.randn(3, 5, generator=g, dtype=torch.float64) * 0.5
    bias = torch.zeros(3, dtype=torch.float64)
    batches = [{"features": torch.randn(batch, 5, generator=g, dtype=torch.float64) * scales[k % len(scales)],
                "labels": torch.randint(3, (batch,), generator=g)} for k in range(steps)]
    return weight, bias, batches


def history(result: Any, steps: int, what: str) -> dict[str, Any]:
    """train_linear's result, checked: weight, bias and three lists of ``steps`` floats."""
    expect_type(result, dict, what)
    for key in ("weight", "bias", *KEYS):
        assert key in result, (f"{what} has no {key!r}: train_classifier must return a dict with 'losses', "
                               f"'lrs' and 'grad_norms'")
    expect_tensor(result["weight"], (3, 5), torch.float64, f"{what}['weight']")
    for key in KEYS:
        values = result[key]
        expect_type(values, (list, tuple), f"{what}[{key!r}]")
        assert len(values) == steps, f"{what}[{key!r}] has {len(values)} entries for {steps} batches: one per step"
        for v in values:
            assert type(v) in (float, int), f"{what}[{key!r}] should hold Python floats, found {type(v).__name__}"
    return result


def expect_weights(got: dict[str, Any], want: dict[str, Any], what: str, advice: str, rtol: float = 1e-7,
                   atol: float = 1e-9) -> None:
    for key in ("weight", "bias"):
        assert_tensor_close(got[key], want[key], rtol=rtol, atol=atol, name=f"{key} after {what}", advice=advice)


def expect_floats(got: list[float], want: list[float], name: str, advice: str, rtol: float = 1e-7) -> None:
    assert_tensor_close(torch.tensor([float(v) for v in got], dtype=torch.float64),
                        torch.tensor([float(v) for v in want], dtype=torch.float64), rtol=rtol, atol=1e-12,
                        name=name, advice=advice)


def library_lrs(base_lr: float, warmup_steps: int, total_steps: int, upto: int) -> list[float]:
    """The learning rate transformers' get_linear_schedule_with_warmup gives at steps 0 .. upto-1."""
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=base_lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)
    out = []
    for _ in range(upto):
        out.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        scheduler.step()
    return out


@pytest.fixture(scope="session")
def ft() -> SimpleNamespace:
    """Helpers for the fine-tuning checks."""
    return SimpleNamespace(tiny_problem=tiny_problem, history=history, expect_weights=expect_weights,
                           expect_floats=expect_floats, library_lrs=library_lrs)
