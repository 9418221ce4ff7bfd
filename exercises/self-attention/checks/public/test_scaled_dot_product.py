"""Public checks: scaled dot-product attention, compared with the reference and with PyTorch's own."""

import pytest
import torch

ADVICE = "output differs from softmax(q k^T / sqrt(d_k)) v: check the scale, the softmax axis (keys) and the mask"


def _compare(sa, reference, what, out, weights, q, k, v, **kwargs):
    """Output vs torch's scaled_dot_product_attention and the reference; weights vs the reference."""
    tol = sa.tol(q.dtype)
    ref_out, ref_weights = reference.scaled_dot_product_attention(q, k, v, **kwargs)
    sa.expect_close(out, sa.torch_sdpa(q, k, v, **kwargs), name=f"output of {what} vs torch", advice=ADVICE,
                    diagnose=sa.sdpa_diagnose(q, k, v, **kwargs), **tol)
    sa.expect_close(out, ref_out, name=f"output of {what} vs the reference", advice=ADVICE,
                    diagnose=sa.sdpa_diagnose(q, k, v, **kwargs), **tol)
    sa.expect_close(weights, ref_weights, name=f"attention weights of {what}",
                    advice="the attention weights differ: they are softmax(q k^T / sqrt(d_k)) over the keys, "
                           "after masking (the matrix you multiply v by)",
                    diagnose=sa.sdpa_diagnose(q, k, v, which=1, **kwargs), **tol)


@pytest.mark.points(1)
def test_sdpa_shapes_and_dtype(student, sa):
    """scaled_dot_product_attention returns (output, weights) with the right shapes and dtype"""
    cases = [
        ((5, 8), (7, 8), (7, 6), torch.float32),
        ((2, 5, 8), (2, 7, 8), (2, 7, 3), torch.float64),
        ((2, 3, 4, 8), (2, 3, 4, 8), (2, 3, 4, 8), torch.float32),
    ]
    for q_shape, k_shape, v_shape, dtype in cases:
        q, k, v = (torch.randn(s, dtype=dtype) for s in (q_shape, k_shape, v_shape))
        sa.sdpa_call(student, q, k, v)  # checks the type, shapes and dtype of both results


@pytest.mark.points(2)
def test_sdpa_matches_reference_and_torch(student, reference, sa):
    """Outputs match torch.nn.functional.scaled_dot_product_attention, weights match the reference (float32)"""
    cases = [
        ((6, 8), (6, 8), (6, 8)),  # one sequence, no batch
        ((2, 5, 8), (2, 7, 8), (2, 7, 3)),  # batched, L != S, d_k != d_v
        ((2, 3, 4, 16), (2, 3, 6, 16), (2, 3, 6, 16)),  # (batch, heads, L, d)
    ]
    for shapes in cases:
        q, k, v = (torch.randn(s) for s in shapes)
        what, out, weights = sa.sdpa_call(student, q, k, v)
        _compare(sa, reference, what, out, weights, q, k, v)


@pytest.mark.points(1)
def test_sdpa_weights_rows_sum_to_one(student, sa):
    """Each query's attention weights are non-negative and sum to 1 over the keys"""
    for shapes in [((2, 4, 8), (2, 9, 8), (2, 9, 5)), ((3, 6, 4), (3, 6, 4), (3, 6, 4))]:
        q, k, v = (torch.randn(s) for s in shapes)
        what, _, weights = sa.sdpa_call(student, q, k, v)
        assert not bool((weights < 0).any()), (
            f"{what} gives negative attention weights: weights are a softmax, so they lie in [0, 1]")
        sa.expect_rows_sum_to_one(weights, what, **sa.tol(q.dtype))


@pytest.mark.points(2)
def test_sdpa_padding_mask(student, reference, sa):
    """A boolean mask (True = may attend) blocks keys: padding masks and arbitrary masks, vs torch"""
    q, k, v = torch.randn(3, 5, 8), torch.randn(3, 7, 8), torch.randn(3, 7, 4)
    padding = sa.padding_mask([7, 4, 2], 7)[:, None, :]  # (B, 1, S): the same keys for every query
    pattern = torch.rand(5, 7) < 0.5
    pattern[torch.arange(5), torch.randint(0, 7, (5,))] = True  # every query keeps at least one key
    for mask in (padding, pattern):
        what, out, weights = sa.sdpa_call(student, q, k, v, mask=mask)
        _compare(sa, reference, what, out, weights, q, k, v, mask=mask)
        sa.expect_masked_zero(weights, mask, what)
        sa.expect_rows_sum_to_one(weights, what, **sa.tol(q.dtype))


@pytest.mark.points(1)
def test_sdpa_causal(student, reference, sa):
    """is_causal=True: query i attends keys 0..i only, as torch's is_causal (also when L != S)"""
    for length, keys in ((6, 6), (4, 7), (7, 4)):  # a square case hides a triangle aligned the wrong way
        q, k, v = torch.randn(2, length, 8), torch.randn(2, keys, 8), torch.randn(2, keys, 5)
        what, out, weights = sa.sdpa_call(student, q, k, v, is_causal=True)
        _compare(sa, reference, what, out, weights, q, k, v, is_causal=True)
        sa.expect_masked_zero(weights, torch.ones(length, keys, dtype=torch.bool).tril(), what)
