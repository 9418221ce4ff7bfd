"""Hidden checks: float64 accuracy, many leading dims, masks combined with is_causal, head counts, bad sizes."""

import pytest
import torch

from grader.testing import StudentCodeError

ADVICE = "output differs from softmax(q k^T / sqrt(d_k)) v: check the scale, the softmax axis (keys) and the mask"
MHA_ADVICE = ("output differs from torch.nn.MultiheadAttention: project with x @ W.T + b, split into heads, "
              "attend per head, concatenate, then apply w_o, b_o")


@pytest.mark.points(1)
def test_sdpa_float64_many_leading_dims(student, reference, sa):
    """float64 inputs with three leading dims give float64-accurate results"""
    q = torch.randn(2, 3, 2, 5, 8, dtype=torch.float64)
    k = torch.randn(2, 3, 2, 6, 8, dtype=torch.float64)
    v = torch.randn(2, 3, 2, 6, 5, dtype=torch.float64)
    what, out, weights = sa.sdpa_call(student, q, k, v)
    ref_out, ref_weights = reference.scaled_dot_product_attention(q, k, v)
    tol = sa.tol(torch.float64)
    diagnose = sa.float64_diagnose(ref_out, sa.sdpa_diagnose(q, k, v))
    sa.expect_close(out, sa.torch_sdpa(q, k, v), name=f"output of {what} vs torch", advice=ADVICE,
                    diagnose=diagnose, **tol)
    sa.expect_close(out, ref_out, name=f"output of {what} vs the reference", advice=ADVICE, diagnose=diagnose, **tol)
    sa.expect_close(weights, ref_weights, name=f"attention weights of {what}", advice=ADVICE,
                    diagnose=sa.float64_diagnose(ref_weights, sa.sdpa_diagnose(q, k, v, which=1)), **tol)


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_sdpa_mask_with_causal(student, reference, sa):
    """A padding mask together with is_causal=True: a key is used only when both allow it"""
    q, k, v = torch.randn(2, 6, 8), torch.randn(2, 6, 8), torch.randn(2, 6, 4)
    mask = sa.padding_mask([6, 4], 6)[:, None, :]
    advice = ("with both a mask and is_causal=True, a query may attend a key only where the mask is True AND "
              "the key is not in its future (combine them with &)")
    _mask_with_causal(student, reference, sa, q, k, v, mask, advice)
    # fewer queries than keys (decoding with a cache): the triangle starts at the top left, as torch's
    q, k, v = torch.randn(2, 3, 8), torch.randn(2, 7, 8), torch.randn(2, 7, 4)
    _mask_with_causal(student, reference, sa, q, k, v, sa.padding_mask([7, 5], 7)[:, None, :], advice)


def _mask_with_causal(student, reference, sa, q, k, v, mask, advice):
    what, out, weights = sa.sdpa_call(student, q, k, v, mask=mask, is_causal=True)
    tol = sa.tol(q.dtype)
    diagnose = sa.sdpa_diagnose(q, k, v, mask=mask, is_causal=True)
    ref_out, ref_weights = reference.scaled_dot_product_attention(q, k, v, mask=mask, is_causal=True)
    sa.expect_close(out, sa.torch_sdpa(q, k, v, mask=mask, is_causal=True), name=f"output of {what} vs torch",
                    advice=advice, diagnose=diagnose, **tol)
    sa.expect_close(out, ref_out, name=f"output of {what}", advice=advice, diagnose=diagnose, **tol)
    sa.expect_close(weights, ref_weights, name=f"attention weights of {what}", advice=advice,
                    diagnose=sa.sdpa_diagnose(q, k, v, mask=mask, is_causal=True, which=1), **tol)
    sa.expect_masked_zero(weights, mask & torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).tril(), what)


@pytest.mark.points(1)
def test_mha_float64_causal(student, reference, sa):
    """float64 causal self-attention with padding matches torch.nn.MultiheadAttention to float64 accuracy"""
    d_model, num_heads, length = 8, 2, 5
    w = sa.make_weights(d_model, torch.float64)
    x = torch.randn(3, length, d_model, dtype=torch.float64)
    valid = sa.padding_mask([5, 3, 1], length)
    mask = valid[:, None, None, :]
    what, out, weights = sa.mha_call(student, d_model, num_heads, w, x, x, x, mask=mask, is_causal=True)
    tol = sa.tol(torch.float64)
    future = torch.ones(length, length, dtype=torch.bool).triu(1)  # torch's attn_mask: True = may NOT attend
    t_out, t_weights = sa.torch_mha(w, num_heads, x, x, x, attn_mask=future, key_padding_mask=~valid)
    diagnose = sa.float64_diagnose(t_out, sa.mha_diagnose(x, x, x, w, num_heads, mask=mask, is_causal=True))
    sa.expect_close(out, t_out, name=f"output of {what} vs torch", advice=MHA_ADVICE, diagnose=diagnose, **tol)
    ref = reference.MultiHeadAttention(d_model, num_heads)
    ref.load_weights(w)
    ref_out, _ = ref.forward(x, x, x, mask=mask, is_causal=True)
    sa.expect_close(out, ref_out, name=f"output of {what} vs the reference", advice=MHA_ADVICE, diagnose=diagnose,
                    **tol)
    sa.expect_close(weights, t_weights, name=f"attention weights of {what} vs torch", advice=MHA_ADVICE,
                    diagnose=sa.float64_diagnose(
                        t_weights, sa.mha_diagnose(x, x, x, w, num_heads, mask=mask, is_causal=True, which=1)), **tol)
    sa.expect_masked_zero(weights, mask & ~future, what)


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_mha_head_counts(student, reference, sa):
    """1, 2 and 8 heads over d_model = 8 (down to d_head = 1) match torch.nn.MultiheadAttention"""
    d_model = 8
    w = sa.make_weights(d_model)
    x = torch.randn(2, 4, d_model)
    for num_heads in (1, 2, 8):
        what, out, weights = sa.mha_call(student, d_model, num_heads, w, x, x, x)
        t_out, t_weights = sa.torch_mha(w, num_heads, x, x, x)
        diagnose = sa.mha_diagnose(x, x, x, w, num_heads)
        sa.expect_close(out, t_out, name=f"output of {what} vs torch", advice=MHA_ADVICE + f" ({num_heads} heads)",
                        diagnose=diagnose, **sa.tol(x.dtype))
        sa.expect_close(weights, t_weights, name=f"attention weights of {what} vs torch",
                        advice=MHA_ADVICE + f" ({num_heads} heads)",
                        diagnose=sa.mha_diagnose(x, x, x, w, num_heads, which=1), **sa.tol(x.dtype))


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_mha_rejects_indivisible_heads(student):
    """MultiHeadAttention(d_model, num_heads) raises ValueError when num_heads does not divide d_model"""
    for d_model, num_heads in ((10, 3), (12, 5)):
        what = f"MultiHeadAttention({d_model}, {num_heads})"
        with pytest.raises(StudentCodeError) as info:
            student.new("MultiHeadAttention", d_model, num_heads)
            raise AssertionError(f"{what} was built: heads of d_model / num_heads features need num_heads to "
                                 "divide d_model; check it in __init__ and raise ValueError")
        assert info.value.exc_type != "NotImplementedError", f"{what} is not implemented yet (NotImplementedError)"
        assert info.value.exc_type == "ValueError", (
            f"{what} raised {info.value.exc_type}, expected ValueError: check d_model % num_heads == 0 in __init__ "
            "and raise ValueError with a message saying so")
