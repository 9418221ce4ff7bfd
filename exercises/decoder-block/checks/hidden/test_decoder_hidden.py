"""Hidden checks of DecoderBlock: other sizes and option combinations, fully masked rows, the distribution of
dropout, float64, the cache across sequences, and bad arguments."""

import math

import pytest
import torch

from grader.testing import StudentCodeError, record

CONFIGS = [  # (config, causal, target lengths or None, memory lengths or None)
    ({"d_model": 32, "num_heads": 8, "d_ff": 64, "dropout": 0.2, "activation": "gelu", "norm_first": True,
      "eps": 1e-6}, True, [9, 7, 3, 1], [6, 2, 5, 4]),
    ({"d_model": 24, "num_heads": 3, "d_ff": 40, "dropout": 0.1, "activation": "relu", "norm_first": False,
      "eps": 0.1}, False, [9, 5, 9, 2], None),
    ({"d_model": 8, "num_heads": 1, "d_ff": 16, "dropout": 0.0, "activation": "gelu", "norm_first": True,
      "eps": 1e-5}, False, None, [6, 6, 1, 3]),
    ({"d_model": 20, "num_heads": 5, "d_ff": 20, "dropout": 0.3, "activation": "relu", "norm_first": False,
      "eps": 0.5}, True, None, None),
]


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_hidden_configs(student, reference, dec, targets):
    """other sizes, head counts, activations, eps, causal or not, and padding combinations equal torch"""
    for i, (config, causal, tgt_lengths, mem_lengths) in enumerate(CONFIGS):
        layer = dec.layer_for(config, 10 + i)
        block = dec.student_block(student, layer, config)
        x, memory = torch.randn(4, 9, config["d_model"]) * 2.0, torch.randn(4, 6, config["d_model"])
        tgt_pad = None if tgt_lengths is None else dec.padding(tgt_lengths, 9)
        mem_pad = None if mem_lengths is None else dec.padding(mem_lengths, 6)
        out = block.forward(x, memory, causal=causal, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad)
        advice = dec.diagnose(out, layer, x, memory, causal=causal, tgt_pad=tgt_pad, mem_pad=mem_pad) or (
            f"configuration {i + 1} differs (num_heads={config['num_heads']}, activation={config['activation']!r}, "
            f"norm_first={config['norm_first']}, layer_norm_eps={config['eps']}, causal={causal}, padding masks: "
            f"target {'yes' if tgt_pad is not None else 'no'}, memory {'yes' if mem_pad is not None else 'no'}): "
            "do you use every constructor and forward argument?")
        name = f"hidden configuration {i + 1}"
        dec.assert_block_output(out, dec.expected(layer, x, memory, causal, tgt_pad, mem_pad), tgt_pad=tgt_pad,
                                targets=targets, name=name, advice=advice)
        ref = reference.DecoderBlock(config["d_model"], config["num_heads"], config["d_ff"], config["dropout"],
                                     config["activation"], config["norm_first"], config["eps"])
        ref.load_torch_weights(dec.state_of(layer))
        with torch.no_grad():
            want = ref.eval().forward(x, memory, causal, tgt_pad, mem_pad)
        dec.assert_block_output(out, want, tgt_pad=tgt_pad, targets=targets, name=f"{name} (vs the reference)",
                                advice=advice)


@pytest.mark.points(1)
def test_fully_masked_rows_stay_finite(student, dec, targets):
    """queries with no key left (left padding under the causal mask, an all-padding memory) give no NaN"""
    for norm_first in (False, True):
        config = {"d_model": 16, "num_heads": 4, "d_ff": 32, "norm_first": norm_first}
        layer = dec.layer_for(config, 20)
        block = dec.student_block(student, layer, config)
        x, memory = torch.randn(3, 5, 16), torch.randn(3, 4, 16)
        tgt_pad = dec.padding([5, 3, 5], 5, left=True)  # sequence 1: positions 0, 1 are padding, on the left
        mem_pad = dec.padding([4, 2, 0], 4)              # sequence 2: the memory is all padding
        out = block.forward(x, memory, causal=True, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad)
        dec.expect_output(out, (3, 5, 16), "forward with fully masked rows")
        bad = (~torch.isfinite(out)).any(dim=-1)
        assert not bool(bad.any()), (
            f"forward returned NaN/Inf at (sequence, position) {bad.nonzero().tolist()} (norm_first={norm_first}): "
            "a query whose keys are all blocked has softmax(-inf, ..., -inf) = NaN; give such rows all-zero "
            "weights (e.g. weights.masked_fill(blocked.all(-1, keepdim=True), 0)), as torch does")
        dec.assert_block_output(out, dec.expected(layer, x, memory, True, tgt_pad, mem_pad), tgt_pad=tgt_pad,
                                targets=targets, name=f"forward with fully masked rows (norm_first={norm_first})",
                                advice=(
            "the rows with no key left differ from torch: their attention weights must be all zero, so an "
            "all-padding memory adds only the cross-attention's output bias (a large negative score instead of "
            "-inf averages the padding's values instead)"))


