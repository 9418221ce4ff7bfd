"""Classic self-attention mistakes, recomputed, to name the one a wrong result matches (trusted side).

This module implements attention (the right way and the wrong ways), so it lives beside the hidden checks
and is left out of student packs; the checks load it when it is there (see ``conftest.py``).  Without it,
a wrong result still fails, with the check's general advice instead of the named mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch


def close(actual: torch.Tensor, other: torch.Tensor, atol: float = 1e-4) -> bool:
    """Whether two tensors agree within ``atol``, NaN-insensitively: where the recomputed mistake has NaN (a row
    with no allowed key), a student's 0 agrees as well as a NaN does (many solutions, like the reference, replace
    those NaN with 0)."""
    if tuple(actual.shape) != tuple(other.shape):
        return False
    actual, other = actual.to(torch.float64), other.to(torch.float64)
    undefined = other.isnan()
    actual = torch.where(undefined & (actual.isnan() | (actual == 0)), 0.0, actual)
    return bool(torch.allclose(actual, torch.where(undefined, 0.0, other), rtol=1e-4, atol=atol, equal_nan=True))


# -- classic mistakes, recomputed ----------------------------------------------------------------------


def sdpa_variant(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                 is_causal: bool = False, *, scale: float | None = None, softmax_dim: int = -1,
                 mask_mode: str = "apply", causal_mode: str = "tril",
                 nan_to_zero: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention as a student might write it; the defaults give the right answer.

    ``nan_to_zero``: the weights' NaN (rows with no allowed key) become 0 before they weight v, as defensive
    solutions (and the reference) do; the output then differs from the plain mistake's NaN rows.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    allowed = mask if mask is not None and mask_mode != "ignore" else None
    if is_causal:
        length, keys = q.shape[-2], k.shape[-2]
        ones = torch.ones(length, keys, dtype=torch.bool)
        tri = {"tril": ones.tril(), "strict": ones.tril(-1), "triu": ones.triu(),
               "bottom_right": ones.tril(keys - length)}[causal_mode]
        allowed = tri if allowed is None else allowed & tri
    if allowed is not None and mask_mode == "invert":
        allowed = ~allowed
    if allowed is not None and mask_mode != "after":
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=softmax_dim)
    if allowed is not None and mask_mode == "after":
        weights = weights * allowed
    if nan_to_zero:
        weights = torch.nan_to_num(weights, nan=0.0)
    return weights @ v, weights


SDPA_MISTAKES: list[tuple[dict[str, Any], str]] = [
    ({"scale": 1.0}, "outputs are too peaked: did you divide the scores q k^T by sqrt(d_k), d_k = q.shape[-1]?"),
    ({"softmax_dim": -2}, "softmax runs over the queries: normalise over the keys (dim=-1 of the (..., L, S) "
                          "scores), so that each query's weights sum to 1"),
    ({"mask_mode": "ignore"}, "the mask has no effect: before the softmax, set the scores to -inf where the mask "
                              "is False (scores.masked_fill(~mask, float('-inf')))"),
    ({"mask_mode": "invert"}, "the mask is inverted: True means the query MAY attend that key; block the keys "
                              "where the mask is False"),
    ({"mask_mode": "after"}, "masked weights are zeroed after the softmax, so rows no longer sum to 1: mask the "
                             "scores with -inf before the softmax"),
    ({"causal_mode": "strict"}, "with is_causal, query i may attend keys j <= i, itself included: keep the "
                                "diagonal (torch.ones(L, S, dtype=torch.bool).tril())"),
    ({"causal_mode": "triu"}, "with is_causal, query i attends the future (keys j >= i): it must attend the past, "
                              "keys j <= i (a lower-triangular mask, .tril())"),
    ({"causal_mode": "bottom_right"}, "with is_causal and L != S your triangle is aligned at the bottom right "
                                      "(tril(S - L)); here, as in torch, query i attends keys j <= i from the top "
                                      "left: torch.ones(L, S, dtype=torch.bool).tril()"),
]


def sdpa_diagnose(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None,
                  is_causal: bool = False, which: int = 0) -> Callable[[torch.Tensor], str | None]:
    """A ``diagnose`` for the output (``which=0``) or weights (``which=1``) of scaled_dot_product_attention."""

    def diagnose(actual: torch.Tensor) -> str | None:
        if q.shape[-1] != v.shape[-1]:
            wrong_dk = sdpa_variant(q, k, v, mask, is_causal, scale=1.0 / math.sqrt(v.shape[-1]))[which]
            if close(actual, wrong_dk):
                return "the scale uses d_v: divide by sqrt(d_k) with d_k = q.shape[-1] (the key/query width)"
        for kwargs, advice in SDPA_MISTAKES:
            if "mask_mode" in kwargs and mask is None and not is_causal:
                continue
            if "causal_mode" in kwargs and not is_causal:
                continue
            for nan_to_zero in (False, True):
                if close(actual, sdpa_variant(q, k, v, mask, is_causal, nan_to_zero=nan_to_zero, **kwargs)[which]):
                    return advice
        return None

    return diagnose


def mha_variant(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, w: dict[str, torch.Tensor],
                num_heads: int, mask: torch.Tensor | None = None, is_causal: bool = False, *,
                split: str = "transpose", scale: str = "d_head", linear: str = "xWT", bias: bool = True,
                out_proj: bool = True, core: dict[str, Any] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Multi-head attention as a student might write it; the defaults give the right answer."""
    batch, length, d_model = query.shape
    d_head = d_model // num_heads

    def lin(x: torch.Tensor, name: str) -> torch.Tensor:
        weight = w["w_" + name] if linear == "xWT" else w["w_" + name].T
        return x @ weight.T + (w["b_" + name] if bias else 0)

    def heads(x: torch.Tensor) -> torch.Tensor:
        if split == "transpose":
            return x.reshape(x.shape[0], x.shape[1], num_heads, d_head).transpose(1, 2)
        return x.reshape(x.shape[0], num_heads, x.shape[1], d_head)

    q, k, v = heads(lin(query, "q")), heads(lin(key, "k")), heads(lin(value, "v"))
    scale_by = {"d_head": 1.0 / math.sqrt(d_head), "d_model": 1.0 / math.sqrt(d_model), "none": 1.0}[scale]
    out, weights = sdpa_variant(q, k, v, mask, is_causal, scale=scale_by, **(core or {}))
    out = out.transpose(1, 2).reshape(batch, length, d_model) if split == "transpose" else out.reshape(
        batch, length, d_model)
    return (lin(out, "o") if out_proj else out), weights


