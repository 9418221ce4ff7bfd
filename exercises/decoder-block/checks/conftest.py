"""Shared helpers for the decoder-block checks (trusted side), given to checks as the ``dec`` fixture.

Every expected output comes from a real ``nn.TransformerDecoderLayer`` built here, in the trusted process,
with random weights (LayerNorm gains and linear biases included, so they matter); its state dict crosses
into the sandbox as plain tensors and the student's block stays there.  Masks given to torch are boolean,
True = may NOT attend (torch's convention, and this exercise's for the padding masks).

When a result is wrong, :func:`diagnose` recomputes it with torch under classic mistakes (the other
LayerNorm placement, no causal mask, a causal mask without its diagonal, scores divided by sqrt(d_model),
LayerNorm applied to the memory, inverted padding masks) to name the one the student made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type


def torch_layer(d_model: int = 16, num_heads: int = 4, d_ff: int = 32, *, dropout: float = 0.1,
                activation: str = "relu", norm_first: bool = False, eps: float = 1e-5, seed: int = 0,
                dtype: torch.dtype = torch.float32) -> torch.nn.TransformerDecoderLayer:
    """A decoder layer (batch first) with random weights, LayerNorm parameters and biases; in eval mode."""
    torch.manual_seed(seed)
    layer = torch.nn.TransformerDecoderLayer(d_model, num_heads, d_ff, dropout=dropout, activation=activation,
                                             layer_norm_eps=eps, batch_first=True, norm_first=norm_first)
    with torch.no_grad():
        for name, param in layer.named_parameters():
            if name.startswith("norm") and name.endswith("weight"):
                param.normal_(1.0, 0.3)
            elif name.endswith("bias"):  # torch starts biases at 0: make them count
                param.normal_(0.0, 0.3 if name.startswith("norm") else 0.1)
    return layer.to(dtype).eval()


def layer_for(config: Mapping[str, Any], seed: int, dtype: torch.dtype = torch.float32) -> Any:
    keys = ("d_model", "num_heads", "d_ff", "dropout", "activation", "norm_first", "eps")
    return torch_layer(**{k: config[k] for k in keys if k in config}, seed=seed, dtype=dtype)


def state_of(layer: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in layer.state_dict().items()}


def causal_mask(length: int, diagonal: int = 1) -> torch.Tensor:
    """True above the diagonal: query i may not attend keys j > i."""
    return torch.ones(length, length, dtype=torch.bool).triu(diagonal)


def expected(layer: torch.nn.Module, x: torch.Tensor, memory: torch.Tensor, causal: bool = True,
             tgt_pad: torch.Tensor | None = None, mem_pad: torch.Tensor | None = None,
             *, tgt_mask: torch.Tensor | None = None) -> torch.Tensor:
    """The layer's output on its ordinary (not fused "fast path") code path."""
    if tgt_mask is None and causal:
        tgt_mask = causal_mask(x.shape[1])
    with torch.enable_grad():
        return layer(x, memory, tgt_mask=tgt_mask, tgt_key_padding_mask=tgt_pad,
                     memory_key_padding_mask=mem_pad).detach()


def student_block(student: Any, layer: torch.nn.Module, config: Mapping[str, Any], double: bool = False) -> Any:
    """The student's DecoderBlock with the layer's weights loaded, in eval mode."""
    block = student.new("DecoderBlock", config["d_model"], config["num_heads"], config["d_ff"],
                        dropout=config.get("dropout", 0.1), activation=config.get("activation", "relu"),
                        norm_first=config.get("norm_first", False), layer_norm_eps=config.get("eps", 1e-5))
    if double:
        block.handle("double")
    block.load_torch_weights(state_of(layer))
    block.handle("eval")
    return block


def setup(student: Any, seed: int, **config: Any) -> tuple[dict[str, Any], Any, Any]:
    """(config, torch layer, the student's block with its weights): the small block unless ``config`` says."""
    config = {"d_model": 16, "num_heads": 4, "d_ff": 32, "dropout": 0.1, **config}
    layer = layer_for(config, seed)
    return config, layer, student_block(student, layer, config)


def tol(targets: Mapping[str, Any], dtype: torch.dtype) -> dict[str, float]:
    name = "float64" if dtype == torch.float64 else "float32"
    return {"rtol": float(targets[f"{name}_rtol"]), "atol": float(targets[f"{name}_atol"])}


def expect_output(actual: Any, shape: tuple[int, ...], name: str) -> torch.Tensor:
    expect_type(actual, torch.Tensor, name)
    if tuple(actual.shape) != tuple(shape):
        raise AssertionError(f"{name} has shape {tuple(actual.shape)}, expected {tuple(shape)} "
                             "(batch, target length, d_model): one output per TARGET position, whatever the "
                             "memory's length")
    return actual


