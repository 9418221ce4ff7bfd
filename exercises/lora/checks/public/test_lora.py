"""Public checks of the lora exercise: one LoRA layer, instruction encoding, peft on a tiny random Llama."""

import math

import pytest
import torch

from grader.testing import StudentCodeError, assert_tensor_close, expect_type, record

FORMULA = "y = W x + b + (alpha / r) * B (A x), with A: (r, d_in) and B: (d_out, r)"


def _layer(student, d_in, d_out, r, alpha, seed, bias=True):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(d_out, d_in, generator=g) / math.sqrt(d_in)
    b = torch.randn(d_out, generator=g) if bias else None
    a_ = torch.randn(r, d_in, generator=g)
    b_ = torch.randn(d_out, r, generator=g)
    layer = student.new("LoRALinear", w, b, r, alpha)
    return layer, w, b, a_, b_


def _expected(x, w, b, a_, b_, alpha, r):
    out = x @ w.T + (alpha / r) * (x @ a_.T) @ b_.T
    return out + b if b is not None else out


@pytest.mark.points(2)
def test_lora_layer_forward(student):
    """LoRALinear computes W x + b + (alpha/r) B A x, non-square, with and without bias, any batch shape"""
    for d_in, d_out, r, alpha, bias in ((12, 20, 4, 8.0, True), (7, 3, 1, 1.0, False), (16, 16, 8, 32.0, True)):
        layer, w, b, a_, b_ = _layer(student, d_in, d_out, r, alpha, seed=d_in + d_out, bias=bias)
        scale = layer.scaling()
        assert isinstance(scale, float | int) and abs(scale - alpha / r) < 1e-9, (
            f"scaling() is {scale} for r={r}, alpha={alpha}: LoRA scales the update by alpha / r = {alpha / r}")
        layer.set_adapter(a_, b_)
        x = torch.randn(2, 5, d_in, generator=torch.Generator().manual_seed(r))
        assert_tensor_close(layer.forward(x), _expected(x, w, b, a_, b_, alpha, r), rtol=1e-4, atol=1e-5,
                            name=f"forward (d_in={d_in}, d_out={d_out}, r={r}, alpha={alpha}, bias={bias})",
                            advice=f"{FORMULA}; the bias (when given) is added once")


@pytest.mark.points(1)
def test_lora_layer_init_and_count(student):
    """default init: B = 0 (output equals the frozen layer), A uniform in +-1/sqrt(d_in); r*(d_in+d_out) trainable"""
    d_in, d_out, r = 256, 40, 64
    layer, w, b, _, _ = _layer(student, d_in, d_out, r, 16.0, seed=1)
    state = layer.adapter()
    expect_type(state, dict, "adapter()")
    a_, b_ = state.get("A"), state.get("B")
    for t, name, shape in ((a_, "A", (r, d_in)), (b_, "B", (d_out, r))):
        expect_type(t, torch.Tensor, f"adapter()['{name}']")
        assert tuple(t.shape) == shape, f"adapter()['{name}'] has shape {tuple(t.shape)}, expected {shape}"
    assert torch.count_nonzero(b_) == 0, ("B should start at zero (and A random), so the adapted layer starts as "
                                          "the frozen layer; are A and B initialised the other way round?")
    bound = 1 / math.sqrt(d_in)
    assert float(a_.abs().max()) <= bound * (1 + 1e-6), (
        f"A has values up to {float(a_.abs().max()):.4f}, beyond +-1/sqrt(d_in) = {bound:.4f}: initialise A as "
        "nn.Linear initialises weights (kaiming_uniform_ with a=sqrt(5))")
    # U(-b, b) has variance b^2/3; the sample variance of n draws has std b^2 * sqrt(4/45/n): 5 sigma
    var, want = float(a_.double().var()), bound ** 2 / 3
    sigma = bound ** 2 * math.sqrt(4 / 45 / a_.numel())
    record("A_variance", {"got": var, "uniform": want})
    assert abs(var - want) <= 5 * sigma, (
        f"A's variance is {var:.3e}, expected {want:.3e} for uniform(+-1/sqrt(d_in)) (5-sigma bound {5 * sigma:.1e}): "
        "use nn.Linear's default init (kaiming_uniform_(a=sqrt(5))), not a normal or a zero A")
    x = torch.randn(3, d_in)
    assert_tensor_close(layer.forward(x), x @ w.T + b, rtol=1e-4, atol=1e-5, name="forward at init",
                        advice="with B = 0 the adapted layer equals the frozen one at initialisation")
    count = layer.trainable_parameter_count()
    assert count == r * (d_in + d_out), (
        f"{count} trainable parameters, expected r * (d_in + d_out) = {r * (d_in + d_out)}: only A and B train; "
        "freeze W and b (requires_grad_(False))")
    with pytest.raises(StudentCodeError) as err:
        student.new("LoRALinear", w, b, 0, 1.0)
        pytest.fail("LoRALinear(..., r=0, ...) did not raise: raise ValueError for r < 1")
    assert err.value.exc_type == "ValueError", f"r=0 should raise ValueError, not {err.value.exc_type}"


