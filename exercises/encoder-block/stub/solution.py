"""The Transformer encoder block: multi-head self-attention, feed-forward, LayerNorm and residuals.

Paper: Vaswani et al. 2017, "Attention Is All You Need" (https://arxiv.org/abs/1706.03762), section 3.1
(encoder stack), 3.2.2 (multi-head attention), 3.3 (position-wise feed-forward), 5.4 (dropout). Pre-norm:
Xiong et al. 2020, "On Layer Normalization in the Transformer Architecture" (https://arxiv.org/abs/2002.04745).

Your block must compute exactly what ``torch.nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward,
dropout, activation, layer_norm_eps=..., batch_first=True, norm_first=...)`` computes once its weights are
copied into yours. Build it from nn.Linear, nn.LayerNorm and tensor operations; do not call
nn.TransformerEncoderLayer, nn.MultiheadAttention or F.scaled_dot_product_attention (the checks compare
your block with them).

The block, for x of shape (batch, seq, d_model) -- batch first:

    post-norm (norm_first=False, the paper):   x = LayerNorm1(x + Dropout(SelfAttention(x)))
                                               x = LayerNorm2(x + Dropout(FeedForward(x)))
    pre-norm  (norm_first=True):               x = x + Dropout(SelfAttention(LayerNorm1(x)))
                                               x = x + Dropout(FeedForward(LayerNorm2(x)))

    FeedForward(x) = Linear2(Dropout(activation(Linear1(x))))     Linear1: d_model -> d_ff, Linear2: d_ff -> d_model
    activation: "relu" or "gelu" (exact erf GELU: torch.nn.functional.gelu)

SelfAttention(x), with h = num_heads heads of d_head = d_model / h features each:
    q, k, v = x @ W_in.T + b_in, split into three (d_model) chunks in the order q, k, v
    split heads: (batch, seq, d_model) -> view (batch, seq, h, d_head) -> transpose (batch, h, seq, d_head)
    scores  = q @ k^T / sqrt(d_head)                  (batch, h, seq, seq)
    padding: scores of PADDED KEYS are set to -inf   (see the mask below)
    weights = Dropout(softmax(scores over the keys))
    heads   = weights @ v, merged back: transpose (batch, seq, h, d_head) -> reshape (batch, seq, d_model)
    output  = heads @ W_out.T + b_out

KEY PADDING MASK (PyTorch's src_key_padding_mask convention): a boolean tensor of shape (batch, seq),
True where the token is PADDING. Padded tokens are never attended to (their keys get -inf scores); each
sequence keeps at least one real token. The outputs AT padded positions are not checked. (Careful: the
self-attention exercise used the opposite convention, True = may attend.)

DROPOUT: four places (attention weights, after the activation, after each sublayer before the residual
sum), all with probability ``dropout``, and only in training mode: ``F.dropout(t, p, self.training)`` or
nn.Dropout. After ``block.eval()`` the block is deterministic.

WEIGHTS: ``load_torch_weights`` receives ``nn.TransformerEncoderLayer(...).state_dict()`` -- a dict of
tensors with exactly these keys (nn.Linear layout: a weight is (out_features, in_features)):
    self_attn.in_proj_weight (3*d_model, d_model)  self_attn.in_proj_bias (3*d_model,)   rows: W_q, W_k, W_v
    self_attn.out_proj.weight (d_model, d_model)   self_attn.out_proj.bias (d_model,)
    linear1.weight (d_ff, d_model)    linear1.bias (d_ff,)    linear2.weight (d_model, d_ff)   linear2.bias (d_model,)
    norm1.weight, norm1.bias, norm2.weight, norm2.bias (d_model,)
Copy them into your own parameters (under ``torch.no_grad()``), and take on their dtype: the checks load
float64 weights too, after calling ``block.double()``.

Tolerances: the checks compare with nn.TransformerEncoderLayer (and a reference) elementwise, within
rtol=1e-4, atol=1e-5 in float32 and rtol=1e-9, atol=1e-10 in float64. Keep every step in the input's dtype.

How the checks drive it (only plain data crosses the sandbox boundary; the block stays in the sandbox):
    block = EncoderBlock(16, 4, 32, dropout=0.1, activation="relu", norm_first=False, layer_norm_eps=1e-5)
    block.load_torch_weights(state)     # dict of tensors
    block.eval()                        # or block.train(), block.double()
    y = block.forward(x, key_padding_mask=mask)
"""

from __future__ import annotations

import torch
from torch import nn


class EncoderBlock(nn.Module):
    """One Transformer encoder layer, batch first."""

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        d_ff: int,
        dropout: float = 0.1,
        activation: str = "relu",
        norm_first: bool = False,
        layer_norm_eps: float = 1e-5,
    ) -> None:
        """Create the parameters: the q/k/v and output projections, the two feed-forward linears, two LayerNorms.

        Raises:
            ValueError: when num_heads does not divide d_model, or activation is not "relu" or "gelu".
        """
        super().__init__()
        raise NotImplementedError

    def load_torch_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Copy the weights of an nn.TransformerEncoderLayer (its state_dict) into this block (see above)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the block.

        Args:
            x: (batch, seq, d_model), float32 or float64.
            key_padding_mask: None, or a bool tensor (batch, seq), True = padding (never attended to).

        Returns:
            (batch, seq, d_model) in x's dtype.
        """
        raise NotImplementedError
