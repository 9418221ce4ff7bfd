# wrong: positions, frequencies and angles are computed in the requested (bfloat16/float16) dtype
# loses: test_sinusoidal_dtype, test_rope_keeps_dtype, test_rope_hidden_shapes_and_dtypes
"""Positional encodings, computed directly in the requested dtype."""

import math

import torch


def sinusoidal_encoding(seq_len, d_model, base=10000.0, dtype="float32"):
    if d_model % 2:
        raise ValueError("d_model must be even")
    dt = getattr(torch, dtype)
    position = torch.arange(seq_len, dtype=dt)[:, None]
    div_term = torch.exp(torch.arange(0, d_model, 2, dtype=dt) * (-math.log(base) / d_model))
    pe = torch.zeros(seq_len, d_model, dtype=dt)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe


def rope_cos_sin(seq_len, head_dim, base=10000.0, offset=0, dtype="float32"):
    if head_dim % 2:
        raise ValueError("head_dim must be even")
    dt = getattr(torch, dtype)
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=dt) / head_dim)
    freqs = (torch.arange(seq_len, dtype=dt) + offset)[:, None] * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x, base=10000.0, offset=0, positions=None):
    head_dim = x.shape[-1]
    if head_dim % 2:
        raise ValueError("head_dim must be even")
    pos = torch.arange(x.shape[-2]) if positions is None else positions
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=x.dtype) / head_dim)
    freqs = (pos + offset).to(x.dtype)[:, None] * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    return x * emb.cos() + rotate_half(x) * emb.sin()
