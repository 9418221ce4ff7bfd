"""Hidden checks of EncoderBlock: other sizes and options, float64, and what the padding mask must not change."""

import pytest
import torch

from grader.testing import StudentCodeError

CONFIGS = [
    {"d_model": 32, "num_heads": 8, "d_ff": 64, "dropout": 0.2, "activation": "gelu", "norm_first": False,
     "eps": 1e-6},
    {"d_model": 24, "num_heads": 3, "d_ff": 40, "dropout": 0.1, "activation": "relu", "norm_first": True,
     "eps": 0.1},
    {"d_model": 8, "num_heads": 1, "d_ff": 16, "dropout": 0.0, "activation": "gelu", "norm_first": False,
     "eps": 1e-5},
    {"d_model": 20, "num_heads": 5, "d_ff": 20, "dropout": 0.3, "activation": "relu", "norm_first": False,
     "eps": 0.5},
    # every option at once: the arguments must work together, not only one at a time
    {"d_model": 12, "num_heads": 6, "d_ff": 28, "dropout": 0.2, "activation": "gelu", "norm_first": True,
     "eps": 0.01},
]


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_hidden_configs(student, reference, enc, targets):
    """other sizes, head counts, activations, LayerNorm eps and padding patterns equal torch and the reference"""
    for i, config in enumerate(CONFIGS):
        layer = enc.torch_layer(**config, seed=10 + i)
        block = enc.student_block(student, layer, config)
        x = torch.randn(4, 9, config["d_model"]) * 2.0
        mask = enc.random_mask([9, 1, 5, 8], 9) if i % 2 == 0 or i == len(CONFIGS) - 1 else None
        out = block.forward(x, key_padding_mask=mask)
        advice = lambda out=out, x=x, config=config, i=i, mask=mask, block=block, layer=layer: (  # noqa: E731
            enc.diagnose(student, out, x, config, 10 + i, targets, mask)
            or _mask_or_options(student, block, enc, layer, x, mask, config, targets, i))
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


def _mask_or_options(student, block, enc, layer, x, mask, config, targets, i):
    unmasked = block.forward(x) if mask is not None else None
    if isinstance(unmasked, torch.Tensor) and unmasked.shape == x.shape and torch.allclose(
            unmasked, enc.expected(layer, x), **enc.tol(targets, x.dtype)):
        return (f"configuration {i + 1} is right without a padding mask but not with one: apply key_padding_mask "
                "to the keys of each sequence (see test_padding_mask_matches_torch)")
    return (f"configuration {i + 1} differs ({enc.describe(config)}): do you use every constructor argument, in "
            "both placements of LayerNorm?")


@pytest.mark.points(1)
def test_float64_matches_torch(student, enc, targets):
    """after block.double(), float64 weights and inputs give float64 outputs equal to torch's"""
    config = {"d_model": 16, "num_heads": 2, "d_ff": 24, "dropout": 0.1, "norm_first": True}
    layer = enc.torch_layer(**config, seed=20, dtype=torch.float64)
    block = enc.student_block(student, layer, config, double=True)
    x = torch.randn(2, 6, 16, dtype=torch.float64)
    mask = enc.random_mask([6, 3], 6)
    out = block.forward(x, key_padding_mask=mask)
    enc.expect_output(out, (2, 6, 16), "float64 forward")
    assert out.dtype == torch.float64, (
        f"forward on float64 input returned {getattr(out, 'dtype', type(out).__name__)}: keep the input's dtype "
        "(no .float(), no float32 constants or masks)")
    want = enc.expected(layer, x, mask)
    enc.assert_block_output(out, want, mask=mask, targets=targets, name="float64 forward",
                            advice=lambda: _float64_advice(student, enc, block, layer, out, x, want, mask, config,
                                                           targets))


def _float64_advice(student, enc, block, layer, out, x, want, mask, config, targets):
    """Rounding (float32 somewhere) and a wrong formula look alike only to a tolerance: tell them apart by size."""
    setting = f"norm_first=True with a key padding mask ({enc.describe(config)})"
    keep = ~mask
    error = float((out[keep].to(torch.float64) - want[keep]).abs().max())
    if error < 1e-3:
        return (f"float64 results differ from torch by {error:.1e}, float32 rounding: keep every step in float64 "
                "(no .float(), no float32 constants or masks)")
    named = enc.diagnose(student, out, x, config, 20, targets, mask)
    if named is None and "right without" in _mask_or_options(student, block, enc, layer, x, mask, config, targets, -1):
        named = "it is right without the mask: apply key_padding_mask to the keys of each sequence"
    return (f"float64 results differ from torch by {error:.3g} in the configuration {setting}: far more than "
            "rounding, so the formula is wrong there, not the precision: " + (named or (
                "see test_pre_norm_matches_torch and test_padding_mask_matches_torch")))


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


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_rejects_bad_arguments(student):
    """EncoderBlock raises ValueError when num_heads does not divide d_model or the activation is unknown"""
    calls = [((10, 3, 20), {}, "num_heads=3 does not divide d_model=10"),
             ((16, 5, 32), {}, "num_heads=5 does not divide d_model=16"),
             ((16, 4, 32), {"activation": "tanh"}, "activation='tanh' is neither 'relu' nor 'gelu'"),
             ((16, 4, 32), {"activation": "GELU"}, "activation='GELU' is neither 'relu' nor 'gelu'")]
    for args, kwargs, why in calls:
        shown = ", ".join([*map(str, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
        with pytest.raises(StudentCodeError) as info:
            student.new("EncoderBlock", *args, **kwargs)
            pytest.fail(f"EncoderBlock({shown}) was built although {why}: check the arguments in __init__ and "
                        "raise ValueError, as the docstring says")
        assert info.value.exc_type != "NotImplementedError", "EncoderBlock is not implemented yet"
        assert info.value.exc_type == "ValueError", (
            f"EncoderBlock({shown}) raised {info.value.exc_type}, expected ValueError ({why})")
