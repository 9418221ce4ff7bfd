"""Public checks of DecoderBlock against nn.TransformerDecoderLayer (batch first, weights copied in).

The target length T and the memory length S differ in every check, so that a transposed mask or a
cross-attention that takes its queries from the memory cannot pass by accident.
"""

import pytest
import torch

SMALL = {"d_model": 16, "num_heads": 4, "d_ff": 32, "dropout": 0.1}
ATTENTION = ("check the attention: q from the decoder side, k and v from the memory (cross) or the decoder "
             "(self), each the matching d_model chunk of in_proj_weight/in_proj_bias; heads split with "
             "view(batch, len, h, d_head).transpose(1, 2); scores divided by sqrt(d_head)")
POST_NORM = ("post-norm is x = norm1(x + SelfAttn(x)); x = norm2(x + CrossAttn(x, memory)); "
             "x = norm3(x + FeedForward(x))")
PRE_NORM = ("pre-norm is x = x + SelfAttn(norm1(x)); x = x + CrossAttn(norm2(x), memory); "
            "x = x + FeedForward(norm3(x)), with no LayerNorm on the memory and none after the sums")

# PyTorch's own test of TransformerDecoderLayer: d_model 4, 2 heads, d_ff 16, every parameter set to
# cos(arange(numel)).view(shape); inputs and outputs written here batch first (torch's test is sequence first)
PUBLISHED = [
    ([[[20.0, 30.0, 40.0, 50.0]]], [[[60.0, 70.0, 80.0, 90.0]]],
     [[[2.314351, 0.094805, -0.671322, 0.101977]]]),
    ([[[9.0, 10.0, 11.0, 12.0], [11.0, 12.0, 13.0, 14.0]]], [[[1.0, 2.0, 3.0, 4.0]]],
     [[[2.422245, 0.051716, -0.606338, -0.024756], [2.422245, 0.051716, -0.606338, -0.024756]]]),
    ([[[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]], [[[9.0, 10.0, 11.0, 12.0], [11.0, 12.0, 13.0, 14.0]]],
     [[[2.343536, 0.085561, -0.654954, 0.074991], [2.343536, 0.085561, -0.654954, 0.074991]]]),
]


def _cosine_state(dec):
    layer = dec.torch_layer(4, 2, 16, dropout=0.0)
    return {k: torch.cos(torch.arange(v.numel(), dtype=torch.float32)).view(v.shape)
            for k, v in layer.state_dict().items()}


@pytest.mark.points(1)
def test_output_shape(student, dec):
    """forward returns one (batch, T, d_model) tensor in x's dtype, for a memory of another length S"""
    block = dec.student_block(student, dec.torch_layer(**SMALL), SMALL)
    for length, mem_length in ((5, 7), (6, 2)):
        x, memory = torch.randn(2, length, 16), torch.randn(2, mem_length, 16)
        out = block.forward(x, memory, causal=True)
        assert isinstance(out, torch.Tensor), (
            f"forward should return a torch.Tensor, got {type(out).__name__}: return the block's output only "
            "(not the attention weights, not the cache)")
        dec.expect_output(out, (2, length, 16), f"forward(x (2, {length}, 16), memory (2, {mem_length}, 16))")
        assert out.dtype == torch.float32, f"forward returned {out.dtype} for a float32 input"
        assert bool(torch.isfinite(out).all()), "forward returned NaN or Inf without any padding mask"


@pytest.mark.points(1)
def test_published_decoder_vectors(student, dec):
    """PyTorch's published TransformerDecoderLayer vectors (cosine weights, d_model 4, 2 heads, no mask)"""
    block = student.new("DecoderBlock", 4, 2, 16, dropout=0.0)
    block.load_torch_weights(_cosine_state(dec))
    block.handle("eval")
    for i, (x, memory, want) in enumerate(PUBLISHED):
        out = block.forward(torch.tensor(x), torch.tensor(memory), causal=False)
        want = torch.tensor(want)
        dec.expect_output(out, tuple(want.shape), f"published case {i + 1}")
        dec.assert_block_output(out, want, name=f"published case {i + 1}", targets={
            "float32_rtol": 0.0, "float32_atol": 1e-5}, advice=(
            f"PyTorch's own test vector {i + 1} differs (its atol is 1e-5): {POST_NORM}; {ATTENTION}"))


@pytest.mark.points(2)
def test_post_norm_matches_torch(student, dec, targets):
    """post-norm causal block (the paper's) equals nn.TransformerDecoderLayer in eval mode, T != S"""
    for seed, act in ((0, "relu"), (1, "gelu")):
        config = {**SMALL, "activation": act}
        layer = dec.layer_for(config, seed)
        block = dec.student_block(student, layer, config)
        x, memory = torch.randn(3, 5, 16), torch.randn(3, 7, 16)
        out = block.forward(x, memory, causal=True)
        advice = dec.diagnose(out, layer, x, memory) or f"{POST_NORM}; {ATTENTION}"
        dec.assert_block_output(out, dec.expected(layer, x, memory), name=f"forward ({act}, post-norm, causal)",
                                advice=advice, targets=targets)


@pytest.mark.points(1)
def test_pre_norm_matches_torch(student, dec, targets):
    """pre-norm causal block (norm_first=True) equals nn.TransformerDecoderLayer(norm_first=True)"""
    config = {**SMALL, "norm_first": True}
    layer = dec.layer_for(config, 2)
    block = dec.student_block(student, layer, config)
    x, memory = torch.randn(2, 6, 16), torch.randn(2, 3, 16) * 3 + 1  # a memory far from unit scale
    out = block.forward(x, memory, causal=True)
    advice = dec.diagnose(out, layer, x, memory) or f"{PRE_NORM}; {ATTENTION}"
    dec.assert_block_output(out, dec.expected(layer, x, memory), name="forward (pre-norm, causal)", advice=advice,
                            targets=targets)


@pytest.mark.points(2)
def test_causal_by_perturbation(student, dec):
    """changing the target after position t leaves every output up to t unchanged (post- and pre-norm)"""
    for norm_first in (False, True):
        _, _, block = dec.setup(student, 3, norm_first=norm_first)
        x, memory = torch.randn(2, 6, 16), torch.randn(2, 4, 16)
        base = dec.expect_output(block.forward(x, memory, causal=True), (2, 6, 16), "forward(x, memory)")
        for t in range(5):
            changed = x.clone()
            changed[:, t + 1:] = torch.randn(2, 5 - t, 16) * 10
            out = dec.expect_output(block.forward(changed, memory, causal=True), (2, 6, 16), "forward")
            leak = float((out[:, : t + 1] - base[:, : t + 1]).abs().max())
            assert leak <= 1e-5, (
                f"with causal=True, changing the target after position {t} changed the outputs at positions "
                f"0..{t} (by up to {leak:.3g}, norm_first={norm_first}): block every key j > i for query i "
                "(scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float('-inf')) BEFORE the "
                "softmax); the queries are the rows of the (T, T) scores")


@pytest.mark.points(1)
def test_memory_is_keys_and_values(student, dec, targets):
    """the memory is the cross-attention's keys and values: it changes the output, its order does not"""
    layer = dec.layer_for(SMALL, 4)
    block = dec.student_block(student, layer, SMALL)
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 8, 16)
    out = dec.expect_output(block.forward(x, memory, causal=True), (2, 5, 16), "forward(x, memory)")
    other = dec.expect_output(block.forward(x, torch.randn(2, 8, 16), causal=True), (2, 5, 16),
                              "forward(x, another memory)")
    moved = (other - out).abs().amax(dim=-1)
    assert bool((moved > 1e-3).all()), (
        "another memory left some outputs unchanged: the cross-attention must take its keys and values from the "
        "memory (its queries from the decoder side), for every target position")
    order = torch.randperm(8)
    dec.assert_block_output(block.forward(x, memory[:, order], causal=True), out, targets=targets,
                            name="forward with the memory positions shuffled", advice=(
                                "shuffling the memory positions changed the output: the memory enters only as "
                                "keys and values (a set the softmax sums over), never as the queries, and one "
                                "output row belongs to each TARGET position"))
    for mem_length in (1, 11):
        memory = torch.randn(2, mem_length, 16)
        out = block.forward(x, memory, causal=True)
        dec.assert_block_output(out, dec.expected(layer, x, memory), targets=targets,
                                name=f"forward with a memory of length {mem_length}",
                                advice=f"a memory of length {mem_length} gives wrong outputs: {ATTENTION}")


