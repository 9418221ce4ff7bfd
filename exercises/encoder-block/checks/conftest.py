"""Shared helpers for the encoder-block checks (trusted side), given to checks as the ``enc`` fixture.

Every expected output comes from a real ``nn.TransformerEncoderLayer`` built here, in the trusted
process, with random weights (LayerNorm gains and biases included, so they matter); its state dict
crosses into the sandbox as plain tensors and the student's block stays there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_tensor_close, expect_type


def torch_layer(d_model: int, num_heads: int, d_ff: int, *, dropout: float = 0.1, activation: Any = "relu",
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


def assert_block_output(actual: Any, want: torch.Tensor, *, name: str, advice: str | Callable[[], str],
                        targets: Mapping[str, Any], mask: torch.Tensor | None = None) -> None:
    """Type and shape first (with advice of their own), then the values of the real positions.

    ``advice`` may be a function: it runs only when the values differ (diagnosing calls the student again).
    """
    expect_output(actual, tuple(want.shape), name)
    keep = real_positions(mask, tuple(want.shape))
    try:
        assert_tensor_close(actual[keep], want[keep], name=f"{name} (real positions)", **tol(targets, want.dtype))
    except AssertionError as exc:
        raise AssertionError(f"{advice() if callable(advice) else advice}\n{exc}") from None


def expect_output(actual: Any, shape: tuple[int, ...], name: str) -> None:
    expect_type(actual, torch.Tensor, name)
    if tuple(actual.shape) != tuple(shape):
        raise AssertionError(f"{name} has shape {tuple(actual.shape)}, expected {tuple(shape)} (batch, seq, d_model)")


def random_mask(lengths: list[int], seq: int) -> torch.Tensor:
    return torch.arange(seq)[None, :] >= torch.tensor(lengths)[:, None]


# -- naming the mistake -----------------------------------------------------------------------------------
POST_NORM = ("post-norm is x = LayerNorm1(x + Dropout(SelfAttention(x))), "
             "then x = LayerNorm2(x + Dropout(FeedForward(x)))")
PRE_NORM = ("pre-norm is x = x + Dropout(SelfAttention(LayerNorm1(x))), "
            "then x = x + Dropout(FeedForward(LayerNorm2(x)))")
LAYER_NORM = ("LayerNorm(x) = (x - mean) / sqrt(var + eps) * weight + bias over the last axis, with the BIASED "
              "variance (x.var(-1, unbiased=False)) and eps inside the square root, as nn.LayerNorm / F.layer_norm")


def describe(config: Mapping[str, Any]) -> str:
    """The configuration as a student can find it in the constructor call."""
    return (f"norm_first={config.get('norm_first', False)}, activation={config.get('activation', 'relu')!r}, "
            f"num_heads={config['num_heads']}, layer_norm_eps={config.get('eps', 1e-5)}")


def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, kind: str) -> torch.Tensor:
    """LayerNorm as a student may write it; ``kind="right"`` is F.layer_norm."""
    centred = x - x.mean(-1, keepdim=True)
    unbiased = kind in ("unbiased", "unbiased_eps_outside")
    var = x.var(-1, unbiased=unbiased, keepdim=True)
    if kind in ("eps_outside", "unbiased_eps_outside"):
        normed = centred / (var.sqrt() + eps)
    elif kind == "no_eps":
        normed = centred / var.sqrt()
    else:
        normed = centred / (var + eps).sqrt()
    return normed if kind == "no_affine" else normed * weight + bias


LAYER_NORM_MISTAKES = {
    "unbiased": "it divides by the UNBIASED variance (torch.var/std's default, n - 1)",
    "eps_outside": "it adds eps to the standard deviation, (x - mean) / (std + eps)",
    "unbiased_eps_outside": "it uses the UNBIASED std (torch.std's default, n - 1) and adds eps to the std, "
                            "(x - mean) / (std + eps), as some tutorials do",
    "no_eps": "it leaves eps out",
    "no_affine": "it leaves out LayerNorm's weight and bias (the gains loaded from norm1/norm2)",
}


def layer_norm_mistake(student: Any, config: Mapping[str, Any], dtype: torch.dtype = torch.float32) -> str | None:
    """Run the student's block where it reduces to its LayerNorms and name a wrong LayerNorm formula.

    With one token, identity value/output projections and a zero feed-forward output, pre-norm computes
    x + LayerNorm1(x) and post-norm LayerNorm2(LayerNorm1(2x)); rows of very different scales make eps show.
    """
    layer = torch_layer(**config, seed=99, dtype=dtype)
    d = config["d_model"]
    with torch.no_grad():
        layer.self_attn.in_proj_weight.zero_()
        layer.self_attn.in_proj_weight[2 * d:] = torch.eye(d, dtype=dtype)
        layer.self_attn.in_proj_bias.zero_()
        layer.self_attn.out_proj.weight.copy_(torch.eye(d, dtype=dtype))
        layer.self_attn.out_proj.bias.zero_()
        layer.linear2.weight.zero_()
        layer.linear2.bias.zero_()
    scales = torch.tensor([1.0, 3.0, 0.05, 0.01, 0.003, 0.002], dtype=dtype)
    x = torch.randn(6, 1, d, dtype=dtype) * scales[:, None, None]
    out = student_block(student, layer, config, double=dtype == torch.float64).forward(x)
    if not (isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == dtype):
        return None
    eps, n1, n2 = float(config.get("eps", 1e-5)), layer.norm1, layer.norm2

    def block(kind: str) -> torch.Tensor:
        if config.get("norm_first"):
            return x + _layer_norm(x, n1.weight, n1.bias, eps, kind)
        return _layer_norm(_layer_norm(2 * x, n1.weight, n1.bias, eps, kind), n2.weight, n2.bias, eps, kind)

    with torch.no_grad():
        if torch.allclose(out, block("right"), rtol=1e-4, atol=1e-5):
            return None  # the LayerNorms are right: the mistake is elsewhere
        for kind, what in LAYER_NORM_MISTAKES.items():
            if torch.allclose(out, block(kind), rtol=1e-4, atol=1e-5):
                return f"your LayerNorm is not nn.LayerNorm: {what}; {LAYER_NORM}"
    return None


def _activation_mistake(student_out: torch.Tensor, x: torch.Tensor, config: Mapping[str, Any], seed: int,
                        targets: Mapping[str, Any], mask: torch.Tensor | None) -> str | None:
    act = config.get("activation", "relu")
    others = {"relu": F.relu, "gelu": F.gelu, "the tanh approximation of GELU": partial(F.gelu, approximate="tanh")}
    for name, fn in others.items():
        if name == act:
            continue
        layer = torch_layer(**{**config, "activation": fn}, seed=seed, dtype=x.dtype)
        if _close(student_out, expected(layer, x, mask), mask, targets):
            exact = "the exact erf GELU, F.gelu(t)" if act == "gelu" else "F.relu(t)"
            return f"activation={act!r} must be {exact}, but your feed-forward computes {name} ({describe(config)})"
    return None


def _close(actual: torch.Tensor, want: torch.Tensor, mask: torch.Tensor | None, targets: Mapping[str, Any]) -> bool:
    keep = real_positions(mask, tuple(want.shape))
    return bool(torch.allclose(actual[keep], want[keep], **tol(targets, want.dtype)))


def diagnose(student: Any, student_out: Any, x: torch.Tensor, config: Mapping[str, Any], seed: int,
             targets: Mapping[str, Any], mask: torch.Tensor | None = None) -> str | None:
    """Name the mistake behind a wrong block output: LayerNorm placement, the activation, or LayerNorm itself."""
    comparable = isinstance(student_out, torch.Tensor) and student_out.shape == x.shape and \
        student_out.dtype == x.dtype
    if not comparable:
        return None
    other = torch_layer(**{**config, "norm_first": not config.get("norm_first", False)}, seed=seed, dtype=x.dtype)
    if _close(student_out, expected(other, x, mask), mask, targets):
        return (f"with norm_first={config.get('norm_first', False)} your block computes the other placement of "
                f"LayerNorm: " + (PRE_NORM if config.get("norm_first") else POST_NORM))
    return _activation_mistake(student_out, x, config, seed, targets, mask) or \
        layer_norm_mistake(student, config, x.dtype)


@pytest.fixture(scope="session")
def enc() -> SimpleNamespace:
    """Helpers for the encoder-block checks."""
    return SimpleNamespace(torch_layer=torch_layer, state_of=state_of, expected=expected,
                           student_block=student_block, assert_block_output=assert_block_output,
                           random_mask=random_mask, tol=tol, expect_output=expect_output, diagnose=diagnose,
                           describe=describe, POST_NORM=POST_NORM, PRE_NORM=PRE_NORM)
