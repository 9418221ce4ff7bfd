"""Self-attention from scratch: scaled dot-product attention and multi-head attention.

Paper: Vaswani et al. 2017, "Attention Is All You Need" (https://arxiv.org/abs/1706.03762),
section 3.2.1 (Scaled Dot-Product Attention) and section 3.2.2 (Multi-Head Attention).
Use plain tensor operations (matmul, softmax, reshape, transpose, masked_fill); do not call
torch.nn.functional.scaled_dot_product_attention or torch.nn.MultiheadAttention -- the checks compare
your results with exactly those.

1. Scaled dot-product attention (section 3.2.1)
-----------------------------------------------
Each query is compared with every key; the scores, divided by sqrt(d_k), go through a softmax over the
keys, and the result weights the values:

    scores  = q @ k^T / sqrt(d_k)              (..., L, S)
    weights = softmax(scores, over the keys)   (..., L, S), each row sums to 1
    output  = weights @ v                      (..., L, d_v)

Shapes: q is (..., L, d_k), k is (..., S, d_k), v is (..., S, d_v), with the same leading dims "..."
(none, (batch,), (batch, heads), or more). L is the number of queries, S the number of keys/values; L may
differ from S, and d_k from d_v. d_k is q.shape[-1]: the width of queries and keys (not of v). Dividing by
sqrt(d_k) keeps the scores of order 1 whatever the width, so the softmax does not saturate.

MASK CONVENTION (the same as the boolean attn_mask of torch.nn.functional.scaled_dot_product_attention):
``mask`` is a boolean tensor broadcastable to (..., L, S); mask[..., i, j] is True when query i MAY attend
key j, and False when key j is blocked for it. A blocked key gets exactly 0 weight: set its score to -inf
before the softmax (``scores.masked_fill(~mask, float("-inf"))``); the remaining weights of the row still
sum to 1. Examples:
    padding: keys 0..n_b-1 of sequence b are real tokens, the rest padding ->
             mask of shape (batch, 1, S), True for j < n_b (the same for every query)
    any (L, S) pattern, shared by the whole batch.

CAUSAL MASKING: with ``is_causal=True``, query i may attend key j only when j <= i (itself and the
past), the lower triangle ``torch.ones(L, S, dtype=torch.bool).tril()`` -- the same as torch's is_causal.
With both a mask and is_causal=True, a key is allowed only when both allow it (logical AND).

The checks never leave a query with no allowed key (a softmax over all -inf gives NaN; torch returns 0).

2. Multi-head attention (section 3.2.2)
---------------------------------------
    MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W_O^T + b_O,
    head_i = Attention(Q W_Q^T + b_Q, K W_K^T + b_K, V W_V^T + b_V) restricted to the i-th slice of
             d_head = d_model / h features.

Inputs are batch-first: query (batch, L, d_model), key and value (batch, S, d_model). Steps:
    a. project: q = query @ w_q.T + b_q (likewise k, v): (batch, L or S, d_model).
    b. split heads: (batch, L, d_model) -> view (batch, L, h, d_head) -> transpose to (batch, h, L, d_head).
       Head i owns features i*d_head .. (i+1)*d_head - 1 of the projection. A direct reshape to
       (batch, h, L, d_head) is NOT the same thing: it mixes positions and features.
    c. attend: your scaled_dot_product_attention on (batch, h, L, d_head) tensors; the scale is therefore
       sqrt(d_head), not sqrt(d_model).
    d. merge heads: (batch, h, L, d_head) -> transpose to (batch, L, h, d_head) -> reshape (batch, L, d_model).
    e. output projection: out = merged @ w_o.T + b_o.

Weights use torch.nn.Linear's layout: a weight is (out_features, in_features) = (d_model, d_model) and a
projection is x @ W.T + b. They are exactly the parameters of torch.nn.MultiheadAttention:
    w_q, w_k, w_v = in_proj_weight.chunk(3)     b_q, b_k, b_v = in_proj_bias.chunk(3)
    w_o = out_proj.weight                       b_o = out_proj.bias

Beware: torch.nn.MultiheadAttention's boolean attn_mask and key_padding_mask use the OPPOSITE convention
(True = may NOT attend). This exercise always uses True = may attend.

Dtypes: inputs and weights are float32 or float64 (the checks use both); return results in the inputs'
dtype. The checks compare with torch within rtol=1e-4, atol=2e-5 in float32 and rtol=1e-9, atol=1e-10 in
float64, so keep every step in the inputs' dtype (no .float()).

Only plain data crosses the grader's sandbox boundary: return tensors, tuples and None -- no numpy arrays.
"""

from __future__ import annotations

import torch


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    is_causal: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T / sqrt(d_k)) v, with an optional boolean mask and causal masking.

    Args:
        q: queries, (..., L, d_k), float32 or float64.
        k: keys, (..., S, d_k), same dtype and leading dims as q.
        v: values, (..., S, d_v), same dtype and leading dims as q.
        mask: None, or a boolean tensor broadcastable to (..., L, S): True = query i may attend key j,
            False = blocked (exactly 0 weight).
        is_causal: if True, query i may only attend keys j <= i (combined with ``mask`` by AND).

    Returns:
        (output, attention_weights): output is (..., L, d_v), attention_weights is (..., L, S) (the
        softmax over the keys: rows sum to 1), both of q's dtype.
    """
    raise NotImplementedError


class MultiHeadAttention:
    """Multi-head attention with projection weights given from outside (no training here).

    The checks call it like this:

        mha = MultiHeadAttention(d_model, num_heads)
        mha.load_weights({"w_q": ..., "b_q": ..., "w_k": ..., "b_k": ..., "w_v": ..., "b_v": ...,
                          "w_o": ..., "b_o": ...})
        output, weights = mha.forward(query, key, value, mask=None, is_causal=False)
    """

    def __init__(self, d_model: int, num_heads: int) -> None:
        """Remember the sizes: d_head = d_model // num_heads.

        Raises:
            ValueError: when num_heads does not divide d_model (every head must get d_head features).
        """
        raise NotImplementedError

    def load_weights(self, weights: dict[str, torch.Tensor]) -> None:
        """Keep the projection weights for forward.

        Args:
            weights: a dict with the keys "w_q", "w_k", "w_v", "w_o" (each (d_model, d_model), nn.Linear
                layout: a projection is x @ W.T + b) and "b_q", "b_k", "b_v", "b_o" (each (d_model,)),
                all of one dtype (float32 or float64).
        """
        raise NotImplementedError

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        is_causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Multi-head attention of section 3.2.2, built on your scaled_dot_product_attention.

        Args:
            query: (batch, L, d_model).
            key: (batch, S, d_model).
            value: (batch, S, d_model). For self-attention, query, key and value are the same tensor.
            mask: None, or a boolean tensor broadcastable to (batch, num_heads, L, S), True = may attend;
                pass it on to your scaled_dot_product_attention. A key padding mask ``valid`` of shape
                (batch, S) (True = real token) is given as ``valid[:, None, None, :]``, shape (batch, 1, 1, S).
            is_causal: if True, query i may only attend keys j <= i (as in scaled_dot_product_attention).

        Returns:
            (output, attention_weights): output is (batch, L, d_model); attention_weights are the per-head
            weights, (batch, num_heads, L, S) (torch.nn.MultiheadAttention's weights with
            average_attn_weights=False); both in the inputs' dtype.
        """
        raise NotImplementedError
