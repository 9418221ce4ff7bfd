"""Reference: the Transformer decoder block (post-norm and pre-norm), equal to nn.TransformerDecoderLayer."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class Attention(nn.Module):
    """Multi-head attention with torch's packed in-projection; queries from one input, keys/values from another."""

    def __init__(self, d_model: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.d_head = d_model // num_heads
        self.p = dropout
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def heads(self, t: torch.Tensor) -> torch.Tensor:
        batch, length, _ = t.shape
        return t.view(batch, length, self.num_heads, self.d_head).transpose(1, 2)

    def project_q(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.in_proj.weight.chunk(3), self.in_proj.bias.chunk(3)
        return self.heads(F.linear(x, w[0], b[0]))

    def project_kv(self, source: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w, b = self.in_proj.weight.chunk(3), self.in_proj.bias.chunk(3)
        return self.heads(F.linear(source, w[1], b[1])), self.heads(F.linear(source, w[2], b[2]))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocked: torch.Tensor | None) -> torch.Tensor:
        """blocked: bool, broadcastable to (batch, h, L, S), True = may NOT attend."""
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        if blocked is not None:
            scores = scores.masked_fill(blocked, float("-inf"))
        weights = scores.softmax(dim=-1)
        if blocked is not None:  # a query with no key at all gets zero weights, not NaN
            weights = weights.masked_fill(blocked.all(dim=-1, keepdim=True), 0.0)
        weights = F.dropout(weights, self.p, self.training)
        batch, _, length, _ = q.shape
        merged = (weights @ v).transpose(1, 2).reshape(batch, length, self.num_heads * self.d_head)
        return self.out_proj(merged)


class DecoderBlock(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1, activation: str = "relu",
                 norm_first: bool = False, layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        if num_heads <= 0 or d_model % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide d_model={d_model}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        self.p = dropout
        self.activation = activation
        self.norm_first = norm_first
        self.self_attn = Attention(d_model, num_heads, dropout)
        self.cross_attn = Attention(d_model, num_heads, dropout)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.reset_cache()

    def load_torch_weights(self, state: dict[str, torch.Tensor]) -> None:
        mapping = {"self_attn.in_proj.weight": "self_attn.in_proj_weight",
                   "self_attn.in_proj.bias": "self_attn.in_proj_bias",
                   "cross_attn.in_proj.weight": "multihead_attn.in_proj_weight",
                   "cross_attn.in_proj.bias": "multihead_attn.in_proj_bias",
                   "cross_attn.out_proj.weight": "multihead_attn.out_proj.weight",
                   "cross_attn.out_proj.bias": "multihead_attn.out_proj.bias"}
        own = self.state_dict()
        with torch.no_grad():
            for mine in own:
                own[mine].copy_(state[mapping.get(mine, mine)])
        self.to(state["self_attn.in_proj_weight"].dtype)

    # -- the three sublayers ---------------------------------------------------------------------------
    def _self_block(self, x: torch.Tensor, causal: bool, padding: torch.Tensor | None) -> torch.Tensor:
        length = x.shape[1]
        blocked = None
        if causal:
            blocked = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)[None, None]
        if padding is not None:
            pad = padding.bool()[:, None, None, :]
            blocked = pad if blocked is None else blocked | pad
        q = self.self_attn.project_q(x)
        k, v = self.self_attn.project_kv(x)
        return self.self_attn.attend(q, k, v, blocked)

    def _cross_block(self, x: torch.Tensor, memory: torch.Tensor, padding: torch.Tensor | None) -> torch.Tensor:
        k, v = self.cross_attn.project_kv(memory)
        return self._cross_attend(x, k, v, padding)

    def _cross_attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      padding: torch.Tensor | None) -> torch.Tensor:
        blocked = None if padding is None else padding.bool()[:, None, None, :]
        return self.cross_attn.attend(self.cross_attn.project_q(x), k, v, blocked)

    def _feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = F.dropout(ACTIVATIONS[self.activation](self.linear1(x)), self.p, self.training)
        return self.linear2(hidden)

    def _drop(self, t: torch.Tensor) -> torch.Tensor:
        return F.dropout(t, self.p, self.training)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, causal: bool = True,
                tgt_key_padding_mask: torch.Tensor | None = None,
                memory_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_first:
            x = x + self._drop(self._self_block(self.norm1(x), causal, tgt_key_padding_mask))
            x = x + self._drop(self._cross_block(self.norm2(x), memory, memory_key_padding_mask))
            return x + self._drop(self._feed_forward(self.norm3(x)))
        x = self.norm1(x + self._drop(self._self_block(x, causal, tgt_key_padding_mask)))
        x = self.norm2(x + self._drop(self._cross_block(x, memory, memory_key_padding_mask)))
        return self.norm3(x + self._drop(self._feed_forward(x)))

    # -- incremental decoding ------------------------------------------------------------------------------
    def reset_cache(self) -> None:
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None
        self._memory_kv: tuple[torch.Tensor, torch.Tensor] | None = None

    def decode_step(self, x_t: torch.Tensor, memory: torch.Tensor,
                    memory_key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self._memory_kv is None:
            self._memory_kv = self.cross_attn.project_kv(memory)
        h = self.norm1(x_t) if self.norm_first else x_t
        k, v = self.self_attn.project_kv(h)
        self._keys = k if self._keys is None else torch.cat([self._keys, k], dim=2)
        self._values = v if self._values is None else torch.cat([self._values, v], dim=2)
        attn = self.self_attn.attend(self.self_attn.project_q(h), self._keys, self._values, None)
        if self.norm_first:
            x = x_t + self._drop(attn)
            x = x + self._drop(self._cross_attend(self.norm2(x), *self._memory_kv, memory_key_padding_mask))
            return x + self._drop(self._feed_forward(self.norm3(x)))
        x = self.norm1(x_t + self._drop(attn))
        x = self.norm2(x + self._drop(self._cross_attend(x, *self._memory_kv, memory_key_padding_mask)))
        return self.norm3(x + self._drop(self._feed_forward(x)))
