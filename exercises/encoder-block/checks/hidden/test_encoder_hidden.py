"""Hidden checks of EncoderBlock: other sizes and options, float64, and what the padding mask must not change."""

import pytest
import torch

CONFIGS = [
    {"d_model": 32, "num_heads": 8, "d_ff": 64, "dropout": 0.2, "activation": "gelu", "norm_first": False,
     "eps": 1e-6},
    {"d_model": 24, "num_heads": 3, "d_ff": 40, "dropout": 0.1, "activation": "relu", "norm_first": True,
     "eps": 0.1},
    {"d_model": 8, "num_heads": 1, "d_ff": 16, "dropout": 0.0, "activation": "gelu", "norm_first": False,
     "eps": 1e-5},
    {"d_model": 20, "num_heads": 5, "d_ff": 20, "dropout": 0.3, "activation": "relu", "norm_first": False,
     "eps": 0.5},
]


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_hidden_configs(student, reference, enc, targets):
    """other sizes, head counts, activations, LayerNorm eps and padding patterns equal torch and the reference"""
    for i, config in enumerate(CONFIGS):
        layer = enc.torch_layer(**config, seed=10 + i)
        block = enc.student_block(student, layer, config)
        x = torch.randn(4, 9, config["d_model"]) * 2.0
        mask = enc.random_mask([9, 1, 5, 8], 9) if i % 2 == 0 else None
        out = block.forward(x, key_padding_mask=mask)
        advice = (f"configuration {i + 1} differs (num_heads={config['num_heads']}, activation="
                  f"{config['activation']!r}, norm_first={config['norm_first']}, layer_norm_eps={config['eps']}): "
                  "do you use every constructor argument?")
        name = f"hidden configuration {i + 1}"
        enc.assert_block_output(out, enc.expected(layer, x, mask), mask=mask, targets=targets, name=name,
                                advice=advice)
        ref = reference.EncoderBlock(config["d_model"], config["num_heads"], config["d_ff"], config["dropout"],
                                     config["activation"], config["norm_first"], config["eps"])
        ref.load_torch_weights(enc.state_of(layer))
        with torch.no_grad():
            want = ref.eval().forward(x, key_padding_mask=mask)
        enc.assert_block_output(out, want, mask=mask, targets=targets, name=f"{name} (vs the reference)",
                                advice=advice)


@pytest.mark.points(1)
def test_float64_matches_torch(student, enc, targets):
    """after block.double(), float64 weights and inputs give float64 outputs equal to torch's"""
    config = {"d_model": 16, "num_heads": 2, "d_ff": 24, "dropout": 0.1, "norm_first": True}
    layer = enc.torch_layer(**config, seed=20, dtype=torch.float64)
    block = enc.student_block(student, layer, config, double=True)
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    mask = enc.random_mask([6, 3], 6)
    out = block.forward(x, key_padding_mask=mask)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float64, (
        f"forward on float64 input returned {getattr(out, 'dtype', type(out).__name__)}: keep the input's dtype "
        "(no .float(), no float32 constants or masks)")
    enc.assert_block_output(out, enc.expected(layer, x, mask), mask=mask, targets=targets, name="float64 forward",
                            advice="float64 results differ from torch beyond 1e-10: is some step done in float32?")


@pytest.mark.points(1)
def test_padding_changes_nothing_real(student, enc, targets):
    """padded tokens' values do not reach real tokens, and a padded sequence equals the same sequence alone"""
    config = {"d_model": 16, "num_heads": 4, "d_ff": 32, "dropout": 0.1}
    layer = enc.torch_layer(**config, seed=30)
    block = enc.student_block(student, layer, config)
    x = torch.randn(2, 7, 16)
    mask = enc.random_mask([7, 3], 7)
    out = block.forward(x, key_padding_mask=mask)
    enc.expect_output(out, (2, 7, 16), "forward(x, key_padding_mask)")
    noisy = x.clone()
    noisy[1, 3:] = torch.randn(4, 16) * 50
    again = block.forward(noisy, key_padding_mask=mask)
    alone = block.forward(x[1:2, :3])
    advice = ("padded positions (True in key_padding_mask) must not influence real ones: mask the KEYS "
              "(last axis of the scores), with True meaning padding")
    enc.assert_block_output(again, out, mask=mask, targets=targets, name="forward with other padding values",
                            advice=advice)
    enc.assert_block_output(alone, out[1:2, :3], targets=targets, name="the short sequence on its own",
                            advice=advice)
