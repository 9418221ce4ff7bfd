"""Public checks of the training pieces, each against torch or a published vector."""

import math

import pytest
import torch
import torch.nn.functional as F

from grader.testing import expect_close, expect_tensor, expect_type

CROSS_ENTROPY = ("cross_entropy(logits, targets) is the MEAN over the N rows of logsumexp(logits[i]) - "
                 "logits[i, targets[i]]; subtract each row's max before exp (or use torch.logsumexp)")

# CS336 assignment 1 (tests/test_optimizer.py): max_lr 1, min_lr 0.1, warm-up 7, cosine cycle 21, iterations 0..24
PUBLISHED_SCHEDULE = [
    0, 0.14285714285714285, 0.2857142857142857, 0.42857142857142855, 0.5714285714285714, 0.7142857142857143,
    0.8571428571428571, 1.0, 0.9887175604818206, 0.9554359905560885, 0.9018241671106134, 0.8305704108364301,
    0.7452476826029011, 0.6501344202803414, 0.55, 0.44986557971965857, 0.3547523173970989, 0.26942958916356996,
    0.19817583288938662, 0.14456400944391146, 0.11128243951817937, 0.1, 0.1, 0.1, 0.1,
]


def _ce_diagnose(logits, targets):
    def check(got, want):
        total = float(want) * logits.shape[0]
        if logits.shape[0] > 1 and got.numel() == 1 and abs(float(got) - total) <= 1e-4 * abs(total) + 1e-5:
            return "cross_entropy returns the SUM over the rows: return their mean"
        if not bool(torch.isfinite(got).all()):
            return "cross_entropy overflowed: exp() of large logits is inf; subtract each row's max first"
        return None
    return check


@pytest.mark.points(1)
def test_cross_entropy_matches_torch(student, targets):
    """cross_entropy equals F.cross_entropy (mean over rows), in float32 and float64"""
    for dtype, rows, vocab in ((torch.float32, 20, 13), (torch.float64, 7, 50), (torch.float32, 1, 2)):
        logits = torch.randn(rows, vocab, dtype=dtype) * 3
        labels = torch.randint(0, vocab, (rows,))
        got = expect_tensor(student.cross_entropy(logits, labels), shape=(), dtype=dtype,
                            what=f"cross_entropy({rows}x{vocab} {str(dtype)[6:]} logits)")
        expect_close(got, F.cross_entropy(logits, labels), targets=targets, what="cross_entropy",
                     advice=CROSS_ENTROPY, diagnose=_ce_diagnose(logits, labels))


@pytest.mark.points(1)
def test_cross_entropy_large_logits(student, targets):
    """cross_entropy stays finite and exact for logits x 1000, + 10^4, and one dominant logit"""
    base = torch.randn(16, 50)
    labels = torch.randint(0, 50, (16,))
    dominant = torch.zeros(4, 10)
    dominant[:, 3] = 1e4
    cases = ((base * 1000, labels, "logits x 1000"), (base + 1e4, labels, "logits + 10^4"),
             (dominant, torch.tensor([3, 0, 3, 9]), "one logit of 10^4 per row"))
    for logits, y, what in cases:
        got = expect_tensor(student.cross_entropy(logits, y), shape=(), dtype=torch.float32,
                            what=f"cross_entropy on {what}")
        want = F.cross_entropy(logits, y)
        expect_close(got, want, targets=targets, what=f"cross_entropy on {what}", diagnose=_ce_diagnose(logits, y),
                     advice=f"{what}: exp() overflows float32 above about 88; {CROSS_ENTROPY}")


def _torch_clip(grads, max_norm):
    params = []
    for g in grads:
        p = torch.nn.Parameter(torch.zeros_like(g) if g is not None else torch.zeros(1))
        p.grad = None if g is None else g.clone()
        params.append(p)
    torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None], max_norm)
    return [p.grad for p in params]


