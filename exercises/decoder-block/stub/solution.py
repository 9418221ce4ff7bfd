"""The Transformer decoder block: masked self-attention, cross-attention over the encoder's memory, feed-forward.

Paper: Vaswani et al. 2017, "Attention Is All You Need" (https://arxiv.org/abs/1706.03762), section 3.1
(decoder stack: "masking ... ensures that the predictions for position i can depend only on the known outputs
at positions less than i"), 3.2.3 (encoder-decoder attention: "the queries come from the previous decoder
layer, and the memory keys and values come from the output of the encoder"), 3.3, 5.4 (dropout).
Pre-norm: Xiong et al. 2020 (https://arxiv.org/abs/2002.04745). This is the sequel of the encoder-block
exercise: the same attention, twice, plus a causal mask and a key/value cache.

Your block must compute exactly what ``torch.nn.TransformerDecoderLayer(d_model, nhead, dim_feedforward,
dropout, activation, layer_norm_eps=..., batch_first=True, norm_first=...)`` computes once its weights are
copied into yours. Build it from nn.Linear, nn.LayerNorm and tensor operations; do not call
nn.TransformerDecoderLayer, nn.MultiheadAttention or F.scaled_dot_product_attention (the checks compare
your block with them).

The block, for the target x of shape (batch, T, d_model) and the encoder's memory (batch, S, d_model),
batch first; T and S are different in general, so keep them apart:

    post-norm (norm_first=False, the paper):  x = norm1(x + Dropout(SelfAttn(x)))
                                              x = norm2(x + Dropout(CrossAttn(x, memory)))
                                              x = norm3(x + Dropout(FeedForward(x)))
    pre-norm  (norm_first=True):              x = x + Dropout(SelfAttn(norm1(x)))
                                              x = x + Dropout(CrossAttn(norm2(x), memory))   memory NOT normalised
                                              x = x + Dropout(FeedForward(norm3(x)))

    FeedForward(x) = linear2(Dropout(activation(linear1(x))))   linear1: d_model -> d_ff, linear2: d_ff -> d_model
    activation: "relu" or "gelu" (exact erf GELU: torch.nn.functional.gelu)

Attention(queries_from, keys_values_from), h = num_heads heads of d_head = d_model / h features each:
    q = queries_from @ W_q.T + b_q;  k = kv_from @ W_k.T + b_k;  v = kv_from @ W_v.T + b_v
        (W_q, W_k, W_v are the three d_model-row chunks of in_proj_weight, in that order; same for the bias)
    split heads: (batch, len, d_model) -> view (batch, len, h, d_head) -> transpose (batch, h, len, d_head)
    scores  = q @ k^T / sqrt(d_head)                    (batch, h, T, S_or_T): one row per query
    blocked scores (see the masks) are set to -inf; weights = Dropout(softmax(scores over the keys))
    a query whose keys are ALL blocked gets all-zero weights (not NaN; torch does the same)
    heads   = weights @ v, merged: transpose (batch, len, h, d_head) -> reshape (batch, len, d_model)
    output  = heads @ W_out.T + b_out
SelfAttn(x) = Attention(x, x) with the causal mask and tgt_key_padding_mask.
CrossAttn(x, memory) = Attention(x, memory): queries from the decoder, keys AND values from the memory,
with memory_key_padding_mask. Its output has one row per TARGET position.

MASKS (booleans, True = may NOT attend, PyTorch's convention):
    causal=True: query i may attend keys j <= i only (itself included): block j > i, i.e.
                 torch.ones(T, T, dtype=torch.bool).triu(1). causal=False: no causal mask.
    tgt_key_padding_mask (batch, T): True where the TARGET token is padding; those keys are blocked.
    memory_key_padding_mask (batch, S): True where the MEMORY token is padding; those keys are blocked.
The outputs at padded target positions are not compared with torch, but they must be finite: with
left padding and the causal mask, the first queries have no key left at all (zero weights, see above).

DROPOUT: six places (the weights of both attentions, after the activation, after each of the three sublayers
before the residual sum), all with probability ``dropout``, inverted (kept values scaled by 1/(1-p)), and only
in training mode: ``F.dropout(t, p, self.training)`` or nn.Dropout. After ``block.eval()`` the block is
deterministic. The checks compare the distribution of your training-mode outputs with torch's.

KEY/VALUE CACHE (incremental decoding, eval mode): generating one token at a time, position t needs the keys
and values of positions 0..t, and those of 0..t-1 were already computed at the earlier steps; keep them.
    block.reset_cache()                          start a new sequence: forget every cached key and value
    y_t = block.decode_step(x_t, memory, memory_key_padding_mask=None)
        x_t: (batch, 1, d_model), the block's input at the next position t (0, 1, 2, ... since the reset)
        returns (batch, 1, d_model), equal to forward(x[:, :t+1], memory, causal=True, ...)[:, t:t+1]
Cache the self-attention keys/values of each step (what k and v are computed from differs between post-norm
and pre-norm). The memory (and its mask) stays the same from one reset to the next: you may compute its keys
and values once per sequence (again after every reset), not once for the block's life. ``forward`` neither
reads nor changes the cache.

WEIGHTS: ``load_torch_weights`` receives ``nn.TransformerDecoderLayer(...).state_dict()``, a dict of tensors
with exactly these keys (nn.Linear layout: a weight is (out_features, in_features)):
    self_attn.in_proj_weight (3*d_model, d_model), self_attn.in_proj_bias (3*d_model,)   rows: W_q, W_k, W_v
    self_attn.out_proj.weight (d_model, d_model), self_attn.out_proj.bias (d_model,)
    multihead_attn.in_proj_weight, multihead_attn.in_proj_bias, multihead_attn.out_proj.weight/.bias
                                                  (the cross-attention, same shapes)
    linear1.weight (d_ff, d_model), linear1.bias, linear2.weight (d_model, d_ff), linear2.bias
    norm1.weight, norm1.bias, norm2.weight, norm2.bias, norm3.weight, norm3.bias (d_model,)
Copy them into your own parameters (under ``torch.no_grad()``) and take on their dtype: the checks load
float64 weights too, after calling ``block.double()``.

Tolerances: elementwise within rtol=1e-4, atol=1e-5 in float32 and rtol=1e-9, atol=1e-10 in float64 (the
exercise's [profiles] tables). Keep every step in the input's dtype.

How the checks drive it (only plain data crosses the sandbox boundary; the block stays in the sandbox):
    block = DecoderBlock(16, 4, 32, dropout=0.1, activation="relu", norm_first=False, layer_norm_eps=1e-5)
    block.load_torch_weights(state)      # dict of tensors
    block.eval()                         # or block.train(), block.double()
    y = block.forward(x, memory, causal=True, tgt_key_padding_mask=None, memory_key_padding_mask=None)
"""