def _moments(y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per element, over the draws (axis 0): mean, variance, and the standard error of the variance squared."""
    mean, var = y.mean(0), y.var(0)
    fourth = ((y - mean) ** 4).mean(0)
    return mean, var, (fourth - var**2).clamp_min(1e-30) / y.shape[0]


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_dropout_distribution(student, dec, targets, seed):
    """training-mode outputs have torch's distribution: per-element mean and variance within 5.5 sigma"""
    draws, bound = int(targets["dropout_draws"]), float(targets["dropout_sigma"])
    worst: dict[str, float] = {}
    for norm_first in (True, False):
        config = {"d_model": 8, "num_heads": 2, "d_ff": 16, "dropout": 0.3, "norm_first": norm_first}
        layer = dec.layer_for(config, 30)
        block = dec.student_block(student, layer, config)
        block.handle("train")
        layer.train()
        # one sequence repeated `draws` times: every copy draws its own dropout masks, on both sides
        x = torch.randn(1, 3, 8).expand(draws, 3, 8).contiguous()
        memory = torch.randn(1, 4, 8).expand(draws, 4, 8).contiguous()
        got = dec.expect_output(block.forward(x, memory, causal=True), (draws, 3, 8), "forward in train mode")
        torch.manual_seed(seed + int(norm_first))
        with torch.no_grad():
            want = layer(x, memory, tgt_mask=dec.causal_mask(3))
        (m_s, v_s, e_s), (m_t, v_t, e_t) = _moments(got.double()), _moments(want.double())
        z_mean = ((m_s - m_t) / torch.sqrt((v_s + v_t) / draws).clamp_min(1e-30)).abs().max().item()
        z_var = ((v_s - v_t) / torch.sqrt(e_s + e_t)).abs().max().item()
        worst[f"norm_first={norm_first}"] = max(z_mean, z_var)
        record(f"z_mean (norm_first={norm_first})", round(z_mean, 2))
        record(f"z_var (norm_first={norm_first})", round(z_var, 2))
        what = "means" if z_mean > bound else "variances"
        assert max(z_mean, z_var) <= bound and math.isfinite(z_mean + z_var), (
            f"in train mode (dropout=0.3, norm_first={norm_first}) the {what} of your outputs over {draws} draws "
            f"differ from torch's by {max(z_mean, z_var):.1f} sigma (the bound is {bound} sigma: a correct block "
            "fails this check less than once in 10^5 gradings): dropout must be inverted (kept values scaled by "
            "1/(1-p)), with p the probability of DROPPING, in all six places: both attentions' weights, after "
            "the activation, after each of the three sublayers")
    record("worst_sigma", worst)


@pytest.mark.points(1)
def test_float64_matches_torch(student, dec, targets):
    """after block.double(), float64 inputs give float64 outputs equal to torch's (pre-norm, both masks)"""
    config = {"d_model": 16, "num_heads": 2, "d_ff": 24, "dropout": 0.1, "norm_first": True}
    layer = dec.layer_for(config, 40, torch.float64)
    block = dec.student_block(student, layer, config, double=True)
    x, memory = torch.randn(2, 6, 16, dtype=torch.float64), torch.randn(2, 3, 16, dtype=torch.float64)
    tgt_pad, mem_pad = dec.padding([6, 4], 6), dec.padding([3, 2], 3)
    out = block.forward(x, memory, causal=True, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64, (
        f"forward on float64 input returned {getattr(out, 'dtype', type(out).__name__)}: keep the input's dtype "
        "(no .float(), no float32 constants or masks)")
    advice = dec.diagnose(out, layer, x, memory, tgt_pad=tgt_pad, mem_pad=mem_pad) or (
        "float64 results differ from torch beyond 1e-10: if the float32 checks pass, some step is done in float32 "
        "(a .float(), a float32 constant or mask)")
    dec.assert_block_output(out, dec.expected(layer, x, memory, True, tgt_pad, mem_pad), tgt_pad=tgt_pad,
                            targets=targets, name="float64 forward", advice=advice)


@pytest.mark.points(1)
def test_cache_across_sequences(student, dec, targets):
    """reset_cache starts afresh (a new memory too), and forward calls between steps leave the cache alone"""
    steps = int(targets["cache_steps"])
    config = {"d_model": 16, "num_heads": 4, "d_ff": 32, "norm_first": True}
    layer = dec.layer_for(config, 50)
    block = dec.student_block(student, layer, config)
    batch = 3
    for i in range(2):  # two sequences, each with its own memory
        x, memory = torch.randn(batch, steps, 16), torch.randn(batch, 5, 16)
        mem_pad = dec.padding([[5, 2, 4], [3, 5, 1]][i], 5)
        want = dec.expected(layer, x, memory, True, None, mem_pad)
        block.reset_cache()
        for t in range(steps):
            y = block.decode_step(x[:, t:t + 1], memory, memory_key_padding_mask=mem_pad)
            dec.expect_output(y, (batch, 1, 16), f"decode_step (sequence {i + 1}, position {t})")
            if i == 1:
                why = "after reset_cache(): it must forget everything, the memory's keys and values included"
            elif t >= 2:
                why = "after a forward() call in the middle of decoding: forward must neither read nor change the cache"
            else:
                why = "from the first steps on: see test_kv_cache_matches_full_forward"
            advice = f"decode_step differs from the causal forward (sequence {i + 1}, position {t}) {why}"
            dec.assert_block_output(y, want[:, t:t + 1], targets=targets, advice=advice,
                                    name=f"decode_step, sequence {i + 1}, position {t}")
            if t == 1:  # an unrelated full forward in the middle of decoding
                block.forward(torch.randn(batch, 4, 16), torch.randn(batch, 3, 16), causal=True)


@pytest.mark.points(1)
def test_bad_arguments_raise(student):
    """DecoderBlock raises ValueError when num_heads does not divide d_model or the activation is unknown"""
    for args, kwargs, why in (((10, 3, 16), {}, "num_heads=3 does not divide d_model=10"),
                              ((16, 4, 32), {"activation": "tanh"}, "activation='tanh' is neither relu nor gelu")):
        with pytest.raises(StudentCodeError) as err:
            student.new("DecoderBlock", *args, **kwargs)
            pytest.fail(f"DecoderBlock{args} with {kwargs or 'the defaults'} was accepted: raise ValueError when {why}")
        assert err.value.exc_type == "ValueError", (
            f"DecoderBlock raised {err.value.exc_type} when {why}: raise ValueError")