@pytest.mark.points(1)
def test_lora_layer_backward(student):
    """backward: dB = s * g^T (A x), dA = s * B^T g x^T, and no gradient at all for the frozen W and b"""
    d_in, d_out, r, alpha = 10, 6, 3, 6.0
    layer, _, _, a_, b_ = _layer(student, d_in, d_out, r, alpha, seed=5)
    layer.set_adapter(a_, b_)
    g = torch.Generator().manual_seed(6)
    x, go = torch.randn(4, d_in, generator=g), torch.randn(4, d_out, generator=g)
    grads = layer.backward(x, go)
    expect_type(grads, dict, "backward(x, grad_output)")
    for frozen in ("weight", "bias"):
        assert frozen in grads and grads[frozen] is None, (
            f"backward gave a gradient for the frozen {frozen} (or no '{frozen}' key): freeze the base layer "
            "(requires_grad_(False)) so only A and B get gradients")
    s = alpha / r
    assert_tensor_close(grads.get("B"), s * go.T @ (x @ a_.T), rtol=1e-4, atol=1e-5, name="dL/dB",
                        advice="dL/dB = (alpha/r) * grad_output^T (x A^T)")
    assert_tensor_close(grads.get("A"), s * (go @ b_).T @ x, rtol=1e-4, atol=1e-5, name="dL/dA",
                        advice="dL/dA = (alpha/r) * (grad_output B)^T x")


@pytest.mark.points(2)
def test_lora_layer_merge(student):
    """merge with non-zero B: W + (alpha/r) B A, same outputs; a second merge changes nothing; unmerge restores W"""
    d_in, d_out, r, alpha = 9, 14, 2, 5.0
    layer, w, b, a_, b_ = _layer(student, d_in, d_out, r, alpha, seed=9)
    layer.set_adapter(a_, b_)
    x = torch.randn(6, d_in, generator=torch.Generator().manual_seed(10))
    before = _expected(x, w, b, a_, b_, alpha, r)
    merged_w = w + (alpha / r) * b_ @ a_
    layer.merge()
    assert_tensor_close(layer.weight(), merged_w, rtol=1e-5, atol=1e-5, name="weight() after merge",
                        advice="merge folds the SCALED update into the weight: W + (alpha / r) * B @ A")
    assert_tensor_close(layer.forward(x), before, rtol=1e-4, atol=1e-5, name="forward after merge",
                        advice="the merged layer must give the unmerged outputs: do not add the adapter path again")
    layer.merge()
    assert_tensor_close(layer.weight(), merged_w, rtol=1e-5, atol=1e-5, name="weight() after a second merge",
                        advice="a second merge() must do nothing (remember that the layer is merged)")
    layer.unmerge()
    assert_tensor_close(layer.weight(), w, rtol=1e-5, atol=1e-5, name="weight() after unmerge",
                        advice="unmerge subtracts the same scaled update: W again")
    assert_tensor_close(layer.forward(x), before, rtol=1e-4, atol=1e-5, name="forward after unmerge",
                        advice=f"unmerged, the layer computes {FORMULA} again")


