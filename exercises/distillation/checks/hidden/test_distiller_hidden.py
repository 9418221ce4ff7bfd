"""Hidden checks of the distillation exercise: a frozen teacher in eval mode, one training step worked out on
the trusted side, and the distilled student against a hard-label student of the same size on hidden points."""

import math

import pytest
import torch
import torch.nn.functional as F

from grader.testing import assert_tensor_close, curve, expect_tensor, expect_type, record


def _distiller(student, task, kd, **kwargs):
    return student.new("Distiller", task.teacher_state, kd.TEACHER, kd.STUDENT, **kwargs)


def _step(d, x, y, what):
    out = d.train_step(x, y)
    expect_type(out, dict, what)
    assert "loss" in out and "teacher_logits" in out, f"{what} should return {{'loss': ..., 'teacher_logits': ...}}"
    assert type(out["loss"]) in (float, int) and math.isfinite(out["loss"]), f"{what}['loss'] should be a finite float"
    expect_tensor(out["teacher_logits"], (len(x), 10), torch.float32, f"{what}['teacher_logits']")
    return out


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_teacher_frozen_in_eval_mode(student, task, kd):
    """the teacher runs in eval mode (dropout off), gets no gradient and never changes while the student trains"""
    d = _distiller(student, task, kd, temperature=2.0, alpha=0.9, lr=1e-2, dropout=0.3, seed=1)
    steps = []
    for k in range(3):
        x, y = task.train_x[8 * k:8 * k + 8], task.train_y[8 * k:8 * k + 8]
        steps.append((x, _step(d, x, y, f"train_step (step {k + 1})")))
    grads = d.teacher_grads()
    expect_type(grads, list, "teacher_grads()")
    touched = [i for i, g in enumerate(grads) if isinstance(g, torch.Tensor) and bool((g != 0).any())]
    assert not touched, (
        f"{len(touched)} teacher parameters hold gradients after training: the teacher gets no gradient. Compute "
        "its logits under torch.no_grad() (or freeze it with requires_grad_(False)) and keep it out of the optimizer")
    after = d.teacher_state()
    expect_type(after, dict, "teacher_state()")
    for key, value in task.teacher_state.items():
        assert key in after, f"teacher_state() has no {key!r}: build the teacher with make_mlp(teacher_sizes, dropout)"
        assert_tensor_close(after[key], value, rtol=0, atol=0, name=f"teacher {key} after 3 steps", advice=(
            "the teacher's weights changed: give the optimizer the student's parameters only"))
    for k, (x, out) in enumerate(steps):
        with torch.no_grad():
            want = task.teacher(x)
        assert_tensor_close(out["teacher_logits"], want, rtol=1e-5, atol=1e-5,
                            name=f"teacher_logits of train_step {k + 1}", advice=(
                                "the teacher's logits are not its eval-mode predictions: put the teacher in eval "
                                "mode (dropout off) and keep it there; student.train() must not switch it back "
                                "(model.train() on a module holding both models does)"))


def _worked_update(state, sizes, batches, teacher, temperature, alpha, lr, reference, zero_grad=True):
    """The student's weights after AdamW steps on alpha * KD + (1 - alpha) * CE, worked out here, and each step's
    loss in the KL form and in the soft cross-entropy form (which adds T^2 times the teacher's entropy)."""
    model = reference.make_mlp(sizes, 0.0)
    model.load_state_dict(state)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    losses = []
    for x, y in batches:
        with torch.no_grad():
            t = teacher(x)
        s = model(x)
        hard = F.cross_entropy(s, y)
        loss = alpha * reference.kd_loss(s, t, temperature) + (1 - alpha) * hard
        p_t = F.softmax(t / temperature, -1)
        entropy = float(-(p_t * F.log_softmax(t / temperature, -1)).sum(-1).mean()) * temperature**2
        losses.append((float(loss), float(loss) + alpha * entropy))
        if zero_grad:
            optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {k: v.detach() for k, v in model.state_dict().items()}, losses


def _loss_mistakes(state, sizes, x, y, teacher, temperature, alpha, reference):
    """What the first step's loss is under classic mixing mistakes (KL and soft cross-entropy forms)."""
    model = reference.make_mlp(sizes, 0.0)
    model.load_state_dict(state)
    with torch.no_grad():
        t = teacher(x)
        s = model(x)
        hard = float(F.cross_entropy(s, y))
        kd = float(reference.kd_loss(s, t, temperature))
        kd_1 = float(reference.kd_loss(s, t, 1.0))
        p_t, p_1 = F.softmax(t / temperature, -1), F.softmax(t, -1)
        h = float(-(p_t * p_t.log()).sum(-1).mean()) * temperature**2
        h_1 = float(-(p_1 * p_1.log()).sum(-1).mean())
    return {
        "alpha weights the cross-entropy and 1 - alpha the KD term: swap them": [
            (1 - alpha) * kd + alpha * hard, (1 - alpha) * (kd + h) + alpha * hard],
        "the KD term is computed at T = 1: pass the distiller's temperature to kd_loss": [
            alpha * kd_1 + (1 - alpha) * hard, alpha * (kd_1 + h_1) + (1 - alpha) * hard],
        "the loss is the hard-label cross-entropy only: the teacher's KD term never enters it": [hard],
        "the loss is the KD term only: add (1 - alpha) times the cross-entropy with the labels": [
            kd, alpha * kd, kd + h, alpha * (kd + h)],
        "the two terms are added without the weights alpha and 1 - alpha": [kd + hard, kd + h + hard],
    }