@pytest.mark.points(2)
def test_padding_masks_match_torch(student, dec, targets):
    """both padding masks (True = padding) with the causal mask, post-norm and pre-norm, equal torch"""
    for norm_first in (False, True):
        _, layer, block = dec.setup(student, 5, norm_first=norm_first)
        x, memory = torch.randn(3, 6, 16), torch.randn(3, 4, 16)
        tgt_pad, mem_pad = dec.padding([6, 4, 2], 6), dec.padding([4, 1, 3], 4)
        out = block.forward(x, memory, causal=True, tgt_key_padding_mask=tgt_pad, memory_key_padding_mask=mem_pad)
        want = dec.expected(layer, x, memory, True, tgt_pad, mem_pad)
        dec.expect_output(out, tuple(want.shape), "forward with both padding masks")
        advice = dec.diagnose(out, layer, x, memory, tgt_pad=tgt_pad, mem_pad=mem_pad) or (
            "True in a key padding mask marks PADDING: block those KEYS (last axis of the scores) for every "
            "query, tgt_key_padding_mask (batch, T) in the self-attention together with the causal mask, "
            "memory_key_padding_mask (batch, S) in the cross-attention")
        unmasked = block.forward(x, memory, causal=True)
        if isinstance(unmasked, torch.Tensor) and not torch.allclose(unmasked, dec.expected(layer, x, memory),
                                                                     **dec.tol(targets, want.dtype)):
            advice = ("the same inputs without padding masks already differ from torch: get "
                      "test_post_norm_matches_torch and test_pre_norm_matches_torch right first")
        dec.assert_block_output(out, want, tgt_pad=tgt_pad, targets=targets, advice=advice,
                                name=f"forward with both padding masks (norm_first={norm_first})")


