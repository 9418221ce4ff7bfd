"""Shared helpers for the encoder-block checks (trusted side), given to checks as the ``enc`` fixture.

Every expected output comes from a real ``nn.TransformerEncoderLayer`` built here, in the trusted
process, with random weights (LayerNorm gains and biases included, so they matter); its state dict
crosses into the sandbox as plain tensors and the student's block stays there.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type


def torch_layer(d_model: int, num_heads: int, d_ff: int, *, dropout: float = 0.1, activation: str = "relu",
                norm_first: bool = False, eps: float = 1e-5, seed: int = 0,
                dtype: torch.dtype = torch.float32) -> torch.nn.TransformerEncoderLayer:
    torch.manual_seed(seed)
    layer = torch.nn.TransformerEncoderLayer(d_model, num_heads, d_ff, dropout=dropout, activation=activation,
                                             layer_norm_eps=eps, batch_first=True, norm_first=norm_first)
    with torch.no_grad():
        for norm in (layer.norm1, layer.norm2):
            norm.weight.normal_(1.0, 0.3)
            norm.bias.normal_(0.0, 0.3)
        for name, param in layer.named_parameters():  # torch starts linear biases at 0: make them count
            if name.endswith("bias") and "norm" not in name:
                param.normal_(0.0, 0.1)
    return layer.to(dtype).eval()


def state_of(layer: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in layer.state_dict().items()}


def expected(layer: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The layer's output on its ordinary (not fused "fast path") code path."""
    with torch.enable_grad():
        return layer(x, src_key_padding_mask=mask).detach()


def student_block(student: Any, layer: torch.nn.TransformerEncoderLayer, config: Mapping[str, Any],
                  double: bool = False) -> Any:
    """The student's EncoderBlock with the layer's weights loaded, in eval mode."""
    block = student.new("EncoderBlock", config["d_model"], config["num_heads"], config["d_ff"],
                        dropout=config.get("dropout", 0.1), activation=config.get("activation", "relu"),
                        norm_first=config.get("norm_first", False), layer_norm_eps=config.get("eps", 1e-5))
    if double:
        block.handle("double")
    block.load_torch_weights(state_of(layer))
    block.handle("eval")
    return block


def tol(targets: Mapping[str, Any], dtype: torch.dtype) -> dict[str, float]:
    name = "float64" if dtype == torch.float64 else "float32"
    return {"rtol": float(targets[f"{name}_rtol"]), "atol": float(targets[f"{name}_atol"])}


def real_positions(mask: torch.Tensor | None, shape: tuple[int, ...]) -> torch.Tensor:
    """Which (batch, seq) outputs are compared: every one, or only those of real (non-padded) tokens."""
    return torch.ones(shape[:2], dtype=torch.bool) if mask is None else ~mask


def assert_block_output(actual: Any, want: torch.Tensor, *, name: str, advice: str, targets: Mapping[str, Any],
                        mask: torch.Tensor | None = None) -> None:
    """Type and shape first (with advice of their own), then the values of the real positions."""
    expect_output(actual, tuple(want.shape), name)
    keep = real_positions(mask, tuple(want.shape))
    assert_tensor_close(actual[keep], want[keep], name=f"{name} (real positions)", advice=advice,
                        **tol(targets, want.dtype))


def expect_output(actual: Any, shape: tuple[int, ...], name: str) -> None:
    expect_type(actual, torch.Tensor, name)
    if tuple(actual.shape) != tuple(shape):
        raise AssertionError(f"{name} has shape {tuple(actual.shape)}, expected {tuple(shape)} (batch, seq, d_model)")


def random_mask(lengths: list[int], seq: int) -> torch.Tensor:
    return torch.arange(seq)[None, :] >= torch.tensor(lengths)[:, None]


@pytest.fixture(scope="session")
def enc() -> SimpleNamespace:
    """Helpers for the encoder-block checks."""
    return SimpleNamespace(torch_layer=torch_layer, state_of=state_of, expected=expected,
                           student_block=student_block, assert_block_output=assert_block_output,
                           random_mask=random_mask, tol=tol, expect_output=expect_output)
