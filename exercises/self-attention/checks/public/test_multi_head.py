"""Public checks: multi-head attention built on your attention, compared with torch.nn.MultiheadAttention."""

import pytest
import torch

from grader.testing import expect_type

ADVICE = ("output differs from torch.nn.MultiheadAttention: project with x @ W.T + b, split d_model into "
          "num_heads heads of d_head, attend per head, concatenate, then apply w_o, b_o")
WEIGHTS_ADVICE = ("the per-head attention weights differ from torch.nn.MultiheadAttention's: return the "
                  "(batch, num_heads, L, S) weights of your per-head attention")


def _compare(sa, reference, what, out, weights, d_model, num_heads, w, query, key, value, torch_masks, **kwargs):
    tol = sa.tol(query.dtype)
    t_out, t_weights = sa.torch_mha(w, num_heads, query, key, value, **torch_masks)
    diagnose = sa.mha_diagnose(query, key, value, w, num_heads, **kwargs)
    sa.expect_close(out, t_out, name=f"output of {what} vs torch", advice=ADVICE, diagnose=diagnose, **tol)
    ref = reference.MultiHeadAttention(d_model, num_heads)
    ref.load_weights(w)
    ref_out, ref_weights = ref.forward(query, key, value, **kwargs)
    sa.expect_close(out, ref_out, name=f"output of {what} vs the reference", advice=ADVICE, diagnose=diagnose, **tol)
    weights_diagnose = sa.mha_diagnose(query, key, value, w, num_heads, which=1, **kwargs)
    sa.expect_close(weights, t_weights, name=f"attention weights of {what} vs torch", advice=WEIGHTS_ADVICE,
                    diagnose=weights_diagnose, **tol)
    sa.expect_close(weights, ref_weights, name=f"attention weights of {what} vs the reference",
                    advice=WEIGHTS_ADVICE, diagnose=weights_diagnose, **tol)


@pytest.mark.points(2)
def test_mha_matches_torch(student, reference, sa):
    """Self-attention with 4 heads matches torch.nn.MultiheadAttention (float32, no mask)"""
    d_model, num_heads = 16, 4
    w = sa.make_weights(d_model)
    x = torch.randn(2, 5, d_model)
    what, out, weights = sa.mha_call(student, d_model, num_heads, w, x, x, x)
    _compare(sa, reference, what, out, weights, d_model, num_heads, w, x, x, x, {})
    sa.expect_rows_sum_to_one(weights, what, **sa.tol(x.dtype))
    # the same object again, on other inputs: nothing may carry over from the first call
    mha = student.new("MultiHeadAttention", d_model, num_heads)
    mha.load_weights(dict(w))
    mha.forward(x, x, x)
    other = torch.randn(2, 5, d_model)  # the same shape: a stale result must show as wrong values, not a crash
    again = mha.forward(other, other, other)
    expect_type(again, (tuple, list), "the value returned by a second forward")
    assert len(again) == 2, "a second forward should return (output, attention_weights) too"
    t_out, _ = sa.torch_mha(w, num_heads, other, other, other)
    sa.expect_close(again[0], t_out, name="output of a second forward, on other inputs, vs torch", **sa.tol(x.dtype),
                    advice=("a second forward on the same object, with other inputs, differs from torch although "
                            "the first was right: forward must not keep anything from an earlier call (projected "
                            "keys or values, a cache, weights changed in place)"))


@pytest.mark.points(1)
def test_mha_cross_attention_with_padding(student, reference, sa):
    """Cross-attention (L != S, key != value) with a key padding mask matches torch.nn.MultiheadAttention"""
    d_model, num_heads = 12, 3
    w = sa.make_weights(d_model)
    query, key, value = torch.randn(2, 4, d_model), torch.randn(2, 6, d_model), torch.randn(2, 6, d_model)
    valid = sa.padding_mask([6, 3], 6)  # (B, S), True = real token
    mask = valid[:, None, None, :]  # (B, 1, 1, S): broadcasts over heads and queries
    what, out, weights = sa.mha_call(student, d_model, num_heads, w, query, key, value, mask=mask)
    # torch's key_padding_mask is True where a key must be IGNORED: the opposite of this exercise's mask
    _compare(sa, reference, what, out, weights, d_model, num_heads, w, query, key, value,
             {"key_padding_mask": ~valid}, mask=mask)
    sa.expect_masked_zero(weights, mask, what)