def assert_block_output(actual: Any, want: torch.Tensor, *, name: str, advice: str, targets: Mapping[str, Any],
                        tgt_pad: torch.Tensor | None = None) -> None:
    """Type and shape first (with advice of their own), then the values at the real target positions."""
    expect_output(actual, tuple(want.shape), name)
    keep = torch.ones(want.shape[:2], dtype=torch.bool) if tgt_pad is None else ~tgt_pad
    assert_tensor_close(actual[keep], want[keep], name=f"{name} (real target positions)", advice=advice,
                        **tol(targets, want.dtype))


def padding(lengths: list[int], length: int, left: bool = False) -> torch.Tensor:
    """A key padding mask, True = padding: each row has ``lengths[i]`` real tokens (right-padded by default)."""
    pos = torch.arange(length)[None, :]
    n = torch.tensor(lengths)[:, None]
    return pos < length - n if left else pos >= n


# -- naming the mistake ----------------------------------------------------------------------------------


def _scaled_by_d_model(layer: torch.nn.Module) -> torch.nn.Module:
    """The same layer with its query projections shrunk so that scores end up divided by sqrt(d_model)."""
    import copy

    other = copy.deepcopy(layer)
    d_model = other.self_attn.embed_dim
    factor = math.sqrt(other.self_attn.head_dim / d_model)
    with torch.no_grad():
        for attn in (other.self_attn, other.multihead_attn):
            attn.in_proj_weight[:d_model] *= factor
            attn.in_proj_bias[:d_model] *= factor
    return other


def diagnose(actual: Any, layer: torch.nn.Module, x: torch.Tensor, memory: torch.Tensor, *, causal: bool = True,
             tgt_pad: torch.Tensor | None = None, mem_pad: torch.Tensor | None = None) -> str | None:
    """Name the classic mistake whose output ``actual`` matches, if any."""
    import copy

    if not isinstance(actual, torch.Tensor) or actual.shape != x.shape or actual.dtype != x.dtype:
        return None
    norm_first = bool(layer.norm_first)
    flipped = copy.deepcopy(layer)
    flipped.norm_first = not norm_first
    length = x.shape[1]
    candidates: list[tuple[Any, str]] = [
        (lambda: expected(flipped, x, memory, causal, tgt_pad, mem_pad),
         "your block computes the other placement of LayerNorm: " + (
             "pre-norm is x = x + SelfAttn(norm1(x)); x = x + CrossAttn(norm2(x), memory); x = x + FF(norm3(x))"
             if norm_first else
             "post-norm is x = norm1(x + SelfAttn(x)); x = norm2(x + CrossAttn(x, memory)); x = norm3(x + FF(x))")),
        (lambda: expected(_scaled_by_d_model(layer), x, memory, causal, tgt_pad, mem_pad),
         "scores are divided by sqrt(d_model): divide by sqrt(d_head) = sqrt(d_model / num_heads)"),
    ]
    if causal:
        candidates += [
            (lambda: expected(layer, x, memory, False, tgt_pad, mem_pad),
             "the self-attention is not causal: with causal=True, query i may only attend keys j <= i"),
            (lambda: expected(layer, x, memory, tgt_mask=causal_mask(length, 0), tgt_pad=tgt_pad, mem_pad=mem_pad),
             "the causal mask also hides the diagonal: query i must see key i itself (mask only j > i, "
             "torch.ones(T, T, dtype=torch.bool).triu(1))"),
        ]
    if norm_first:
        candidates.append((lambda: expected(layer, x, layer.norm2(memory), causal, tgt_pad, mem_pad),
                           "the memory went through LayerNorm: in pre-norm only the queries' input is normalised "
                           "(CrossAttn(norm2(x), memory)); the encoder's memory is used as it comes"))
    if tgt_pad is not None:
        candidates.append((lambda: expected(layer, x, memory, causal, ~tgt_pad, mem_pad),
                           "tgt_key_padding_mask is read the wrong way round: True marks PADDING (never attended)"))
    if mem_pad is not None:
        candidates.append((lambda: expected(layer, x, memory, causal, tgt_pad, ~mem_pad),
                           "memory_key_padding_mask is read the wrong way round: True marks PADDING"))
    if tgt_pad is not None and mem_pad is not None:
        candidates.append((lambda: expected(layer, x, memory, causal, ~tgt_pad, ~mem_pad),
                           "both padding masks are read the wrong way round: True marks PADDING (never attended)"))
    keep = torch.ones(x.shape[:2], dtype=torch.bool) if tgt_pad is None else ~tgt_pad
    for compute, message in candidates:
        with torch.no_grad():
            other = compute()
        if torch.allclose(actual[keep], other[keep], rtol=1e-4, atol=1e-5):
            return message
    return None


@pytest.fixture(scope="session")
def dec() -> SimpleNamespace:
    """Helpers for the decoder-block checks."""
    return SimpleNamespace(torch_layer=torch_layer, layer_for=layer_for, state_of=state_of, expected=expected,
                           student_block=student_block, setup=setup, assert_block_output=assert_block_output,
                           expect_output=expect_output, padding=padding, causal_mask=causal_mask, tol=tol,
                           diagnose=diagnose)