@pytest.mark.points(1)
def test_gradient_clipping_matches_torch(student, targets):
    """clip_gradients scales all gradients together as clip_grad_norm_ does; None (frozen) stays None"""
    grads = [torch.randn(3, 4) * 2, None, torch.randn(5), torch.randn(2, 2, 2) * 3]
    for max_norm in (1e-2, 1.0, 1e3):
        got = student.clip_gradients(grads, max_norm)
        expect_type(got, (list, tuple), "clip_gradients(...)")
        assert len(got) == len(grads), f"clip_gradients returned {len(got)} gradients for {len(grads)}"
        assert got[1] is None, "the frozen parameter's gradient (None) must stay None"
        want = _torch_clip(grads, max_norm)
        total = math.sqrt(sum(float((g**2).sum()) for g in grads if g is not None))
        for i in (0, 2, 3):
            expect_close(expect_tensor(got[i], shape=tuple(grads[i].shape), what=f"gradient {i}"), want[i],
                         targets=targets, what=f"gradient {i} clipped to max_norm={max_norm}", advice=(
                f"the total norm is {total:.3g}: when it exceeds max_norm, scale EVERY gradient by max_norm / "
                "(total + 1e-6), where total = sqrt of the sum of all squared entries of all gradients (one "
                "norm for them all, not one per tensor); when it does not, leave them as they are"))


def _linear_trajectory(weight, bias, inputs, wanted, steps, lr, betas, eps, decay, decay_after):
    """torch.optim.AdamW's trajectory; or, with ``decay_after``, torch's Adam followed by the decoupled decay
    p *= 1 - lr * weight_decay (the order some course notes give: the same algorithm up to lr^2 terms)."""
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    if decay_after:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=betas, eps=eps)
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=decay)
    for _ in range(steps):
        optimizer.zero_grad()
        ((model(inputs) - wanted) ** 2).mean().backward()
        optimizer.step()
        if decay_after:
            with torch.no_grad():
                for p in model.parameters():
                    p.mul_(1 - lr * decay)
    return [model.weight.detach(), model.bias.detach()]


@pytest.mark.points(1)
def test_adamw_matches_torch(student, targets):
    """your AdamW trains nn.Linear like torch.optim.AdamW (1000 steps; and large weight decay)"""
    for lr, betas, eps, decay, steps in ((1e-3, (0.9, 0.999), 1e-8, 0.01, 1000), (1e-2, (0.8, 0.99), 1e-6, 0.5, 150)):
        weight, bias = torch.randn(2, 3), torch.randn(2)
        inputs, wanted = torch.randn(16, 3), torch.randn(16, 2)
        got = student.adamw_trajectory(weight, bias, inputs, wanted, steps, lr, betas, eps, decay)
        expect_type(got, (list, tuple), "adamw_trajectory(...)")
        assert len(got) == 2, "adamw_trajectory should return [weight, bias]"
        got = [expect_tensor(v, shape=s, what=n) for v, s, n in zip(got, ((2, 3), (2,)), ("weight", "bias"),
                                                                     strict=True)]
        oracles = [_linear_trajectory(weight, bias, inputs, wanted, steps, lr, betas, eps, decay, after)
                   for after in (False, True)]
        if any(all(torch.allclose(g, w, rtol=0, atol=1e-4) for g, w in zip(got, oracle, strict=True))
               for oracle in oracles):
            continue
        for name, value, want in zip(("weight", "bias"), got, oracles[0], strict=True):
            expect_close(value, want, rtol=0, atol=1e-4,
                         what=f"Linear {name} after {steps} AdamW steps (lr={lr}, weight_decay={decay})", advice=(
                "AdamW: m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2; with t the step count from 1, "
                "p -= lr * (m/(1-b1^t)) / (sqrt(v/(1-b2^t)) + eps), and the weight decay p -= lr*weight_decay*p "
                "applied to the parameter itself (decoupled), never added to the gradient"))