from __future__ import annotations

import torch
from torch import nn


class DecoderBlock(nn.Module):
    """One Transformer decoder layer, batch first."""

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
        """Create the parameters: two attentions (q/k/v and output projections each), two linears, three LayerNorms.

        Raises:
            ValueError: when num_heads does not divide d_model, or activation is not "relu" or "gelu".
        """
        super().__init__()
        raise NotImplementedError

    def load_torch_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Copy the weights of an nn.TransformerDecoderLayer (its state_dict) into this block (see above)."""
        raise NotImplementedError

    def forward(
        self,
        x: torch.Tensor,
        memory: torch.Tensor,
        causal: bool = True,
        tgt_key_padding_mask: torch.Tensor | None = None,
        memory_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Apply the block to the whole target sequence.

        Args:
            x: (batch, T, d_model), float32 or float64: the target side.
            memory: (batch, S, d_model), same dtype: the encoder's output.
            causal: block keys after each query in the self-attention.
            tgt_key_padding_mask: None or bool (batch, T), True = padding.
            memory_key_padding_mask: None or bool (batch, S), True = padding.

        Returns:
            (batch, T, d_model) in x's dtype.
        """
        raise NotImplementedError

    def reset_cache(self) -> None:
        """Forget the cached keys and values: the next decode_step is position 0 of a new sequence."""
        raise NotImplementedError

    def decode_step(
        self,
        x_t: torch.Tensor,
        memory: torch.Tensor,
        memory_key_padding_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """One step of incremental (causal) decoding with the key/value cache.

        Args:
            x_t: (batch, 1, d_model), the block's input at the next position.
            memory: (batch, S, d_model), the same at every step of one sequence.
            memory_key_padding_mask: None or bool (batch, S), True = padding.

        Returns:
            (batch, 1, d_model): the causal forward's output at this position.
        """
        raise NotImplementedError
