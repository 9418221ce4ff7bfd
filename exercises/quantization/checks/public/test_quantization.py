"""Public checks of the quantization exercise: per-channel int8, the weight-only layer, dynamic int8 on MiniLM,
weight-only int8 on SmolLM2 (module swaps and sizes measured from the saved state dict)."""

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import check_int8, expect_q

from grader.testing import StudentCodeError, assert_tensor_close, expect_type, record

#: published SQNR thresholds (torchao test_integration.py): int8 weight-only Linear > 43 dB
WEIGHT_ONLY_DB = 43.0
#: torch.ao's per-tensor dynamic int8 on Linear(16, 8) measures 34-42 dB (torchao's per-token variant: > 40 dB)
DYNAMIC_DB = 30.0


def _rows_of_many_scales(out_f, in_f, seed):
    g = torch.Generator().manual_seed(seed)
    scales = 10 ** (torch.rand(out_f, 1, generator=g) * 4 - 3)  # rows from 1e-3 to 10 in magnitude
    return torch.randn(out_f, in_f, generator=g) * scales


@pytest.mark.points(2)
def test_per_channel_int8(student):
    """per-channel symmetric int8: int8 q, one fp32 scale per row, error <= scale/2, every row >= 40 dB"""
    weight = _rows_of_many_scales(24, 40, seed=1)
    weight[5] = 0.0
    q, scale = check_int8(student, weight, "quantize_per_channel_int8(24 x 40 weight)")
    assert torch.count_nonzero(q[5]) == 0, "a row of zeros should quantise to zeros (with scale 1)"
    deq = student.dequantize_per_channel(q, scale)
    assert_tensor_close(deq, q.float() * scale[:, None], rtol=1e-6, atol=0, name="dequantize_per_channel(q, scale)",
                        advice="dequantise as q.float() * scale[:, None] (float32)")
    worst = min(20 * math.log10(float(w.norm()) / max(float((w - d).norm()), 1e-30))
                for w, d in zip(weight, deq, strict=True) if float(w.norm()) > 0)
    record("worst_row_sqnr_db", worst)
    assert worst >= 40.0, (f"the worst row's SQNR is {worst:.1f} dB (expected >= 40): quantise each row with its own "
                           "scale")
    with pytest.raises(StudentCodeError) as err:
        student.quantize_per_channel_int8(torch.randn(7))
        pytest.fail("quantize_per_channel_int8 accepted a 1-D tensor: raise ValueError unless the weight is 2-D float")
    assert err.value.exc_type == "ValueError", f"a 1-D weight should raise ValueError, not {err.value.exc_type}"


@pytest.mark.points(1)
def test_weight_only_linear(student, qz):
    """Int8WeightOnlyLinear: int8 storage, forward from its own q and scale, SQNR > 43 dB (torchao's threshold)"""
    for out_f, in_f, rows, seed in ((5, 4, 3, 2), (24, 40, 8, 3)):
        g = torch.Generator().manual_seed(seed)
        w, b = torch.randn(out_f, in_f, generator=g), torch.randn(out_f, generator=g)
        x = torch.randn(rows, in_f, generator=g)
        layer = student.new("Int8WeightOnlyLinear", w, b)
        state = layer.state()
        expect_type(state, dict, "state()")
        q, scale = expect_q((state.get("weight"), state.get("scale")), (out_f, in_f), "state()")
        y = layer.forward(x)
        assert_tensor_close(y, F.linear(x, q.float() * scale[:, None], b), rtol=1e-5, atol=1e-5,
                            name=f"forward of Linear({in_f}, {out_f})", advice=(
                                "forward must use the layer's own int8 weight: F.linear(x, q * scale[:, None], bias) "
                                "(scale per output row)"))
        db = qz.sqnr_db(F.linear(x, w, b), y)
        record(f"sqnr_db_linear_{in_f}_{out_f}", db)
        assert db > WEIGHT_ONLY_DB, f"SQNR {db:.1f} dB against the float layer, expected > {WEIGHT_ONLY_DB} dB"