@pytest.mark.points(1)
def test_cosine_schedule_published(student):
    """lr_cosine_schedule reproduces the published warm-up + cosine vector (CS336, 25 iterations)"""
    got = [student.lr_cosine_schedule(it, 1.0, 0.1, 7, 21) for it in range(25)]
    for value in got:
        assert type(value) in (float, int), f"lr_cosine_schedule should return a Python float, got {value!r}"
    bad = [it for it, (g, w) in enumerate(zip(got, PUBLISHED_SCHEDULE, strict=True))
           if abs(float(g) - w) > 1e-6 * max(1.0, abs(w))]
    assert not bad, (
        f"the learning rate at iterations {bad} differs from the published schedule (got "
        f"{[round(float(got[i]), 6) for i in bad[:4]]}, expected "
        f"{[round(PUBLISHED_SCHEDULE[i], 6) for i in bad[:4]]}): "
        "warm-up is max_lr * it / warmup_iters (0 at it = 0), then for warmup <= it <= cycle "
        "min_lr + (1 + cos(pi * (it - warmup) / (cycle - warmup))) / 2 * (max_lr - min_lr), then min_lr")


@pytest.mark.points(2)
def test_get_batch_uniform(student):
    """get_batch draws contiguous windows, targets shifted by one, starts uniform (5-sigma binomial bounds)"""
    length, context, batch, calls = 100, 7, 4000, 8
    data = torch.arange(length) * 7 + 3  # values differ from positions, so a window of indices shows
    starts_seen = []
    for _ in range(calls):
        result = student.get_batch(data, batch, context, "cpu")
        expect_type(result, (tuple, list), "get_batch(...)")
        assert len(result) == 2, "get_batch should return (x, y)"
        x = expect_tensor(result[0], shape=(batch, context), dtype=torch.int64, what="x")
        y = expect_tensor(result[1], shape=(batch, context), dtype=torch.int64, what="y")
        starts = (x[:, 0] - 3) // 7
        in_range = bool(((starts >= 0) & (starts <= length - context - 1)).all())
        assert in_range and bool(((x[:, 0] - 3) % 7 == 0).all()), (
            "x's first tokens are not data values at start positions 0..len(data)-context_length-1: x must be "
            "data[s : s + context_length]")
        window = starts[:, None] + torch.arange(context)
        assert torch.equal(x, data[window]), "each row of x must be a contiguous window data[s : s + context_length]"
        if torch.equal(y, x):
            raise AssertionError("y equals x: the targets must be the NEXT tokens, y = data[s + 1 : s + 1 + "
                                 "context_length] (with y = x the model learns to copy and its loss means nothing)")
        assert torch.equal(y, data[window + 1]), "y must be x shifted by one: data[s + 1 : s + 1 + context_length]"
        starts_seen.append(starts)
    counts = torch.bincount(torch.cat(starts_seen), minlength=length - context).double()
    n, k = batch * calls, length - context
    mean, sigma = n / k, math.sqrt(n * (1 / k) * (1 - 1 / k))
    low, high = int(counts.argmin()), int(counts.argmax())
    # k = 93 counts, each within 5 sigma of Binomial(32000, 1/93): a uniform sampler fails with probability
    # below 93 * 5.7e-7 = 5e-5 (normal approximation), i.e. less than once in 10^4 gradings
    assert counts.min() >= mean - 5 * sigma and counts.max() <= mean + 5 * sigma, (
        f"start positions are not uniform over 0..{k - 1} (len(data) - context_length - 1): start {low} drawn "
        f"{int(counts[low])} times, start {high} {int(counts[high])} times, expected {mean:.0f} +- {5 * sigma:.0f} "
        f"(5 sigma; a uniform sampler fails this less than once in 10^4): draw s with "
        f"torch.randint(0, len(data) - context_length, (batch_size,)), the upper bound excluded")