@pytest.mark.points(1)
def test_encode_and_collate(student, reference, assets):
    """encode_example: chat template prompt, response + eos, labels -100 on the prompt; collate pads right"""
    folder = str(assets["causal-lm-small"])
    cases = [("Which article begins like this? \"Paris is the capital of France\"", "Paris", 96),
             ("Ünïcödé ﬁ prompt — with ligatures", "Café au lait", 96),
             ("A long prompt " + "word " * 60, "Truncated", 48)]
    encoded = []
    for prompt, response, limit in cases:
        got = student.encode_example(folder, prompt, response, max_length=limit)
        want = reference.encode_example(folder, prompt, response, max_length=limit)
        expect_type(got, dict, "encode_example(...)")
        for key in ("input_ids", "labels"):
            expect_type(got.get(key), list, f"encode_example(...)[{key!r}]")
        assert got["input_ids"] == want["input_ids"], (
            f"input_ids differ for {prompt[:30]!r}: the prompt through tokenizer.apply_chat_template("
            "[{'role': 'user', 'content': prompt}], add_generation_prompt=True), then the response's tokens (no "
            f"special tokens) and the eos token, cut to max_length={limit}")
        assert got["labels"] == want["labels"], (
            "the labels should be -100 on every prompt token and equal input_ids on the response tokens and the "
            "final eos (train on the response only)")
        encoded.append(got)
    batch = student.collate(encoded[:2], 2)
    want = reference.collate(encoded[:2], 2)
    expect_type(batch, dict, "collate(...)")
    for key in ("input_ids", "labels", "attention_mask"):
        assert_tensor_close(batch.get(key), want[key], rtol=0, atol=0, name=f"collate(...)[{key!r}]",
                            advice="pad on the RIGHT: input_ids with pad_token_id, labels with -100, attention_mask 0")
    with pytest.raises(StudentCodeError) as err:
        student.collate([], 2)
        pytest.fail("collate([]) did not raise: raise ValueError")
    assert err.value.exc_type == "ValueError", f"collate([]) should raise ValueError, not {err.value.exc_type}"


@pytest.mark.points(1)
def test_trainable_count_tiny_llama(student, lo):
    """trainable parameters = sum of r*(d_in+d_out) over adapted layers, for several target sets; total = base + that"""
    source = lo.tiny_source(seed=1)
    for targets, r in ((["q_proj", "v_proj"], 4), (["q_proj", "k_proj", "v_proj", "o_proj"], 2),
                       (["gate_proj", "up_proj", "down_proj"], 3)):
        tuner = student.new("LoraFineTuner", source, r=r, alpha=2 * r, target_modules=targets)
        counts = tuner.parameter_counts()
        expect_type(counts, dict, "parameter_counts()")
        want = lo.expected_trainable(lo.TINY, targets, r)
        assert counts.get("trainable") == want, (
            f"with target_modules={targets}, r={r}: {counts.get('trainable')} trainable parameters, expected "
            f"{want} = layers x sum of r*(d_in+d_out) (k_proj and v_proj are narrower with grouped-query attention): "
            "pass target_modules to LoraConfig and keep the base frozen")
        assert counts.get("total") == lo.base_count(source) + want, (
            f"total is {counts.get('total')}, expected base {lo.base_count(source)} + adapters {want}")
    for bad, what in (({"r": 0}, "r=0"), ({"target_modules": []}, "target_modules=[]")):
        with pytest.raises(StudentCodeError) as err:
            student.new("LoraFineTuner", source, **bad)
            pytest.fail(f"LoraFineTuner(..., {what}) did not raise: raise ValueError")
        assert err.value.exc_type == "ValueError", f"{what} should raise ValueError, not {err.value.exc_type}"


