"""A sample student submission, half-way through the exercise (graded by `grader demo`).

It is deliberately not finished: the attention core is right when no mask is given, but the mask is
forgotten, causal masking is still a TODO, and the heads of multi-head attention are split the wrong way.
The report shows what the grader says about each of these.
"""

import math

import torch


def scaled_dot_product_attention(q, k, v, mask=None, is_causal=False):
    d_k = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / math.sqrt(d_k)
    if is_causal:
        raise NotImplementedError("causal masking: TODO")
    # TODO: use the mask
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


class MultiHeadAttention:
    def __init__(self, d_model, num_heads):
        if d_model % num_heads != 0:
            raise ValueError("num_heads must divide d_model")
        self.d_model = d_model
        self.num_heads = num_heads
        self.d_head = d_model // num_heads

    def load_weights(self, weights):
        self.weights = weights

    def forward(self, query, key, value, mask=None, is_causal=False):
        w = self.weights
        batch, length, _ = query.shape
        # one (batch, num_heads, seq, d_head) tensor per projection
        q = (query @ w["w_q"].T + w["b_q"]).reshape(batch, self.num_heads, length, self.d_head)
        k = (key @ w["w_k"].T + w["b_k"]).reshape(batch, self.num_heads, key.shape[1], self.d_head)
        v = (value @ w["w_v"].T + w["b_v"]).reshape(batch, self.num_heads, value.shape[1], self.d_head)
        out, weights = scaled_dot_product_attention(q, k, v, mask=mask, is_causal=is_causal)
        out = out.reshape(batch, length, self.d_model)
        return out @ w["w_o"].T + w["b_o"], weights