MHA_MISTAKES: list[tuple[dict[str, Any], str]] = [
    ({"split": "reshape"}, "heads are split wrongly: view (B, L, d_model) as (B, L, num_heads, d_head), THEN "
                           "transpose to (B, num_heads, L, d_head) (a direct reshape to (B, h, L, d_head) mixes "
                           "positions and features); merge back with transpose(1, 2) before reshaping"),
    ({"scale": "d_model"}, "scores are divided by sqrt(d_model): each head must use sqrt(d_head), "
                           "d_head = d_model / num_heads (the last dim of the per-head q)"),
    ({"scale": "none"}, "outputs are too peaked: did you divide each head's scores by sqrt(d_head)?"),
    ({"linear": "xW"}, "projections compute x @ W: the weights have nn.Linear's layout (out_features, "
                       "in_features), so a projection is x @ W.T + b"),
    ({"bias": False}, "the biases are missing: every projection is x @ W.T + b (b_q, b_k, b_v and b_o)"),
    ({"out_proj": False}, "the output projection is missing: concatenate the heads, then apply w_o and b_o"),
]


def mha_diagnose(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, w: dict[str, torch.Tensor],
                 num_heads: int, mask: torch.Tensor | None = None, is_causal: bool = False,
                 which: int = 0) -> Callable[[torch.Tensor], str | None]:
    """A ``diagnose`` for MultiHeadAttention.forward: a multi-head mistake, a mistake of the attention core, or
    one of each."""
    core = [({}, "")] + [(kw, advice) for kw, advice in SDPA_MISTAKES[1:]
                         if ("mask_mode" not in kw or mask is not None or is_causal)
                         and ("causal_mode" not in kw or is_causal)]
    outer = [({}, "")] + [(kw, advice) for kw, advice in MHA_MISTAKES if which == 0 or "out_proj" not in kw]

    def diagnose(actual: torch.Tensor) -> str | None:
        for core_kwargs, core_advice in core:
            for kwargs, advice in outer:
                if not kwargs and not core_kwargs:
                    continue
                for nan_to_zero in (False, True):
                    variant = mha_variant(query, key, value, w, num_heads, mask, is_causal,
                                          core={**core_kwargs, "nan_to_zero": nan_to_zero}, **kwargs)
                    if close(actual, variant[which]):
                        return f"two mistakes: {advice}; and {core_advice}" if advice and core_advice else (
                            advice or core_advice)
        return None

    return diagnose
