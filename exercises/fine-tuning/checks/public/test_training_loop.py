"""Public checks of the fine-tuning exercise: the schedule and the training loop's mechanics on a tiny known
model (float64 Linear(5, 3), driven through the stub's given ``train_linear``)."""

import math

import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_tensor_close, expect_type

NO_CLIP = 1e9


def _train(student, weight, bias, batches, **kwargs):
    return student.train_linear(weight, bias, batches, **kwargs)


@pytest.mark.points(1)
def test_lr_schedule_matches_library(student, ft):
    """lr_at equals transformers.get_linear_schedule_with_warmup at every step, warm-up 0 and past the end included"""
    for warmup, total in ((3, 10), (0, 6), (10, 10), (4, 7)):
        want = ft.library_lrs(2e-3, warmup, total, total + 3)
        got = [student.lr_at(step, 2e-3, warmup, total) for step in range(total + 3)]
        for value in got:
            expect_type(value, (float, int), f"lr_at(step, 2e-3, {warmup}, {total})")
        hint = ""
        if warmup and abs(got[0]) > 1e-15:
            hint = ("the first step (step 0) of a warm-up has learning rate 0: lr * step / warmup_steps, with steps "
                    "counted from 0. ")
        ft.expect_floats(got, want, f"lr_at(0..{total + 2}, 2e-3, warmup_steps={warmup}, total_steps={total})",
                         hint + "linear warm-up lr * s / max(1, warmup) while s < warmup, then linear decay "
                         "lr * max(0, (total - s) / max(1, total - warmup)), as get_linear_schedule_with_warmup",
                         rtol=1e-9)


@pytest.mark.points(2)
def test_one_adamw_step(student, reference, ft):
    """one step on a known model equals AdamW's first update worked out by hand: decoupled decay, then lr * g/|g|"""
    weight, bias, batches = ft.tiny_problem(1, 1)
    lr, wd = 0.05, 0.1
    got = ft.history(_train(student, weight, bias, batches, lr=lr, warmup_steps=0, max_grad_norm=NO_CLIP,
                            weight_decay=wd), 1, "train_linear(one batch)")
    w = weight.clone().requires_grad_(True)
    b = bias.clone().requires_grad_(True)
    F.cross_entropy(F.linear(batches[0]["features"], w, b), batches[0]["labels"]).backward()
    # AdamW's first step: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps), after p *= 1 - lr * wd
    by_hand = {"weight": weight * (1 - lr * wd) - lr * w.grad / (w.grad.abs() + 1e-8),
               "bias": bias * (1 - lr * wd) - lr * b.grad / (b.grad.abs() + 1e-8)}
    candidates = {
        "plain SGD (p - lr * g): use torch.optim.AdamW": {
            "weight": weight - lr * w.grad, "bias": bias - lr * b.grad},
        "plain SGD with weight decay (p - lr * (g + wd * p)): use torch.optim.AdamW": {
            "weight": weight - lr * (w.grad + wd * weight), "bias": bias - lr * (b.grad + wd * bias)},
        "no update at all (the weights did not move): no gradient reached optimizer.step(); is "
        "optimizer.zero_grad() called between backward() and step()? Zero the gradients before backward()": {
            "weight": weight, "bias": bias},
        "Adam with L2 (the decay added to the gradient: torch.optim.Adam(weight_decay=...)): use AdamW's decoupled "
        "decay": {"weight": weight - lr * (w.grad + wd * weight) / ((w.grad + wd * weight).abs() + 1e-8),
                  "bias": bias - lr * (b.grad + wd * bias) / ((b.grad + wd * bias).abs() + 1e-8)},
        "the decay alone, with no gradient: is optimizer.zero_grad() called between backward() and step()? Zero "
        "the gradients before backward()": {"weight": weight * (1 - lr * wd), "bias": bias * (1 - lr * wd)},
        "AdamW without weight decay: pass weight_decay to the optimizer": {
            "weight": weight - lr * w.grad / (w.grad.abs() + 1e-8), "bias": bias - lr * b.grad / (b.grad.abs() + 1e-8)},
    }
    advice = ("after one step of torch.optim.AdamW(model.parameters(), lr, weight_decay) with warm-up 0 (so this "
              "step's lr is lr), each weight should be p * (1 - lr * wd) - lr * g / (|g| + 1e-8)")
    for name, weights in candidates.items():
        if torch.allclose(got["weight"], weights["weight"], rtol=1e-7, atol=1e-9):
            advice = f"this is the update of {name}"
            break
    mean_loss = float(F.cross_entropy(F.linear(batches[0]["features"], weight, bias), batches[0]["labels"]))
    hint = "losses[k] is the mean cross-entropy of batch k BEFORE its update"
    if abs(float(got["losses"][0]) - len(batches[0]["labels"]) * mean_loss) < 1e-6 * len(batches[0]["labels"]):
        hint = ("the loss is the SUM over the batch: F.cross_entropy's default reduction='mean' is asked for (Adam "
                "hides the scale in its update, but the reported losses and the gradient norms that clipping sees "
                "do not). " + hint)
    if hint.startswith("the loss is the SUM"):
        advice = hint
    ft.expect_weights(got, by_hand, "one AdamW step", advice)
    ft.expect_weights(got, reference.train_linear(weight, bias, batches, lr=lr, warmup_steps=0, max_grad_norm=NO_CLIP,
                                                  weight_decay=wd), "one AdamW step (the reference)", advice)
    ft.expect_floats(got["losses"], [mean_loss], "losses of one step", hint)


