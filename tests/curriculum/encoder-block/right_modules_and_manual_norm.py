# right: separate q/k/v Linears, Dropout and activation modules, a hand-written LayerNorm, einsum attention
"""An encoder block written with modules: separate projections, nn.Dropout, a LayerNorm by hand.

q, k and v nn.Linear layers filled from chunks of in_proj, nn.Dropout modules, nn.ReLU/nn.GELU modules, a
hand-written LayerNorm (biased variance, eps inside the square root), einsum attention and a finfo.min mask
fill instead of -inf.
"""

from __future__ import annotations

import torch
from torch import nn


class LayerNorm(nn.Module):
    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))
        self.bias = nn.Parameter(torch.zeros(d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class EncoderBlock(nn.Module):
    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.1, activation: str = "relu",
                 norm_first: bool = False, layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        acts = {"relu": nn.ReLU, "gelu": nn.GELU}
        if activation not in acts:
            raise ValueError(f"unknown activation {activation!r}")
        if d_model % num_heads != 0:
            raise ValueError("num_heads must divide d_model")
        self.h, self.norm_first = num_heads, norm_first
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d_model, d_model) for _ in range(3))
        self.o_proj = nn.Linear(d_model, d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), acts[activation](), nn.Dropout(dropout),
                                 nn.Linear(d_ff, d_model))
        self.ln1, self.ln2 = LayerNorm(d_model, layer_norm_eps), LayerNorm(d_model, layer_norm_eps)
        self.attn_drop, self.drop1, self.drop2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def load_torch_weights(self, state: dict[str, torch.Tensor]) -> None:
        self.to(state["linear1.weight"].dtype)
        wq, wk, wv = state["self_attn.in_proj_weight"].chunk(3)
        bq, bk, bv = state["self_attn.in_proj_bias"].chunk(3)
        pairs = [(self.q_proj.weight, wq), (self.q_proj.bias, bq), (self.k_proj.weight, wk),
                 (self.k_proj.bias, bk), (self.v_proj.weight, wv), (self.v_proj.bias, bv),
                 (self.o_proj.weight, state["self_attn.out_proj.weight"]),
                 (self.o_proj.bias, state["self_attn.out_proj.bias"]),
                 (self.ffn[0].weight, state["linear1.weight"]), (self.ffn[0].bias, state["linear1.bias"]),
                 (self.ffn[3].weight, state["linear2.weight"]), (self.ffn[3].bias, state["linear2.bias"]),
                 (self.ln1.weight, state["norm1.weight"]), (self.ln1.bias, state["norm1.bias"]),
                 (self.ln2.weight, state["norm2.weight"]), (self.ln2.bias, state["norm2.bias"])]
        with torch.no_grad():
            for param, value in pairs:
                param.copy_(value)

    def attend(self, x: torch.Tensor, pad: torch.Tensor | None) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b, n, self.h, d // self.h).permute(0, 2, 1, 3)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        scores = torch.einsum("bhid,bhjd->bhij", q, k) / (d // self.h) ** 0.5
        if pad is not None:
            scores = scores.masked_fill(pad.bool().view(b, 1, 1, n), torch.finfo(scores.dtype).min)
        weights = self.attn_drop(torch.softmax(scores, dim=-1))
        out = torch.einsum("bhij,bhjd->bhid", weights, v).permute(0, 2, 1, 3).reshape(b, n, d)
        return self.o_proj(out)

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.norm_first:
            x = x + self.drop1(self.attend(self.ln1(x), key_padding_mask))
            x = x + self.drop2(self.ffn(self.ln2(x)))
        else:
            x = self.ln1(x + self.drop1(self.attend(x, key_padding_mask)))
            x = self.ln2(x + self.drop2(self.ffn(x)))
        return x
