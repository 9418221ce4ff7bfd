"""Positional encodings: the sinusoidal table of the Transformer, and rotary position embedding (RoPE).

Self-attention by itself does not know the order of its inputs: permute the tokens and the outputs are
permuted the same way. Positional encodings put the position back in. You write two classic ones.

1. Sinusoidal encoding -- Vaswani et al. 2017, "Attention Is All You Need", section 3.5
   (https://arxiv.org/abs/1706.03762). A fixed (seq_len, d_model) table added to the token embeddings:

       PE[pos, 2i]     = sin(pos / base^(2i / d_model))
       PE[pos, 2i + 1] = cos(pos / base^(2i / d_model))

   with pos = 0, 1, ..., seq_len - 1 (the first position is 0), i = 0, 1, ..., d_model/2 - 1 the index
   of a (sin, cos) PAIR of columns, and base = 10000 in the paper. Column 2i and column 2i+1 share one
   frequency 1 / base^(2i/d_model); so row 0 is [0, 1, 0, 1, ...]. d_model must be even.

2. Rotary position embedding (RoPE) -- Su et al. 2021, "RoFormer: Enhanced Transformer with Rotary
   Position Embedding" (https://arxiv.org/abs/2104.09864). Instead of adding a table, rotate each
   query/key vector by an angle proportional to its position. Pairs of dimensions are rotated in their
   plane by the angle pos * theta_j, with

       theta_j = base^(-2j / head_dim),   j = 0, 1, ..., head_dim/2 - 1,   base = 10000.

   Because rotations compose, <rope(q, m), rope(k, n)> depends only on m - n (relative position), and a
   rotation keeps every vector's norm.

   PAIRING CONVENTION (this exercise uses "rotate_half", as GPT-NeoX and Llama do in HF transformers):
   dimension j is paired with dimension j + head_dim/2 (NOT with j + 1). For a vector x at position p,
   with h = head_dim / 2 and a_j = p * theta_j, for j < h:

       out[j]     = x[j]     * cos(a_j) - x[j + h] * sin(a_j)
       out[j + h] = x[j + h] * cos(a_j) + x[j]     * sin(a_j)

   Written with full-width tables cos_t[p] = cos([a_0..a_{h-1}, a_0..a_{h-1}]) (same for sin_t):

       rotate_half(x) = concat(-x[h:], x[:h])
       out = x * cos_t + rotate_half(x) * sin_t

   This rotates by +a_j (counter-clockwise in the (x[j], x[j+h]) plane). The other convention in the
   wild, pairing (2j, 2j+1) as GPT-J and the RoFormer paper do, gives different numbers: don't use it here.

Dtypes and precision
--------------------
* Only plain data crosses the grader's sandbox boundary, so a dtype is passed as its NAME, a string:
  "float32", "float64", "bfloat16" or "float16". ``getattr(torch, name)`` turns it into a torch.dtype.
* Compute positions, frequencies and angles in float64 and cast the result at the end with ``.to()``.
  bfloat16 has 8 bits of mantissa: angles computed in it are wrong by whole radians at large positions.
* The checks compare with a float64 computation, elementwise: within about 1e-9 for float64 results,
  1e-4 for float32 (1e-3 at positions in the thousands), 8e-3 for bfloat16 and 2e-3 for float16; for
  RoPE these are multiplied by the largest |x|.
* apply_rope returns x's dtype. Beware: bfloat16 x times float32 cos promotes to float32.
* If your apply_rope calls your rope_cos_sin with dtype=x.dtype, let rope_cos_sin accept a torch.dtype
  as well as a name.

Errors: an odd d_model or head_dim has no partner for its last dimension: raise ValueError.
"""

from __future__ import annotations

import torch


def sinusoidal_encoding(seq_len: int, d_model: int, base: float = 10000.0, dtype: str = "float32") -> torch.Tensor:
    """The sinusoidal position table of "Attention Is All You Need" (section 3.5).

    Args:
        seq_len: number of positions; rows are positions 0, 1, ..., seq_len - 1.
        d_model: width of the table; must be even (raise ValueError otherwise).
        base: the 10000 of the paper.
        dtype: name of the result's dtype ("float32", "float64", "bfloat16", "float16").

    Returns:
        A (seq_len, d_model) tensor of dtype ``dtype`` with
        PE[pos, 2i] = sin(pos / base^(2i/d_model)) and PE[pos, 2i+1] = cos(pos / base^(2i/d_model)).
        Row 0 is [0, 1, 0, 1, ...].
    """
    raise NotImplementedError


def rope_cos_sin(
    seq_len: int, head_dim: int, base: float = 10000.0, offset: int = 0, dtype: str = "float32"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The cos and sin tables of RoPE in the rotate_half layout.

    Args:
        seq_len: number of positions; row p is position offset + p.
        head_dim: size of each head's vectors; must be even (raise ValueError otherwise).
        base: the 10000 of RoFormer; theta_j = base^(-2j / head_dim) for j = 0 .. head_dim/2 - 1.
        offset: position of the first row (e.g. the number of tokens already in a KV cache).
        dtype: name of the tables' dtype ("float32", "float64", "bfloat16", "float16").

    Returns:
        (cos, sin), each a (seq_len, head_dim) tensor of dtype ``dtype``:
        cos[p, j] = cos((offset + p) * theta_{j mod head_dim/2}), i.e. the half-width table repeated
        twice along the last axis: [a_0 .. a_{h-1}, a_0 .. a_{h-1}]. Same for sin.
    """
    raise NotImplementedError


def apply_rope(
    x: torch.Tensor, base: float = 10000.0, offset: int = 0, positions: torch.Tensor | None = None
) -> torch.Tensor:
    """Rotate x by its positions with RoPE, rotate_half convention (see the module docstring).

    Args:
        x: a (..., seq_len, head_dim) floating tensor (any number of leading batch/head axes);
           head_dim must be even (raise ValueError otherwise).
        base: the 10000 of RoFormer; theta_j = base^(-2j / head_dim).
        offset: row p of the sequence axis is at position offset + p.
        positions: optional 1-D integer tensor of length seq_len; when given, row p is at position
           offset + positions[p] instead (positions need not be sorted or distinct).

    Returns:
        A tensor of x's shape and x's dtype: out = x * cos_t + rotate_half(x) * sin_t, where
        rotate_half(x) = concat(-x[..., h:], x[..., :h]) and cos_t, sin_t are rope_cos_sin's tables
        broadcast over the leading axes. Position 0 is left unchanged.
    """
    raise NotImplementedError
