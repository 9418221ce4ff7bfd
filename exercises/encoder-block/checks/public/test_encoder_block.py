"""Public checks of EncoderBlock against nn.TransformerEncoderLayer (batch first, weights copied in)."""

import pytest
import torch

SMALL = {"d_model": 16, "num_heads": 4, "d_ff": 32, "dropout": 0.1}
POST_NORM = ("post-norm is x = LayerNorm1(x + Dropout(SelfAttention(x))), "
             "then x = LayerNorm2(x + Dropout(FeedForward(x)))")
PRE_NORM = ("pre-norm is x = x + Dropout(SelfAttention(LayerNorm1(x))), "
            "then x = x + Dropout(FeedForward(LayerNorm2(x)))")
ATTENTION = ("check the attention: q, k, v are the three d_model chunks of x @ in_proj_weight.T + in_proj_bias; "
             "heads are split with view(batch, seq, h, d_head).transpose(1, 2); scores are divided by sqrt(d_head)")


def _diagnose(student_out, x, config, seed, enc, targets):
    """Name the mistake when the output is what the other placement of LayerNorm gives."""
    other = enc.torch_layer(**{**config, "norm_first": not config.get("norm_first", False)}, seed=seed)
    comparable = isinstance(student_out, torch.Tensor) and student_out.shape == x.shape and student_out.dtype == x.dtype
    if comparable and torch.allclose(student_out, enc.expected(other, x), **enc.tol(targets, x.dtype)):
        return "your block computes the other placement of LayerNorm: " + (
            PRE_NORM if config.get("norm_first") else POST_NORM)
    return None


@pytest.mark.points(1)
def test_block_output_shape(student, enc, targets):
    """forward returns one (batch, seq, d_model) tensor in x's dtype"""
    layer = enc.torch_layer(**SMALL)
    block = enc.student_block(student, layer, SMALL)
    x = torch.randn(2, 5, 16)
    out = block.forward(x)
    assert isinstance(out, torch.Tensor), (
        f"forward should return a torch.Tensor, got {type(out).__name__}: return the block's output only "
        "(not the attention weights)")
    assert tuple(out.shape) == (2, 5, 16), f"forward returned shape {tuple(out.shape)}, expected (2, 5, 16)"
    assert out.dtype == torch.float32, f"forward returned {out.dtype} for a float32 input"
    assert bool(torch.isfinite(out).all()), "forward returned NaN or Inf without any padding mask"


@pytest.mark.points(2)
def test_post_norm_matches_torch(student, enc, targets):
    """post-norm block (the paper's) equals nn.TransformerEncoderLayer in eval mode"""
    for seed, act in ((0, "relu"), (1, "gelu")):
        config = {**SMALL, "activation": act}
        layer = enc.torch_layer(**config, seed=seed)
        block = enc.student_block(student, layer, config)
        x = torch.randn(3, 6, 16)
        out = block.forward(x)
        advice = _diagnose(out, x, config, seed, enc, targets) or f"{POST_NORM}; {ATTENTION}"
        enc.assert_block_output(out, enc.expected(layer, x), name=f"forward ({act}, post-norm)", advice=advice,
                                targets=targets)


@pytest.mark.points(1)
def test_pre_norm_matches_torch(student, enc, targets):
    """pre-norm block (norm_first=True) equals nn.TransformerEncoderLayer(norm_first=True)"""
    config = {**SMALL, "norm_first": True}
    layer = enc.torch_layer(**config, seed=2)
    block = enc.student_block(student, layer, config)
    x = torch.randn(2, 7, 16)
    out = block.forward(x)
    advice = _diagnose(out, x, config, 2, enc, targets) or f"{PRE_NORM} (no LayerNorm after the residual sums)"
    enc.assert_block_output(out, enc.expected(layer, x), name="forward (pre-norm)", advice=advice, targets=targets)


@pytest.mark.points(2)
def test_padding_mask_matches_torch(student, enc, targets):
    """key_padding_mask (True = padding) hides padded keys, as src_key_padding_mask does"""
    for norm_first in (False, True):
        config = {**SMALL, "norm_first": norm_first}
        layer = enc.torch_layer(**config, seed=3)
        block = enc.student_block(student, layer, config)
        x = torch.randn(3, 6, 16)
        mask = enc.random_mask([6, 4, 2], 6)
        out = block.forward(x, key_padding_mask=mask)
        want = enc.expected(layer, x, mask)
        enc.expect_output(out, tuple(want.shape), "forward(x, key_padding_mask)")
        advice = ("True in key_padding_mask marks PADDING: give those KEYS a score of -inf before the softmax "
                  "(scores.masked_fill(mask[:, None, None, :], float('-inf'))), for every query")
        if not torch.allclose(out[0].to(want.dtype), want[0], **enc.tol(targets, want.dtype)):
            advice = ("sequence 0 has no padding and already differs from torch: get test_post_norm_matches_torch "
                      "and test_pre_norm_matches_torch right first")
        enc.assert_block_output(out, want, mask=mask, targets=targets, name="forward(x, key_padding_mask)",
                                advice=advice)


@pytest.mark.points(1)
def test_dropout_only_in_training(student, enc, targets):
    """dropout is active after train() and off after eval(): eval outputs are deterministic"""
    config = {**SMALL, "dropout": 0.5}
    layer = enc.torch_layer(**config, seed=4)
    block = enc.student_block(student, layer, config)
    x = torch.randn(2, 5, 16)
    first, second = block.forward(x), block.forward(x)
    enc.expect_output(first, tuple(x.shape), "forward in eval mode")
    # only the behaviour of dropout is graded here; the values themselves are the other checks' business
    enc.assert_block_output(second, first, name="a second forward in eval mode", targets=targets,
                            advice="two eval-mode calls on the same input differ: dropout is still active in eval "
                                   "mode; use F.dropout(t, p, self.training) or nn.Dropout")
    block.handle("train")
    trained = [block.forward(x) for _ in range(2)]
    for out in trained:
        assert isinstance(out, torch.Tensor) and out.shape == x.shape, "forward in train mode: wrong type or shape"
    assert not torch.allclose(trained[0], first, atol=1e-4), (
        "in train mode (dropout=0.5) the output equals the eval-mode output: apply dropout when self.training "
        "(attention weights, after the activation, and after each sublayer)")
    assert not torch.allclose(trained[0], trained[1], atol=1e-4), (
        "two train-mode calls gave the same output: dropout must draw a fresh random mask every call")
