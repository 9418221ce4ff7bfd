"""Hidden checks of the lora exercise: seeded layer cases, the adapter's save/reload round trip, and LoRA on
SmolLM2 (the parameter count and a held-out loss drop measured here on the saved adapter)."""

import json
import math
from pathlib import Path

import pytest
import torch

from grader.testing import StudentCodeError, assert_tensor_close, curve, expect_type, record


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_layer_cases(student, seed):
    """seeded sizes (r above d_in, no bias, 3-D input): forward, merge/unmerge/merge, backward twice"""
    g = torch.Generator().manual_seed(seed)
    d_in, d_out, r, alpha = 3, int(torch.randint(5, 12, (1,), generator=g)), 6, 3.0
    w = torch.randn(d_out, d_in, generator=g)
    a_, b_ = torch.randn(r, d_in, generator=g), torch.randn(d_out, r, generator=g)
    layer = student.new("LoRALinear", w, None, r, alpha)
    layer.set_adapter(a_, b_)
    x = torch.randn(2, 3, 4, d_in, generator=g)
    want = x @ w.T + (alpha / r) * (x @ a_.T) @ b_.T
    for step in ("merge", "unmerge", "merge"):
        getattr(layer, step)()
        assert_tensor_close(layer.forward(x), want, rtol=1e-4, atol=1e-5, name=f"forward after {step}",
                            advice="merging and unmerging must never change the outputs (no bias: b is None)")
    layer.unmerge()
    go = torch.randn(2, 3, 4, d_out, generator=g)
    first = layer.backward(x, go)
    second = layer.backward(x, go)
    expect_type(second, dict, "backward(...)")
    s = alpha / r
    flat_x, flat_g = x.reshape(-1, d_in), go.reshape(-1, d_out)
    for name, grads in (("first", first), ("second", second)):
        assert_tensor_close(grads.get("B"), s * flat_g.T @ (flat_x @ a_.T), rtol=1e-4, atol=1e-4,
                            name=f"dL/dB ({name} call)", advice="clear the gradients in backward(): two calls must "
                                                                "give the same gradients, not their sum")
    with pytest.raises(StudentCodeError) as err:
        layer.set_adapter(a_.T.contiguous(), b_)
        pytest.fail("set_adapter accepted A of shape (d_in, r): raise ValueError when A is not (r, d_in)")
    assert err.value.exc_type == "ValueError", f"a wrongly shaped A should raise ValueError, not {err.value.exc_type}"


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_save_and_reload_adapter(student, lo, job_files, seed):
    """save_adapter writes peft's adapter files (config r, alpha, targets); they reload here and in a new tuner"""
    source = lo.tiny_source(seed=seed)
    targets, r, alpha = ["q_proj", "k_proj", "v_proj", "o_proj"], 4, 8.0
    tuner = student.new("LoraFineTuner", source, r=r, alpha=alpha, target_modules=targets, init="random", seed=seed)
    batch = lo.token_batch(seed=seed + 1)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    logits = tuner.logits(ids, mask)
    host, inside = job_files.shared_dir()
    tuner.save_adapter(f"{inside}/adapter")
    folder = Path(host) / "adapter"
    config_file, weights_file = folder / "adapter_config.json", folder / "adapter_model.safetensors"
    assert config_file.is_file() and weights_file.is_file(), (
        f"save_adapter should write adapter_config.json and adapter_model.safetensors (peft's save_pretrained); "
        f"found {sorted(p.name for p in folder.glob('*'))[:6]}")
    config = json.loads(config_file.read_text(encoding="utf-8"))
    assert config.get("r") == r and float(config.get("lora_alpha", -1)) == alpha, (
        f"the saved config has r={config.get('r')}, lora_alpha={config.get('lora_alpha')}; expected r={r}, "
        f"lora_alpha={alpha}")
    assert sorted(config.get("target_modules") or []) == sorted(targets), (
        f"the saved target_modules are {config.get('target_modules')}, expected {targets}")
    from peft import PeftModel

    reloaded = PeftModel.from_pretrained(lo.trusted_base(source), str(folder)).eval()
    with torch.no_grad():
        want = reloaded(input_ids=ids, attention_mask=mask).logits
    assert_tensor_close(lo.real(logits, mask), lo.real(want, mask), **lo.LOGIT_TOL,
                        name="logits of the reloaded adapter",
                        advice="peft's PeftModel.from_pretrained on your saved folder gives other logits: save the "
                               "trained peft model itself (model.save_pretrained(path))")
    fresh = student.new("LoraFineTuner", source, r=r, alpha=alpha, target_modules=targets, init="random",
                        seed=seed + 7)
    fresh.load_adapter(f"{inside}/adapter")
    assert_tensor_close(lo.real(fresh.logits(ids, mask), mask), lo.real(want, mask), **lo.LOGIT_TOL,
                        name="logits of a new tuner after load_adapter",
                        advice="load_adapter must replace the new tuner's adapter weights with the saved ones")


