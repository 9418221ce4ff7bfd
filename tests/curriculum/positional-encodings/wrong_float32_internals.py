# wrong: angles are computed in float32 and only cast at the end, so float64 results are only float32-accurate (fine for every other dtype)
# loses: test_float64_precision
# ruff: noqa: E501 (the two lines above are read by tests/test_curriculum.py and stay whole)
"""Positional encodings the way the Annotated Transformer and HF Llama write them (float32 inside)."""

import math

import torch


def sinusoidal_encoding(seq_len, d_model, base=10000.0, dtype="float32"):
    if d_model % 2:
        raise ValueError("d_model must be even")
    position = torch.arange(seq_len).unsqueeze(1).float()
    div_term = torch.exp(torch.arange(0, d_model, 2).float() * (-math.log(base) / d_model))
    pe = torch.zeros(seq_len, d_model)
    pe[:, 0::2] = torch.sin(position * div_term)
    pe[:, 1::2] = torch.cos(position * div_term)
    return pe.to(getattr(torch, dtype))


def _inv_freq(head_dim, base):
    if head_dim % 2:
        raise ValueError("head_dim must be even")
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))


def rope_cos_sin(seq_len, head_dim, base=10000.0, offset=0, dtype="float32"):
    t = torch.arange(seq_len).float() + offset
    freqs = torch.outer(t, _inv_freq(head_dim, base))
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(getattr(torch, dtype)), emb.sin().to(getattr(torch, dtype))


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, base=10000.0, offset=0, positions=None):
    t = (torch.arange(x.shape[-2]) if positions is None else positions).float() + offset
    freqs = torch.outer(t, _inv_freq(x.shape[-1], base))
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
    return x * cos + rotate_half(x) * sin