@pytest.mark.points(1)
def test_dynamic_linear(student, qz):
    """dynamic_linear: torch.ao's dynamic qint8 Linear, non-square, SQNR >= 30 dB against the float layer"""
    worst = math.inf
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        w, b = torch.randn(8, 16, generator=g) / 4, torch.randn(8, generator=g)
        x = torch.randn(8, 16, generator=g)
        y = student.dynamic_linear(w, b, x)
        expect_type(y, torch.Tensor, "dynamic_linear(...)")
        assert tuple(y.shape) == (8, 8) and y.dtype == torch.float32, f"dynamic_linear gave {tuple(y.shape)} {y.dtype}"
        want = F.linear(x, w, b)
        assert not torch.equal(y, want), ("dynamic_linear returned exactly the float output: quantise the layer with "
                                          "torch.ao.quantization.quantize_dynamic(..., dtype=torch.qint8)")
        worst = min(worst, qz.sqnr_db(want, y))
    record("worst_sqnr_db", worst)
    assert worst >= DYNAMIC_DB, f"SQNR {worst:.1f} dB, expected >= {DYNAMIC_DB} dB for dynamic int8 on Linear(16, 8)"


@pytest.mark.points(1)
def test_dynamic_swaps_only_linear(student, qz, assets, job_files):
    """dynamic MiniLM: every nn.Linear but the skipped pooler becomes a dynamic int8 Linear; nothing else changes"""
    folder = str(assets["encoder-small"])
    for bad in ({"kind": "encoder", "mode": "int4"}, {"kind": "seq2seq", "mode": "dynamic"}):
        with pytest.raises(StudentCodeError) as err:
            student.new("QuantizedModel", folder, **bad)
            pytest.fail(f"QuantizedModel(..., {bad}) did not raise: raise ValueError for an unknown kind or mode")
        assert err.value.exc_type == "ValueError", f"{bad} should raise ValueError, not {err.value.exc_type}"
    model = student.new("QuantizedModel", folder, kind="encoder", mode="dynamic", skip=["pooler.dense"])
    types = qz.expect_types(model.module_types())
    reference = qz.float_model(folder, "encoder")
    floats = {name: f"{type(m).__module__}.{type(m).__qualname__}" for name, m in reference.named_modules() if name}
    linears = qz.linear_names(reference)
    missing = sorted(n for n in linears if n not in types)
    assert not missing, f"module_types() lacks {missing[:3]}: keep the model's module names"
    kept = [n for n in linears if n != "pooler.dense" and not types[n].startswith(qz.DYNAMIC)]
    assert not kept, (f"{len(kept)} nn.Linear layers are not dynamic int8 Linear (e.g. {kept[0]} is {types[kept[0]]}): "
                      "quantize_dynamic with qconfig_spec naming every Linear but the skipped ones")
    assert types["pooler.dense"] == qz.FLOAT_LINEAR, (
        f"pooler.dense was asked to stay float but is {types['pooler.dense']}: pass quantize_dynamic a qconfig_spec "
        "dict of the names to quantise (skip the names in `skip`)")
    changed = sorted(n for n, t in floats.items() if n not in linears and n in types and types[n] != t)
    if changed:
        raise AssertionError(f"modules that are not nn.Linear changed type: {changed[:3]} (e.g. {types[changed[0]]}): "
                             "leave embeddings and LayerNorm in float")
    _, state = qz.saved_state(model, job_files, "encoder-dynamic.pt", "encoder")
    packed = [n for n in linears if n.startswith("encoder.")
              and f"{n.removeprefix('encoder.')}._packed_params._packed_params" not in state]
    assert not packed, f"the saved state of the encoder has no packed int8 weights for {packed[:3]}"
    _, pooler = qz.saved_state(model, job_files, "pooler.pt", "pooler")
    weight = pooler.get("dense.weight")
    assert isinstance(weight, torch.Tensor) and weight.dtype == torch.float32, (
        "the skipped pooler.dense should keep its float32 weight in the state dict")


