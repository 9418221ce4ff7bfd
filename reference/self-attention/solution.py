"""Reference: scaled dot-product attention and multi-head attention (Vaswani et al. 2017, 3.2.1-3.2.2)."""

from __future__ import annotations

import math

import torch

WEIGHT_NAMES = ("w_q", "b_q", "w_k", "b_k", "w_v", "b_v", "w_o", "b_o")


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    allowed = None
    if mask is not None:
        allowed = mask.to(torch.bool)
    if is_causal:
        L, S = q.shape[-2], k.shape[-2]
        tri = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        allowed = tri if allowed is None else allowed & tri
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if allowed is not None:
        # a query with no allowed key gets all-zero weights (and a zero output), as torch does
        weights = torch.nan_to_num(weights, nan=0.0)
    return weights @ v, weights


class MultiHeadAttention:
    """Multi-head attention with externally supplied projection weights (nn.Linear layout)."""

    def __init__(self, d_model: int, num_heads: int) -> None:
        if num_heads <= 0 or d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_head = d_model // num_heads
        self.weights: dict[str, torch.Tensor] = {}

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        missing = [n for n in WEIGHT_NAMES if n not in weights]
        if missing:
            raise KeyError(f"missing weights: {missing}")
        self.weights = {n: weights[n] for n in WEIGHT_NAMES}

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.reshape(batch, length, self.num_heads, self.d_head).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weights
        q = self._split(query @ w["w_q"].T + w["b_q"])
        k = self._split(key @ w["w_k"].T + w["b_k"])
        v = self._split(value @ w["w_v"].T + w["b_v"])
        heads, weights = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal)
        batch, _, length, _ = heads.shape
        concat = heads.transpose(1, 2).reshape(batch, length, self.d_model)
        return concat @ w["w_o"].T + w["b_o"], weights

    __call__ = forward