@pytest.mark.points(2)
def test_merge_equals_unmerged_model(student, lo):
    """tiny Llama, random B: logits = the trusted peft model's (alpha/r), merged = unmerged, disabled = base"""
    source = lo.tiny_source(seed=2)
    targets, r, alpha = ["q_proj", "v_proj", "o_proj"], 4, 12.0
    tuner = student.new("LoraFineTuner", source, r=r, alpha=alpha, target_modules=targets, init="random", seed=3)
    batch = lo.token_batch(seed=4)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    shape = (*ids.shape, lo.TINY["vocab_size"])
    got = lo.expect_logits(tuner.logits(ids, mask), shape, "logits()")
    adapter = tuner.adapter_state()
    expect_type(adapter, dict, "adapter_state()")
    trusted = lo.trusted_peft(source, adapter, r, alpha, targets)
    with torch.no_grad():
        want = trusted(input_ids=ids, attention_mask=mask).logits
        base = lo.trusted_base(source)(input_ids=ids, attention_mask=mask).logits
    assert not torch.allclose(lo.real(want, mask), lo.real(base, mask), atol=1e-3), (
        "with init='random' the adapter must change the model (B != 0): build the LoraConfig with "
        "init_lora_weights=False for init='random'")
    assert_tensor_close(lo.real(got, mask), lo.real(want, mask), **lo.LOGIT_TOL, name="logits with the adapter",
                        advice=f"the logits differ from peft's with your adapter weights and r={r}, "
                               f"lora_alpha={alpha}: pass lora_alpha=alpha (peft scales by alpha / r) and the given "
                               "target_modules")
    merged = lo.expect_logits(tuner.merged_logits(ids, mask), shape, "merged_logits()")
    assert_tensor_close(lo.real(merged, mask), lo.real(want, mask), **lo.LOGIT_TOL, name="merged logits",
                        advice="merged weights must give the unmerged logits: merge_adapter(), then logits")
    again = lo.expect_logits(tuner.logits(ids, mask), shape, "logits() after merged_logits()")
    assert_tensor_close(lo.real(again, mask), lo.real(want, mask), **lo.LOGIT_TOL, name="logits after merged_logits",
                        advice="after merged_logits() the tuner must be as before: unmerge_adapter() after merging")
    disabled = lo.expect_logits(tuner.base_logits(ids, mask), shape, "base_logits()")
    assert_tensor_close(lo.real(disabled, mask), lo.real(base, mask), **lo.LOGIT_TOL, name="base_logits",
                        advice="with the adapter disabled (model.disable_adapter()) the logits are the base model's")


@pytest.mark.points(2)
def test_only_adapters_train(student, lo):
    """only lora_A/lora_B get .grad; after training the base weights are bit-identical and every adapter changed"""
    source = lo.tiny_source(seed=5)
    targets = ["q_proj", "v_proj"]
    tuner = student.new("LoraFineTuner", source, r=4, alpha=8.0, target_modules=targets)
    batch = lo.token_batch(seed=6)
    names = tuner.grad_names(batch)
    expect_type(names, list, "grad_names(batch)")
    base_named = sorted(n for n in names if "lora_" not in n)
    assert not base_named, (f"base parameters got gradients: {base_named[:3]}: only the adapters train (peft freezes "
                            "the base; do not set requires_grad on it again)")
    lora = sorted(n for n in names if "lora_" in n)
    want = lo.TINY["num_hidden_layers"] * len(targets) * 2
    assert len(lora) == want, (f"{len(lora)} adapter parameters got gradients, expected {want} (lora_A and lora_B "
                               f"of {targets} in each layer)")
    before = tuner.adapter_state()
    losses = tuner.train([batch], steps=3, lr=1e-2)
    expect_type(losses, list, "train(...)")
    assert len(losses) == 3 and all(isinstance(v, float) and math.isfinite(v) for v in losses), (
        f"train(..., steps=3) should return 3 finite Python floats, got {losses!r}")
    after = tuner.adapter_state()
    unchanged = sorted(k for k in before if k in after and torch.equal(before[k], after[k]))
    assert not unchanged and set(after) == set(before), (
        f"after 3 steps these adapter weights did not change: {unchanged[:3]}: step an optimiser over the "
        "trainable (adapter) parameters")
    base = tuner.base_state()
    expect_type(base, dict, "base_state()")
    missing = sorted(set(source["state_dict"]) - set(base))
    assert not missing, ("base_state() should hold every base weight under the source state_dict's names (strip "
                         f"'.base_layer'); missing {missing[:3]}")
    changed = sorted(k for k, v in source["state_dict"].items() if not torch.equal(base[k], v))
    assert not changed, f"training changed base weights {changed[:3]}: they must stay bit-identical (frozen)"
