# wrong: layer_norm_eps is ignored: LayerNorms keep the default eps=1e-5
# loses: test_hidden_configs
"""Transformer encoder block, with one deliberate mistake (see the first line)."""


from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class EncoderBlock(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1, activation: str = "relu",
                 norm_first: bool = False, layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide d_model={d_model}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        self.num_heads = num_heads
        self.d_head = d_model // num_heads
        self.p = dropout
        self.activation = activation
        self.norm_first = norm_first
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.ff1 = nn.Linear(d_model, d_ff)
        self.ff2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def load_torch_weights(self, state: dict[str, torch.Tensor]) -> None:
        mapping = {
            "qkv.weight": "self_attn.in_proj_weight", "qkv.bias": "self_attn.in_proj_bias",
            "out.weight": "self_attn.out_proj.weight", "out.bias": "self_attn.out_proj.bias",
            "ff1.weight": "linear1.weight", "ff1.bias": "linear1.bias",
            "ff2.weight": "linear2.weight", "ff2.bias": "linear2.bias",
            "norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
            "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
        }  # fmt: skip
        own = self.state_dict()
        with torch.no_grad():
            for mine, theirs in mapping.items():
                own[mine].copy_(state[theirs])
        self.to(state["self_attn.in_proj_weight"].dtype)

    def _attention(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, d_model = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.view(batch, length, self.num_heads, self.d_head).transpose(1, 2)

        q, k, v = (heads(t) for t in self.qkv(x).chunk(3, dim=-1))
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :].bool(), float("-inf"))
        weights = F.dropout(scores.softmax(dim=-1), self.p, self.training)
        merged = (weights @ v).transpose(1, 2).reshape(batch, length, d_model)
        return self.out(merged)

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.dropout(ACTIVATIONS[self.activation](self.ff1(x)), self.p, self.training)
        return self.ff2(hidden)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        drop = lambda t: F.dropout(t, self.p, self.training)  # noqa: E731
        if self.norm_first:
            x = x + drop(self._attention(self.norm1(x), key_padding_mask))
            return x + drop(self._feed_forward(self.norm2(x)))
        x = self.norm1(x + drop(self._attention(x, key_padding_mask)))
        return self.norm2(x + drop(self._feed_forward(x)))
