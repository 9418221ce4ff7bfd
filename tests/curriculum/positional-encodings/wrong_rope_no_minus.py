# wrong: rotate_half forgets the minus sign: concat(x[h:], x[:h]), so RoPE is no longer a rotation
# loses: test_rope_preserves_norm, test_rope_relative_position, test_rope_matches_reference, test_rope_keeps_dtype, test_rope_hidden_shapes_and_dtypes, test_rope_offset_and_positions, test_float64_precision
# ruff: noqa: E501 (the two lines above are read by tests/test_curriculum.py and stay whole)
"""Positional encodings: sinusoidal table and RoPE (rotate_half convention)."""

import torch


def sinusoidal_encoding(seq_len, d_model, base=10000.0, dtype="float32"):
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    pos = torch.arange(seq_len, dtype=torch.float64)[:, None]
    i = torch.arange(d_model // 2, dtype=torch.float64)
    angles = pos / base ** (2 * i / d_model)
    pe = torch.zeros(seq_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe.to(getattr(torch, dtype))


def _angles(positions, head_dim, base):
    if head_dim % 2:
        raise ValueError(f"head_dim must be even, got {head_dim}")
    j = torch.arange(head_dim // 2, dtype=torch.float64)
    theta = base ** (-2 * j / head_dim)
    freqs = positions.to(torch.float64)[:, None] * theta
    return torch.cat([freqs, freqs], dim=-1)


def rope_cos_sin(seq_len, head_dim, base=10000.0, offset=0, dtype="float32"):
    emb = _angles(torch.arange(seq_len) + offset, head_dim, base)
    return emb.cos().to(getattr(torch, dtype)), emb.sin().to(getattr(torch, dtype))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([x[..., h:], x[..., :h]], dim=-1)


def apply_rope(x, base=10000.0, offset=0, positions=None):
    pos = torch.arange(x.shape[-2]) if positions is None else positions
    emb = _angles(pos + offset, x.shape[-1], base)
    x64 = x.to(torch.float64)
    out = x64 * emb.cos() + rotate_half(x64) * emb.sin()
    return out.to(x.dtype)
