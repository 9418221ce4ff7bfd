"""Public checks of EncoderBlock against nn.TransformerEncoderLayer (batch first, weights copied in)."""

import pytest
import torch

SMALL = {"d_model": 16, "num_heads": 4, "d_ff": 32, "dropout": 0.1}
ATTENTION = ("check the attention: q, k, v are the three d_model chunks of x @ in_proj_weight.T + in_proj_bias; "
             "heads are split with view(batch, seq, h, d_head).transpose(1, 2); scores are divided by sqrt(d_head)")
DRAWS = 4000  # copies of one input in a batch: each draws its own dropout masks


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
        advice = lambda out=out, x=x, config=config, seed=seed: (  # noqa: E731
            enc.diagnose(student, out, x, config, seed, targets) or f"{enc.POST_NORM}; {ATTENTION}")
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
    advice = lambda: enc.diagnose(student, out, x, config, 2, targets) or (  # noqa: E731
        f"{enc.PRE_NORM} (no LayerNorm after the residual sums); {ATTENTION}")
    enc.assert_block_output(out, enc.expected(layer, x), name="forward (pre-norm)", advice=advice, targets=targets)


def _unpadded_advice(student, block, enc, x, want, config, targets):
    """Sequence 0 has no padding yet differs: another sequence's mask reaches it, or the block itself is wrong."""
    alone = block.forward(x[:1])
    if isinstance(alone, torch.Tensor) and alone.shape == x[:1].shape and torch.allclose(
            alone, want[:1], **enc.tol(targets, want.dtype)):
        return ("sequence 0 has no padding and is right on its own, but not in the batch: the padding of the "
                "OTHER sequences reaches it; the mask is (batch, seq): hide each sequence's own padded keys with "
                "mask[:, None, None, :] against scores of shape (batch, heads, seq, seq)")
    named = enc.diagnose(student, alone, x[:1], config, 3, targets)
    test = "test_pre_norm_matches_torch" if config["norm_first"] else "test_post_norm_matches_torch"
    return "sequence 0 has no padding and already differs from torch: " + (
        named or f"with norm_first={config['norm_first']} the block itself is wrong: get {test} right first")


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
            advice = _unpadded_advice(student, block, enc, x, want, config, targets)
        enc.assert_block_output(out, want, mask=mask, targets=targets, name="forward(x, key_padding_mask)",
                                advice=advice)


def _draws(block, x):
    out = block.forward(x.expand(DRAWS, *x.shape[1:]).contiguous())
    assert isinstance(out, torch.Tensor) and out.shape == (DRAWS, *x.shape[1:]), (
        "forward in train mode: wrong type or shape")
    return out.to(torch.float64)


def _same_distribution(student_draws, torch_draws, config):
    """Mean and spread of the outputs over DRAWS dropout draws, against torch's (both measured, not assumed).

    A correct block's mean differs from torch's by about 1 standard error per output (RMS), and its spread is
    within 1 %; the limits (2 standard errors RMS, spread within 7 %) sit more than ten standard errors away.
    Unscaled dropout moves the mean by tens of standard errors; a missing (or extra) dropout changes the spread.
    """
    n = student_draws.shape[0]
    mean_s, mean_t = student_draws.mean(0), torch_draws.mean(0)
    var_s, var_t = student_draws.var(0), torch_draws.var(0)
    rms_z = float(((mean_s - mean_t) ** 2 / ((var_s + var_t) / n).clamp_min(1e-30)).mean().sqrt())
    spread = float(var_s.mean() / var_t.mean().clamp_min(1e-30))
    where = f"with dropout={config['dropout']} and norm_first={config['norm_first']}, over {n} draws"
    mean_off = (f"{where} the mean of your train-mode outputs is off torch's by {rms_z:.1f} standard errors (RMS; "
                "a correct block: about 1)")
    assert rms_z <= 10.0, (
        f"{mean_off}: dropout must keep the expected value, so kept entries are scaled by 1 / (1 - p) (F.dropout "
        "does this; a bare random mask does not)")
    assert 0.93 <= spread <= 1.07, (
        f"{where} your train-mode outputs spread {spread:.2f} times as much as torch's (variance ratio; a correct "
        "block: 1.00 +- 0.01): dropout is missing (or added) somewhere: apply it to the attention weights, after "
        "the activation, and to each sublayer's output before its residual sum, all with probability p")
    assert rms_z <= 2.0, (
        f"{mean_off}: apply dropout exactly where torch does (attention weights, after the activation, each "
        "sublayer's output before its residual sum), with F.dropout(t, p, self.training)")


@pytest.mark.points(1)
def test_dropout_only_in_training(student, enc, targets):
    """dropout is off after eval() and, after train(), draws outputs distributed as torch's (mean and spread)"""
    config = {**SMALL, "dropout": 0.5}
    layer = enc.torch_layer(**config, seed=4)
    block = enc.student_block(student, layer, config)
    x = torch.randn(2, 5, 16)
    first, second = block.forward(x), block.forward(x)
    enc.expect_output(first, tuple(x.shape), "forward in eval mode")
    want = enc.expected(layer, x)
    advice = ("two eval-mode calls on the same input differ: dropout is still active in eval mode; use "
              "F.dropout(t, p, self.training) or nn.Dropout")
    if torch.allclose(first, want, **enc.tol(targets, x.dtype)):
        advice = ("the first eval-mode call equals torch but the second call on the same input does not: forward "
                  "changes the block's own state (an in-place operation on a weight, or a value kept from the "
                  "last call); leave parameters untouched in forward")
    # only the behaviour of dropout is graded here; the values themselves are the other checks' business
    enc.assert_block_output(second, first, name="a second forward in eval mode", targets=targets, advice=advice)
    block.handle("train")
    trained = [block.forward(x) for _ in range(2)]
    for out in trained:
        assert isinstance(out, torch.Tensor) and out.shape == x.shape, "forward in train mode: wrong type or shape"
    assert not torch.allclose(trained[0], first, atol=1e-4), (
        "in train mode (dropout=0.5) the output equals the eval-mode output: apply dropout when self.training "
        "(attention weights, after the activation, and after each sublayer)")
    assert not torch.allclose(trained[0], trained[1], atol=1e-4), (
        "two train-mode calls gave the same output: dropout must draw a fresh random mask every call")
    for norm_first in (True, False):  # pre-norm first: its output is linear in each dropout, so a missing one
        config = {**SMALL, "dropout": 0.5, "norm_first": norm_first}  # shows in the spread, not in the mean
        layer = enc.torch_layer(**config, seed=5)
        block = enc.student_block(student, layer, config)
        one = torch.randn(1, 5, 16)
        evaluated = block.forward(one)
        if not (isinstance(evaluated, torch.Tensor) and evaluated.shape == one.shape and torch.allclose(
                evaluated, enc.expected(layer, one), **enc.tol(targets, one.dtype))):
            continue  # a block already wrong without dropout is the other checks' business, not this one's
        block.handle("train")
        with torch.enable_grad():
            reference_draws = layer.train()(one.expand(DRAWS, 5, 16).contiguous()).detach().to(torch.float64)
        _same_distribution(_draws(block, one), reference_draws, config)
