"""Reference solution: sinusoidal positional encoding and rotary position embedding (RoPE).

Conventions (the same as the stub's docstrings):
- sinusoidal: PE[pos, 2i] = sin(pos / base^(2i/d_model)), PE[pos, 2i+1] = cos(...), odd d_model -> ValueError.
- RoPE: "rotate_half" pairing (GPT-NeoX / Llama in HF transformers): dimension j is paired with
  j + head_dim/2, theta_j = base^(-2j/head_dim); odd head_dim -> ValueError.
All angles are computed in float64 and cast at the end.
"""

from __future__ import annotations

import torch


def _dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ValueError(f"dtype must name a torch floating dtype, got {dtype!r}")
    return value


def sinusoidal_encoding(seq_len: int, d_model: int, base: float = 10000.0, dtype: str = "float32") -> torch.Tensor:
    if d_model % 2:
        raise ValueError(f"d_model must be even, got {d_model}")
    pos = torch.arange(seq_len, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angles = pos / float(base) ** (two_i / d_model)
    pe = torch.empty(seq_len, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles)
    return pe.to(_dtype(dtype))


def _angles(positions: torch.Tensor, head_dim: int, base: float) -> torch.Tensor:
    if head_dim % 2:
        raise ValueError(f"head_dim must be even, got {head_dim}")
    j = torch.arange(head_dim // 2, dtype=torch.float64)
    theta = float(base) ** (-2.0 * j / head_dim)
    freqs = positions.to(torch.float64)[:, None] * theta[None, :]
    return torch.cat([freqs, freqs], dim=-1)


def rope_cos_sin(
    seq_len: int, head_dim: int, base: float = 10000.0, offset: int = 0, dtype: str = "float32"
) -> tuple[torch.Tensor, torch.Tensor]:
    emb = _angles(torch.arange(seq_len, dtype=torch.float64) + offset, head_dim, base)
    target = _dtype(dtype)
    return torch.cos(emb).to(target), torch.sin(emb).to(target)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rope(
    x: torch.Tensor, base: float = 10000.0, offset: int = 0, positions: torch.Tensor | None = None
) -> torch.Tensor:
    seq_len, head_dim = x.shape[-2], x.shape[-1]
    if positions is None:
        pos = torch.arange(seq_len, dtype=torch.float64)
    else:
        pos = torch.as_tensor(positions).to(torch.float64).reshape(-1)
        if pos.numel() != seq_len:
            raise ValueError(f"positions has {pos.numel()} entries, x has seq_len {seq_len}")
    emb = _angles(pos + offset, head_dim, base)
    x64 = x.to(torch.float64)
    out = x64 * torch.cos(emb) + rotate_half(x64) * torch.sin(emb)
    return out.to(x.dtype)