@pytest.mark.points(1)
def test_dropout_only_in_training(student, dec, targets):
    """dropout is active after train() and off after eval(): eval outputs are deterministic"""
    config = {**SMALL, "dropout": 0.5}
    block = dec.student_block(student, dec.layer_for(config, 6), config)
    x, memory = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    first, second = block.forward(x, memory, causal=True), block.forward(x, memory, causal=True)
    dec.expect_output(first, (2, 5, 16), "forward in eval mode")
    dec.assert_block_output(second, first, name="a second forward in eval mode", targets=targets,
                            advice="two eval-mode calls on the same input differ: dropout is still active in eval "
                                   "mode; use F.dropout(t, p, self.training) or nn.Dropout")
    block.handle("train")
    trained = [dec.expect_output(block.forward(x, memory, causal=True), (2, 5, 16), "forward in train mode")
               for _ in range(2)]
    assert not torch.allclose(trained[0], first, atol=1e-4), (
        "in train mode (dropout=0.5) the output equals the eval-mode output: apply dropout when self.training")
    assert not torch.allclose(trained[0], trained[1], atol=1e-4), (
        "two train-mode calls gave the same output: dropout must draw a fresh random mask every call")


def decode(block, x, memory, mem_pad=None):
    """decode_step over every position of x after a reset; the steps' outputs concatenated."""
    block.reset_cache()
    steps = []
    for t in range(x.shape[1]):
        y = block.decode_step(x[:, t:t + 1], memory, memory_key_padding_mask=mem_pad)
        assert isinstance(y, torch.Tensor) and tuple(y.shape) == (x.shape[0], 1, x.shape[2]), (
            f"decode_step at position {t} returned {getattr(y, 'shape', type(y).__name__)}, expected a tensor "
            f"of shape ({x.shape[0]}, 1, {x.shape[2]}): the output at this one position")
        steps.append(y)
    return torch.cat(steps, dim=1)


@pytest.mark.points(2)
def test_kv_cache_matches_full_forward(student, dec, targets):
    """decode_step with a key/value cache, one position at a time, equals the causal forward on the prefix"""
    for norm_first in (False, True):
        _, layer, block = dec.setup(student, 7, norm_first=norm_first)
        x, memory = torch.randn(2, 6, 16), torch.randn(2, 5, 16)
        mem_pad = dec.padding([5, 3], 5)
        full = block.forward(x, memory, causal=True, memory_key_padding_mask=mem_pad)
        dec.assert_block_output(full, dec.expected(layer, x, memory, True, None, mem_pad), targets=targets,
                                name=f"forward (norm_first={norm_first})", advice=(
                                    "the causal forward itself differs from torch: get the forward checks right "
                                    "first"))
        stepped = decode(block, x, memory, mem_pad)
        first_bad = next((t for t in range(6) if not torch.allclose(stepped[:, t], full[:, t], rtol=1e-4,
                                                                        atol=1e-5)), None)
        where = "" if first_bad is None else f" (first wrong at position {first_bad})"
        dec.assert_block_output(stepped, full, targets=targets, name=f"decode_step outputs (norm_first={norm_first})",
                                advice=(
            f"incremental decoding differs from the causal forward{where}: at step t append the new position's "
            "self-attention key and value to the cache BEFORE attending (the query sees itself), attend over the "
            "cached positions 0..t, and in pre-norm compute k, v from norm1(x_t), as forward does"))