def _examples(reference, folder, pairs, limit):
    return [reference.encode_example(folder, p, r, max_length=limit) for p, r in pairs]


@pytest.mark.points(3)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(600)
def test_smollm_lora_learns_instructions(student, reference, lo, assets, targets, job_files, profile, reference_curve):
    """SmolLM2 with q,v adapters: 460,800 trainable (r=8); loss falls within the budget; held-out loss drops"""
    from transformers import AutoConfig

    folder = str(assets["causal-lm-small"])
    config = AutoConfig.from_pretrained(folder).to_dict()
    r, alpha, modules = int(targets["lora_r"]), float(targets["lora_alpha"]), ["q_proj", "v_proj"]
    tuner = student.new("LoraFineTuner", folder, r=r, alpha=alpha, target_modules=modules,
                        device="cuda" if profile == "gpu" else "cpu")
    counts = tuner.parameter_counts()
    expect_type(counts, dict, "parameter_counts()")
    want = lo.expected_trainable(config, modules, r)
    record("trainable", counts.get("trainable"))
    assert counts.get("trainable") == want, (
        f"the real model has {counts.get('trainable')} trainable parameters with q_proj and v_proj adapters at "
        f"r={r}, expected {want} (30 layers x r x (576+576 + 576+192) for SmolLM2-135M)")
    assert counts.get("total") == lo.folder_base_count(Path(folder)) + want, "total = base parameters + adapters"
    limit, per_batch = int(targets["max_length"]), int(targets["batch_size"])
    train = _examples(reference, folder, lo.instruction_pairs(Path(assets["wiki-sample"]), "train",
                                                              int(targets["train_examples"])), limit)
    held = _examples(reference, folder, lo.instruction_pairs(Path(assets["wiki-sample"]), "held-out", 10), limit)
    pad = 2
    batches = [reference.collate(train[i:i + per_batch], pad) for i in range(0, len(train), per_batch)]
    steps = int(targets["max_steps"])
    losses = tuner.train(batches, steps=steps, lr=float(targets["lr"]))
    expect_type(losses, list, "train(...)")
    assert len(losses) == steps and all(isinstance(v, float) and math.isfinite(v) for v in losses), (
        f"train(..., steps={steps}) should return {steps} finite floats")
    loss_curve = losses
    curve("training loss", loss_curve, reference=reference_curve("loss", loss_curve))
    head, tail = sum(losses[:2]) / 2, sum(losses[-2:]) / 2
    assert tail < head, (f"the training loss did not fall ({head:.3f} over the first 2 steps, {tail:.3f} over the last "
                         "2): step AdamW on the adapter parameters every step")
    host, inside = job_files.shared_dir()
    tuner.save_adapter(f"{inside}/smollm-adapter")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    held_batch = reference.collate(held, pad)
    before = lo.response_loss(base, held_batch)
    model = PeftModel.from_pretrained(base, str(Path(host) / "smollm-adapter")).eval()
    after = lo.response_loss(model, held_batch)
    record("held_out_response_loss", {"base": before, "adapted": after})
    ratio = float(targets["max_held_out_loss_ratio"])
    assert after <= ratio * before, (
        f"on held-out articles the response loss went from {before:.3f} (base) to {after:.3f} with your adapter; "
        f"it should fall to at most {ratio:.0%} of the base loss within {steps} steps: train the adapters with "
        "AdamW at the given lr on the given batches (labels as given), and save the trained adapter")