@pytest.mark.points(2)
def test_encoder_dynamic_outputs_and_size(student, qz, assets, job_files, targets):
    """dynamic MiniLM: deterministic embeddings within the SQNR bound of float; the encoder's state shrinks"""
    folder = str(assets["encoder-small"])
    batch = qz.encode(folder, qz.sentences(assets, slice(0, 24)))
    model = student.new("QuantizedModel", folder, kind="encoder", mode="dynamic")
    got = model.embed(batch["input_ids"], batch["attention_mask"])
    want = qz.float_embed(folder, batch)
    expect_type(got, torch.Tensor, "embed(...)")
    assert tuple(got.shape) == tuple(want.shape), f"embed gave {tuple(got.shape)}, expected {tuple(want.shape)}"
    again = model.embed(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(got, again), ("two embed() calls on the same batch differ: put the model in eval mode (dropout "
                                     "off) before quantising")
    db = qz.sqnr_db(want, got)
    record("embedding_sqnr_db", db)
    bound = float(targets["min_encoder_dynamic_sqnr_db"])
    assert db >= bound, (f"the dynamic-int8 embeddings are {db:.1f} dB from float (expected >= {bound} dB): quantise "
                         "only the nn.Linear layers (qint8), in eval mode, and mean-pool over real tokens")
    size, _ = qz.saved_state(model, job_files, "encoder-dynamic-size.pt", "encoder")
    ratio = size / qz.float_size(folder, "encoder", "encoder")
    record("size_ratio", ratio)
    limit = float(targets["max_encoder_size_ratio"])
    assert ratio <= limit, (f"the saved dynamic-int8 state of the encoder stack (its 6 layers) is {ratio:.0%} of "
                            f"the float one's size (allowed "
                            f"{limit:.0%}): the Linear weights should be stored as int8 (qint8, not float16), with "
                            "no float copy")


@pytest.mark.points(1)
def test_weight_only_lm_module_swap(student, qz, assets, job_files, targets):
    """weight-only SmolLM2: every Linear but lm_head is int8 with no float copy; a layer's saved state shrinks"""
    folder = str(assets["causal-lm-small"])
    model = student.new("QuantizedModel", folder, kind="causal-lm", mode="weight-only", skip=["lm_head"])
    types = qz.expect_types(model.module_types())
    reference = qz.float_model(folder, "causal-lm")
    linears = qz.linear_names(reference)
    assert types.get("lm_head") == qz.FLOAT_LINEAR, (
        f"lm_head was asked to stay float but is {types.get('lm_head')}: skip the names in `skip`")
    still = [n for n in linears if n != "lm_head" and types.get(n) == qz.FLOAT_LINEAR]
    assert not still, f"{len(still)} Linear layers were not replaced (e.g. {still[0]}): swap every nn.Linear but skip"
    layer = "model.layers.0"
    size, state = qz.saved_state(model, job_files, "lm-weight-only.pt", layer)
    shapes = {n: tuple(m.weight.shape) for n, m in reference.named_modules() if n in linears}
    for name in (n for n in linears if n.startswith(f"{layer}.")):
        short = name[len(layer) + 1:]
        mine = {k: v for k, v in state.items() if k.startswith(f"{short}.") and isinstance(v, torch.Tensor)}
        assert any(v.dtype == torch.int8 and tuple(v.shape) == shapes[name] for v in mine.values()), (
            f"the saved state of {name} has no int8 tensor of the weight's shape {shapes[name]}")
        floats = [k for k, v in mine.items() if v.is_floating_point() and tuple(v.shape) == shapes[name]]
        assert not floats, f"{name} still saves a float weight ({floats[0]}): keep only q and the scales"
    ratio = size / qz.float_size(folder, "causal-lm", layer)
    record("size_ratio", ratio)
    limit = float(targets["max_lm_size_ratio"])
    assert ratio <= limit, (f"the weight-only state of {layer} is {ratio:.0%} of its float size (allowed "
                            f"{limit:.0%}): int8 weights and float32 scales only")
