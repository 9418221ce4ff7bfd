"""Shared helpers for the self-attention checks (trusted side), given to checks as the ``sa`` fixture.

Besides the reference, every check compares with PyTorch's own implementations:
``torch.nn.functional.scaled_dot_product_attention`` (boolean ``attn_mask``: True = may attend, the same
convention as this exercise) and ``torch.nn.MultiheadAttention`` (boolean ``attn_mask`` and
``key_padding_mask``: True = may NOT attend, the opposite; :func:`torch_mha` takes masks in torch's convention).
When a result is wrong, the helpers recompute it under classic mistakes to name the one the student made.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type, load_module

Diagnose = Callable[[torch.Tensor], "str | None"]

#: the weights dict MultiHeadAttention.load_weights takes (the stub documents these keys)
WEIGHT_NAMES = tuple(f"{kind}_{proj}" for proj in "qkvo" for kind in "wb")


def tol(dtype: torch.dtype) -> dict[str, float]:
    """(rtol, atol) for comparing attention results of ``dtype`` (values of order 1)."""
    if dtype == torch.float64:
        return {"rtol": 1e-9, "atol": 1e-10}
    return {"rtol": 1e-4, "atol": 2e-5}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def shape_of(t: torch.Tensor) -> str:
    return "(" + ", ".join(str(int(s)) for s in t.shape) + ")"


# -- what a correct result looks like ------------------------------------------------------------------


def unpack(result: Any, what: str, out_shape: tuple[int, ...], w_shape: tuple[int, ...],
           dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Fail with advice unless ``result`` is (output, weights) of the given shapes and ``dtype``."""
    if isinstance(result, torch.Tensor):
        raise AssertionError(f"{what} returned one tensor: return a tuple (output, attention_weights)")
    expect_type(result, (tuple, list), f"the value returned by {what}")
    if len(result) != 2:
        raise AssertionError(f"{what} returned {len(result)} items: return a tuple (output, attention_weights)")
    out, weights = result
    for item, name, shape in ((out, "output", out_shape), (weights, "attention_weights", w_shape)):
        expect_type(item, torch.Tensor, f"the {name} returned by {what}")
        if tuple(item.shape) != tuple(shape):
            raise AssertionError(
                f"the {name} of {what} has shape {shape_of(item)}, expected {tuple(shape)}: "
                + ("output is (..., L, d_v) = weights (..., L, S) @ v (..., S, d_v)" if name == "output" else
                   "weights are (..., L, S): one row per query, one column per key")
            )
        if item.dtype != dtype:
            raise AssertionError(
                f"the {name} of {what} has dtype {dtype_name(item.dtype)}, expected {dtype_name(dtype)} (the "
                "inputs' dtype): compute in the inputs' dtype, and cast back if you upcast the softmax"
            )
    return out, weights


def expect_close(actual: torch.Tensor, expected: torch.Tensor, *, name: str, advice: str,
                 diagnose: Callable[[torch.Tensor], str | None] | None = None, **tolerance: float) -> None:
    """assert_tensor_close whose first line is advice (what ``diagnose`` recognises, else ``advice``)."""
    try:
        assert_tensor_close(actual, expected, name=name, **tolerance)
    except AssertionError as exc:
        better = diagnose(actual) if diagnose is not None else None
        raise AssertionError(f"{better or advice}\n{exc}") from None


# -- naming the mistake (instructor courses only) ------------------------------------------------------


# hidden/mistakes.py recomputes classic mistakes; it implements attention, so student packs leave it out.
MISTAKES = load_module(Path(__file__).parent / "hidden" / "mistakes.py", "self_attention_mistakes", optional=True)


def _unnamed(actual: torch.Tensor) -> None:
    return None


def sdpa_diagnose(*args: Any, **kwargs: Any) -> Diagnose:
    """Names the mistake in a scaled_dot_product_attention result, when the mistake catalogue is present."""
    return MISTAKES.sdpa_diagnose(*args, **kwargs) if MISTAKES is not None else _unnamed


def mha_diagnose(*args: Any, **kwargs: Any) -> Diagnose:
    """Names the mistake in a MultiHeadAttention result, when the mistake catalogue is present."""
    return MISTAKES.mha_diagnose(*args, **kwargs) if MISTAKES is not None else _unnamed


# -- inputs and PyTorch's implementations -------------------------------------------------------------


def make_weights(d_model: int, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """Projection weights in nn.Linear layout, scaled so projected vectors have entries of order 1."""
    w: dict[str, torch.Tensor] = {}
    for name in "qkvo":
        w["w_" + name] = (torch.randn(d_model, d_model, dtype=torch.float64) / math.sqrt(d_model)).to(dtype)
        w["b_" + name] = (0.5 * torch.randn(d_model, dtype=torch.float64)).to(dtype)
    return w


def torch_mha(w: dict[str, torch.Tensor], num_heads: int, query: torch.Tensor, key: torch.Tensor,
              value: torch.Tensor, attn_mask: torch.Tensor | None = None,
              key_padding_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """torch.nn.MultiheadAttention with these weights; masks in TORCH's convention (True = may NOT attend).

    Returns (output (B, L, d_model), per-head weights (B, num_heads, L, S)).
    """
    d_model = query.shape[-1]
    module = torch.nn.MultiheadAttention(d_model, num_heads, batch_first=True, dtype=query.dtype)
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.cat([w["w_q"], w["w_k"], w["w_v"]]))
        module.in_proj_bias.copy_(torch.cat([w["b_q"], w["b_k"], w["b_v"]]))
        module.out_proj.weight.copy_(w["w_o"])
        module.out_proj.bias.copy_(w["b_o"])
    module.eval()
    # autograd stays on (the parameters require grad), which keeps torch on its reference (non-fused) path
    out, weights = module(query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                          need_weights=True, average_attn_weights=False)
    return out.detach(), weights.detach()


def torch_sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
               is_causal: bool = False) -> torch.Tensor:
    """torch.nn.functional.scaled_dot_product_attention (its boolean attn_mask: True = may attend)."""
    if mask is not None and is_causal:  # torch refuses both at once: fold the causal triangle into the mask
        mask = mask & torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril()
        is_causal = False
    return torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=is_causal)