@pytest.mark.points(1)
def test_gradients_zeroed_each_step(student, ft):
    """each step's gradient is that batch's alone: gradients are zeroed between steps"""
    weight, bias, batches = ft.tiny_problem(2, 4)
    got = ft.history(_train(student, weight, bias, batches, lr=0.0, warmup_steps=0, max_grad_norm=NO_CLIP,
                            weight_decay=0.0), 4, "train_linear(4 batches, lr=0)")
    norms = []
    for b in batches:  # lr 0: the model never moves, so each batch's gradient is taken at the same weights
        w = weight.clone().requires_grad_(True)
        c = bias.clone().requires_grad_(True)
        F.cross_entropy(F.linear(b["features"], w, c), b["labels"]).backward()
        norms.append(float(torch.sqrt((w.grad ** 2).sum() + (c.grad ** 2).sum())))
    if all(float(v) == 0.0 for v in got["grad_norms"]):
        advice = ("every gradient norm is 0: the gradients are zeroed after backward() and before they are used; "
                  "call optimizer.zero_grad() before loss.backward() (or after optimizer.step())")
    elif got["grad_norms"][-1] > 1.5 * norms[-1]:
        advice = ("the gradient norms grow from step to step: call optimizer.zero_grad() every step (before "
                  "backward), or the gradients of earlier batches accumulate")
    else:
        advice = ("grad_norms[k] is the global L2 norm of all gradients of step k before clipping (clip_grad_norm_ "
                  "returns it)")
    ft.expect_floats(got["grad_norms"], norms, "grad_norms (global L2 norm before clipping, per step)", advice)


@pytest.mark.points(1)
def test_gradient_clipping(student, reference, ft):
    """the global gradient norm is clipped to max_grad_norm before each optimiser step (norms reported before)"""
    weight, bias, batches = ft.tiny_problem(3, 6, scales=(1.0, 30.0, 0.1, 10.0))
    kwargs = {"lr": 0.05, "warmup_steps": 0, "weight_decay": 0.0}
    got = ft.history(_train(student, weight, bias, batches, max_grad_norm=0.01, **kwargs), 6,
                     "train_linear(max_grad_norm=0.01)")
    want = reference.train_linear(weight, bias, batches, max_grad_norm=0.01, **kwargs)
    unclipped = reference.train_linear(weight, bias, batches, max_grad_norm=NO_CLIP, **kwargs)
    advice = ("with max_grad_norm=0.01 the weights should follow the clipped updates: call "
              "torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm) after backward() and before "
              "optimizer.step() (one global norm over all parameters, not per parameter, not clip_grad_value_)")
    if torch.allclose(got["weight"], unclipped["weight"], rtol=1e-7, atol=1e-9):
        advice = "the weights are those of training WITHOUT clipping: clipping had no effect. " + advice
    # clip_grad_norm_ scales by max_norm / (norm + 1e-6); a hand-written max_norm / norm is as right and moves the
    # weights by ~1e-7 here, while the mistakes move them by 1e-2
    ft.expect_weights(got, want, "6 clipped steps", advice, rtol=1e-5, atol=1e-6)
    ft.expect_floats(got["grad_norms"], want["grad_norms"], "grad_norms with clipping", (
        "grad_norms are all max_grad_norm: report the norm BEFORE clipping (the value clip_grad_norm_ returns)"
        if all(abs(v - 0.01) < 1e-6 for v in got["grad_norms"]) else
        "grad_norms[k] is the global L2 norm of step k's gradients before clipping"), rtol=1e-5)