def _close(a, b):
    return abs(a - b) <= 1e-4 * max(1.0, abs(b))


def _same(got, want):
    return (isinstance(got, torch.Tensor) and got.shape == want.shape and got.dtype == want.dtype
            and torch.allclose(got, want, rtol=1e-4, atol=1e-6))


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_train_steps_match_worked_update(student, reference, task, kd):
    """two train_steps equal AdamW steps on alpha * KD + (1 - alpha) * CE from the student's own initial weights"""
    temperature, alpha, lr = 3.0, 0.7, 5e-3
    d = _distiller(student, task, kd, temperature=temperature, alpha=alpha, lr=lr, dropout=0.0, seed=2)
    start = d.student_state()
    expect_type(start, dict, "student_state()")
    for key, value in task.student_shapes.items():
        assert key in start and isinstance(start[key], torch.Tensor) and start[key].shape == value, (
            f"student_state() should hold {key!r} of shape {tuple(value)}: build the student with "
            "make_mlp(student_sizes, dropout)")
    batches = [(task.train_x[:16], task.train_y[:16]), (task.train_x[16:32], task.train_y[16:32])]
    want, losses = _worked_update(start, kd.STUDENT, batches, task.teacher, temperature, alpha, lr, reference)
    got_losses = [_step(d, x, y, f"train_step {k + 1}")["loss"] for k, (x, y) in enumerate(batches)]
    for k, (got, forms) in enumerate(zip(got_losses, losses, strict=True)):
        if any(_close(got, form) for form in forms):
            continue
        named = None
        if k == 0:
            mistakes = _loss_mistakes(start, kd.STUDENT, *batches[0], task.teacher, temperature, alpha, reference)
            named = next((advice for advice, values in mistakes.items() if any(_close(got, v) for v in values)),
                         None)
        raise AssertionError(
            f"the loss train_step {k + 1} returns is not alpha * kd_loss(student, teacher, temperature) + (1 - alpha) "
            "* cross_entropy(student, labels), computed before the update"
            + (f": {named}" if named else " (with alpha and temperature as given to Distiller)"))
    after = d.student_state()
    expect_type(after, dict, "student_state() after the steps")
    accumulated, _ = _worked_update(start, kd.STUDENT, batches, task.teacher, temperature, alpha, lr, reference,
                                    zero_grad=False)
    advice = ("the student's weights differ from two AdamW(lr) steps on alpha * KD + (1 - alpha) * CE: "
              "torch.optim.AdamW(student.parameters(), lr=lr), zero_grad, backward and step once per train_step")
    if all(_same(after.get(key), value) for key, value in accumulated.items()):
        advice = ("the gradients are never zeroed: the second step used the sum of both steps' gradients. Call "
                  "optimizer.zero_grad() every step")
    for key, value in want.items():
        assert key in after, f"student_state() has no {key!r}: build the student with make_mlp(student_sizes, dropout)"
        assert_tensor_close(after[key], value, rtol=1e-4, atol=1e-6, name=f"student {key} after 2 train_steps",
                            advice=advice)


@pytest.mark.points(4)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(120)
def test_distilled_student_beats_hard_label_student(student, reference, task, kd, targets, seed, reference_curve):
    """on hidden points, the distilled student beats a same-size student trained on hard labels only (same steps
    and seed) by the target margin, and gets close to the teacher"""
    steps, alpha, temperature = int(targets["steps"]), float(targets["alpha"]), float(targets["temperature"])
    kwargs = {"temperature": temperature, "lr": 1e-2, "dropout": 0.1, "seed": seed}
    d = _distiller(student, task, kd, alpha=alpha, **kwargs)
    losses = d.fit(task.train_x, task.train_y, steps, batch_size=32, seed=seed)
    expect_type(losses, (list, tuple), "fit(...)")
    assert len(losses) == steps and all(type(v) in (float, int) and math.isfinite(v) for v in losses), (
        f"fit(..., steps={steps}) should return {steps} finite Python floats, one loss per step")
    loss_curve = [float(v) for v in losses]
    curve("training loss", loss_curve, reference=reference_curve("loss", loss_curve))
    logits = expect_tensor(d.student_logits(task.hidden_x), (len(task.hidden_x), 10), torch.float32,
                           "student_logits(hidden points)")
    distilled = float((logits.argmax(-1) == task.hidden_y).float().mean())
    baseline_model = reference.Distiller(task.teacher_state, kd.TEACHER, kd.STUDENT, alpha=0.0, **kwargs)
    baseline_model.fit(task.train_x, task.train_y, steps, batch_size=32, seed=seed)
    baseline = float((baseline_model.student_logits(task.hidden_x).argmax(-1) == task.hidden_y).float().mean())
    record("hidden_accuracy", {"distilled": distilled, "hard_label_baseline": baseline,
                               "teacher": task.teacher_accuracy, "points": len(task.hidden_y)})
    margin, share = float(targets["min_margin"]), float(targets["min_teacher_share"])
    assert distilled >= baseline + margin and distilled >= share * task.teacher_accuracy, (
        f"the distilled student reaches {distilled:.3f} on hidden points; the same-size student trained on hard "
        f"labels only reaches {baseline:.3f} and the teacher {task.teacher_accuracy:.3f}. Distillation should beat "
        f"the baseline by {margin:.2f} and reach {share:.0%} of the teacher: train on alpha * kd_loss + "
        "(1 - alpha) * cross-entropy with the frozen teacher's eval-mode logits, at the given temperature")