def padding_mask(lengths: list[int], seq_len: int) -> torch.Tensor:
    """(B, S) boolean, True for the first lengths[b] keys of sequence b (real tokens), False for padding."""
    return torch.arange(seq_len)[None, :] < torch.tensor(lengths)[:, None]


def sdpa_call(student: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs: Any
              ) -> tuple[str, torch.Tensor, torch.Tensor]:
    """Call the student's scaled_dot_product_attention; returns (description, output, weights)."""
    extra = "".join(f", {key}={'mask ' + shape_of(val) if isinstance(val, torch.Tensor) else val}"
                    for key, val in kwargs.items())
    what = (f"scaled_dot_product_attention(q {shape_of(q)}, k {shape_of(k)}, v {shape_of(v)}{extra}) in "
            f"{dtype_name(q.dtype)}")
    lead = torch.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2])
    if kwargs.get("mask") is not None:
        lead = torch.broadcast_shapes(lead, kwargs["mask"].shape[:-2])
    out, weights = unpack(student.scaled_dot_product_attention(q, k, v, **kwargs), what,
                          (*lead, q.shape[-2], v.shape[-1]), (*lead, q.shape[-2], k.shape[-2]), q.dtype)
    return what, out, weights


def mha_call(student: Any, d_model: int, num_heads: int, w: dict[str, torch.Tensor], query: torch.Tensor,
             key: torch.Tensor, value: torch.Tensor, **kwargs: Any) -> tuple[str, torch.Tensor, torch.Tensor]:
    """Build the student's MultiHeadAttention, load ``w``, run forward; returns (description, output, weights)."""
    mha = student.new("MultiHeadAttention", d_model, num_heads)
    mha.load_weights(dict(w))
    extra = "".join(f", {key}={'mask ' + shape_of(val) if isinstance(val, torch.Tensor) else val}"
                    for key, val in kwargs.items())
    what = (f"MultiHeadAttention({d_model}, {num_heads}).forward(query {shape_of(query)}, key {shape_of(key)}, "
            f"value {shape_of(value)}{extra}) in {dtype_name(query.dtype)}")
    batch, length, _ = query.shape
    out, weights = unpack(mha.forward(query, key, value, **kwargs), what, (batch, length, d_model),
                          (batch, num_heads, length, key.shape[1]), query.dtype)
    return what, out, weights


def float64_diagnose(expected: torch.Tensor, fallback: Callable[[torch.Tensor], str | None]
                     ) -> Callable[[torch.Tensor], str | None]:
    """Recognise a float64 result that is right only to float32 accuracy; else ask ``fallback``."""

    def diagnose(actual: torch.Tensor) -> str | None:
        if float((actual.to(torch.float64) - expected).abs().max()) < 1e-4:
            return ("float64 results are only float32-accurate: keep every step in the inputs' dtype (no .float(), "
                    "no softmax(..., dtype=torch.float32), no float32 constant tensors)")
        return fallback(actual)

    return diagnose


def expect_rows_sum_to_one(weights: torch.Tensor, what: str, **tolerance: float) -> None:
    expect_close(weights.sum(dim=-1), torch.ones(weights.shape[:-1], dtype=weights.dtype),
                 name=f"row sums of the attention weights of {what}", advice=(
                     "the attention weights of a query do not sum to 1 over the keys: apply the softmax over the "
                     "last axis (the keys, dim=-1) of the (..., L, S) scores, after masking"), **tolerance)


def expect_masked_zero(weights: torch.Tensor, allowed: torch.Tensor, what: str) -> None:
    zeros = torch.zeros_like(weights)
    on_blocked = torch.where((~allowed).expand(weights.shape), weights, zeros)
    expect_close(on_blocked, zeros, rtol=0.0, atol=0.0,
                 name=f"attention weights on masked keys of {what}", advice=(
                     "keys the mask blocks still get attention weight: they must get exactly 0 (fill their scores "
                     "with -inf before the softmax; mask True = may attend, False = blocked)"))


@pytest.fixture
def sa() -> SimpleNamespace:
    """Helpers for the self-attention checks."""
    return SimpleNamespace(
        tol=tol,
        expect_close=expect_close,
        sdpa_diagnose=sdpa_diagnose,
        mha_diagnose=mha_diagnose,
        make_weights=make_weights,
        torch_mha=torch_mha,
        torch_sdpa=torch_sdpa,
        padding_mask=padding_mask,
        sdpa_call=sdpa_call,
        mha_call=mha_call,
        float64_diagnose=float64_diagnose,
        expect_rows_sum_to_one=expect_rows_sum_to_one,
        expect_masked_zero=expect_masked_zero,
        shape_of=shape_of,
    )