@pytest.mark.points(1)
def test_schedule_drives_the_optimizer(student, reference, ft):
    """each step uses the learning rate the library's schedule gives that step (warm-up from 0, then decay)"""
    weight, bias, batches = ft.tiny_problem(4, 6)
    kwargs = {"lr": 0.05, "warmup_steps": 2, "max_grad_norm": NO_CLIP, "weight_decay": 0.0}
    got = ft.history(_train(student, weight, bias, batches, **kwargs), 6, "train_linear(warmup_steps=2, 6 batches)")
    library = ft.library_lrs(0.05, 2, 6, 6)
    lrs = [float(v) for v in got["lrs"]]
    want = reference.train_linear(weight, bias, batches, **kwargs)
    weights_right = all(torch.allclose(got[key], want[key], rtol=1e-7, atol=1e-9) for key in ("weight", "bias"))
    if weights_right and all(abs(a - b) < 1e-12 for a, b in zip(lrs, [*library[1:], 0.0], strict=True)):
        hint = ("the weights are right but lrs are one step ahead: record optimizer.param_groups[0]['lr'] BEFORE "
                "scheduler.step() (the rate that step's optimizer.step() used), not after. ")
    elif all(abs(a - b) < 1e-12 for a, b in zip(lrs, [*library[1:], 0.0], strict=True)):
        hint = "the learning rates are one step off: call scheduler.step() AFTER optimizer.step(), once per step. "
    elif len(set(lrs)) == 1:
        hint = "the learning rate never changes: step the scheduler once per optimiser step. "
    else:
        hint = ""
    ft.expect_floats(lrs, library, "lrs (the learning rate each step used)", hint + (
        "lrs[k] is optimizer.param_groups[0]['lr'] when step k's optimizer.step() runs: 0, 0.025, 0.05, then "
        "linear decay to 0 for lr=0.05, warmup_steps=2, 6 steps"))
    ft.expect_weights(got, want, "6 scheduled steps", hint + "the weights differ from AdamW under the linear schedule")


@pytest.mark.points(1)
def test_training_deterministic_under_seed(student, ft):
    """the same seed gives the same training run (dropout included); another seed another run"""
    weight, bias, batches = ft.tiny_problem(5, 3)
    kwargs = {"lr": 0.05, "warmup_steps": 0, "max_grad_norm": 1.0, "dropout": 0.5}
    first = ft.history(_train(student, weight, bias, batches, seed=7, **kwargs), 3, "train_linear(dropout=0.5)")
    again = ft.history(_train(student, weight, bias, batches, seed=7, **kwargs), 3, "train_linear again")
    other = ft.history(_train(student, weight, bias, batches, seed=8, **kwargs), 3, "train_linear(seed=8)")
    advice = ("two runs with seed=7 differ: call torch.manual_seed(seed) at the start of train_classifier, so the "
              "dropout masks are the same in every run with the same seed")
    assert_tensor_close(again["weight"], first["weight"], rtol=0, atol=0, name="weight after a second seed-7 run",
                        advice=advice)
    assert not torch.equal(other["weight"], first["weight"]), (
        "seeds 7 and 8 gave the same run with dropout 0.5, so dropout did nothing: train in train mode "
        "(model.train() before the loop; model.eval() only once training is done) and let the seed drive the "
        "dropout masks")
    assert all(math.isfinite(v) for v in first["losses"]), "train_classifier returned non-finite losses"
