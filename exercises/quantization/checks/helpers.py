"""Helpers shared by the public and hidden quantization checks (``from helpers import ...``)."""

import torch

from grader.testing import expect_type


def expect_q(result, shape, what):
    expect_type(result, (tuple, list), what)
    assert len(result) == 2, f"{what} should return (q, scale)"
    q, scale = result
    expect_type(q, torch.Tensor, f"{what}'s q")
    expect_type(scale, torch.Tensor, f"{what}'s scale")
    assert q.dtype == torch.int8 and tuple(q.shape) == shape, (
        f"q should be int8 of shape {shape}, got {q.dtype} {tuple(q.shape)}: store the quantised weight as int8")
    assert scale.dtype == torch.float32 and tuple(scale.shape) == (shape[0],), (
        f"scale should be float32 of shape ({shape[0]},): one scale per output channel (row), got {scale.dtype} "
        f"{tuple(scale.shape)}")
    return q, scale


def check_int8(student, weight, what):
    """Check quantize_per_channel_int8 on ``weight``: int8 q, scale ~ max|row|/127, error <= scale/2."""
    q, scale = expect_q(student.quantize_per_channel_int8(weight), tuple(weight.shape), what)
    w = weight.float()
    assert int(q.min()) >= -128 and int(q.max()) <= 127 and bool(torch.isfinite(scale).all()) and bool(
        (scale > 0).all()), f"{what}: scales must be finite and > 0 (a zero row gets scale 1), q within int8"
    absmax = w.abs().amax(1)
    live = absmax > 0
    ratio = scale[live] * 127 / absmax[live]
    assert bool(((ratio > 0.99) & (ratio < 1.01)).all()), (
        f"{what}: scale should be max|row| / 127 for each row (symmetric, per output channel); found scale*127/max "
        f"between {float(ratio.min()):.3f} and {float(ratio.max()):.3f}. One scale for the whole tensor crushes small "
        "rows")
    error = (q.float() * scale[:, None] - w).abs()
    allowed = scale[:, None] / 2 * (1 + 1e-4) + 1e-12
    assert bool((error <= allowed).all()), (
        f"{what}: some weights are off by more than half a step (max error {float((error / scale[:, None]).max()):.2f} "
        "steps): round to the nearest integer (torch.round), do not truncate, and clamp to [-127, 127]")
    return q, scale
