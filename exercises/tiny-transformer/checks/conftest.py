"""Shared helpers for the tiny-transformer checks (trusted side), given to checks as the ``tt`` fixture.

The oracle model is built here from torch's own layers: token and position embeddings, pre-norm
``nn.TransformerEncoderLayer`` blocks (GELU, no dropout) under a causal mask, a final LayerNorm and an
unbiased output projection, which is the GPT layout the stub prescribes. Its state dict, in the layout the
stub documents, crosses into the sandbox as plain tensors; the student's model and trainer stay there.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from grader.testing import expect_type, load_module

#: the mechanics checks' small trainer (the held-out check reads its sizes from the profile)
SMALL = {"vocab_size": 28, "context_length": 8, "d_model": 16, "num_layers": 2, "num_heads": 2, "d_ff": 32,
         "batch_size": 4, "max_lr": 0.05, "min_lr": 0.005, "warmup_iters": 2, "cosine_cycle_iters": 6,
         "weight_decay": 0.5, "max_grad_norm": 0.1, "betas": [0.9, 0.95], "eps": 1e-8, "device": "cpu"}


class TorchLM(nn.Module):
    """The oracle: the stub's architecture from torch's own layers."""

    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int) -> None:
        super().__init__()
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(context_length, d_model)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout=0.0, activation="gelu", batch_first=True,
                                       norm_first=True) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        x = self.tok_emb(ids) + self.pos_emb(torch.arange(length))
        future = torch.ones(length, length, dtype=torch.bool).triu(1)
        with torch.enable_grad():  # the ordinary code path, not the fused inference one
            for layer in self.layers:
                x = layer(x, src_mask=future)
            return self.lm_head(self.norm(x))


def model_args(config: dict[str, Any]) -> tuple[int, ...]:
    keys = ("vocab_size", "context_length", "d_model", "num_layers", "num_heads", "d_ff")
    return tuple(int(config[k]) for k in keys)


def torch_lm(config: dict[str, Any], seed: int) -> TorchLM:
    """An oracle model with random weights, LayerNorm parameters and biases included."""
    torch.manual_seed(seed)
    model = TorchLM(*model_args(config))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                param.normal_(1.0, 0.3)
            elif name.endswith("bias"):
                param.normal_(0.0, 0.2)
    return model


def state_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def oracle_logits(model: TorchLM, ids: torch.Tensor) -> torch.Tensor:
    return model(ids).detach()


def random_ids(config: dict[str, Any], batch: int, length: int | None = None) -> torch.Tensor:
    return torch.randint(0, int(config["vocab_size"]), (batch, length or int(config["context_length"])))


def expect_losses(losses: Any, steps: int, what: str) -> list[float]:
    expect_type(losses, (list, tuple), what)
    assert len(losses) == steps, f"{what} returned {len(losses)} losses for {steps} steps: one loss per step"
    for value in losses:
        assert type(value) in (float, int), f"{what} should return Python floats, found {type(value).__name__}"
    values = [float(v) for v in losses]
    assert all(v == v and abs(v) < 1e6 for v in values), f"{what} returned NaN or huge losses: {values[:5]}"
    return values


def hidden_module(name: str) -> ModuleType:
    """A helper module kept beside the hidden checks (left out of student packs)."""
    module = load_module(Path(__file__).parent / "hidden" / f"{name}.py", f"tiny_transformer_{name}")
    assert module is not None
    return module


@pytest.fixture(scope="session")
def tt() -> SimpleNamespace:
    """Helpers for the tiny-transformer checks."""
    return SimpleNamespace(SMALL=SMALL, TorchLM=TorchLM, model_args=model_args, torch_lm=torch_lm,
                           state_of=state_of, oracle_logits=oracle_logits, random_ids=random_ids,
                           expect_losses=expect_losses, hidden_module=hidden_module)
