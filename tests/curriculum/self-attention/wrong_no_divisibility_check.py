# wrong: MultiHeadAttention(d_model, num_heads) never checks that num_heads divides d_model
# loses: test_mha_rejects_indivisible_heads
"""Self-attention: scaled dot-product attention and multi-head attention (Vaswani et al. 2017, 3.2)."""

import math

import torch


def scaled_dot_product_attention(q, k, v, mask=None, is_causal=False):
    d_k = q.size(-1)
    scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(d_k)
    if is_causal:
        L, S = q.size(-2), k.size(-2)
        causal = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        mask = causal if mask is None else mask & causal
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, v), weights


class MultiHeadAttention:
    def __init__(self, d_model, num_heads):
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_head = d_model // num_heads
        self.w = {}

    def load_weights(self, weights):
        self.w = dict(weights)

    def _project(self, x, name):
        return x @ self.w["w_" + name].T + self.w["b_" + name]

    def _split_heads(self, x):
        b, n, _ = x.shape
        return x.view(b, n, self.num_heads, self.d_head).transpose(1, 2)

    def _merge_heads(self, x):
        b, h, n, d = x.shape
        return x.transpose(1, 2).reshape(b, n, h * d)

    def forward(self, query, key, value, mask=None, is_causal=False):
        q = self._split_heads(self._project(query, "q"))
        k = self._split_heads(self._project(key, "k"))
        v = self._split_heads(self._project(value, "v"))
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal)
        return self._project(self._merge_heads(out), "o"), weights
