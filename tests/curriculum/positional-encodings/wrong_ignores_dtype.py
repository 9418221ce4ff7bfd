# wrong: the requested dtype is ignored: tables are always float32, and apply_rope returns float32 for bfloat16/float16 x (x * float32 cos promotes)
# loses: test_sinusoidal_matches_reference, test_sinusoidal_dtype, test_rope_cos_sin_matches_reference, test_rope_keeps_dtype, test_rope_hidden_shapes_and_dtypes, test_float64_precision, test_sinusoidal_long_and_custom_base, test_rope_offset_and_positions
# ruff: noqa: E501 (the two lines above are read by tests/test_curriculum.py and stay whole)
"""Positional encodings, computed in the default dtype (float32) throughout."""

import torch


def sinusoidal_encoding(seq_len, d_model, base=10000.0, dtype="float32"):
    if d_model % 2:
        raise ValueError("d_model must be even")
    pe = torch.zeros(seq_len, d_model)
    pos = torch.arange(seq_len).float()[:, None]
    inv_freq = 1.0 / base ** (torch.arange(0, d_model, 2).float() / d_model)
    pe[:, 0::2] = torch.sin(pos * inv_freq)
    pe[:, 1::2] = torch.cos(pos * inv_freq)
    return pe


def rope_cos_sin(seq_len, head_dim, base=10000.0, offset=0, dtype="float32"):
    if head_dim % 2:
        raise ValueError("head_dim must be even")
    inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2).float() / head_dim)
    freqs = torch.outer(torch.arange(seq_len).float() + offset, inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def apply_rope(x, base=10000.0, offset=0, positions=None):
    if positions is None:
        cos, sin = rope_cos_sin(x.shape[-2], x.shape[-1], base, offset)
    else:
        cos, sin = rope_cos_sin(int(positions.max()) + 1 + offset, x.shape[-1], base)
        cos, sin = cos[positions + offset], sin[positions + offset]
    return x * cos + rotate_half(x) * sin
