"""Hidden checks of the pretrained-classifier exercise: accuracy on hidden sentences within the step budget."""

from pathlib import Path

import pytest
import torch

from grader.testing import assert_tensor_close, confusion, curve, expect_type, record

HELD_OUT = Path(__file__).parent / "data" / "held_out.txt"


def _held_out():
    rows = [line.split("\t", 1) for line in HELD_OUT.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [text for _, text in rows], [int(label) for label, _ in rows]


def _predictions(value, n, what):
    expect_type(value, (list, tuple), what)
    assert len(value) == n, f"{what} returned {len(value)} labels for {n} texts"
    for p in value:
        assert type(p) is int and p in (0, 1), f"{what} should return Python ints 0 or 1, found {p!r}"
    return list(value)


@pytest.mark.points(3)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(90)
def test_held_out_accuracy(clf, ref_clf, cls, train_split, targets, seed, reference, model_dir, reference_curve):
    """after fit on the provided sentences within the step budget, accuracy on hidden sentences reaches the target"""
    # the outcome is measured whatever the path to it; the preconditions only explain a shortfall
    texts, labels = train_split
    steps = int(targets["max_steps"])
    losses = cls.expect_losses(clf.fit(texts, labels, steps=steps, seed=seed), steps)
    held_texts, held_labels = _held_out()
    predicted = _predictions(clf.predict(held_texts), len(held_texts), "predict(held-out texts)")
    accuracy = sum(int(p == y) for p, y in zip(predicted, held_labels, strict=True)) / len(held_labels)
    # drawn in the report: the head's training loss beside the reference's (a fresh one, same data, seed, steps)
    curve("training loss", losses, reference=reference_curve(
        "loss", losses, lambda: reference.SentenceClassifier(model_dir).fit(texts, labels, steps=steps, seed=seed)))
    confusion("held-out sentences", held_labels, predicted, classes=["negative", "positive"])
    record("held_out_accuracy", accuracy)
    record("steps", steps)
    target = float(targets["min_accuracy"])
    if accuracy >= target:
        return
    why = f"held-out accuracy {accuracy:.2f} is below the target {target:.2f} after {steps} steps; "
    cls.expect_pretrained(clf, ref_clf, cls.PROBES[:2], why=why)
    cls.expect_pooled(clf, ref_clf, ["a short one", "and a somewhat longer second text"], why=why)
    raise AssertionError(
        f"{why}the encoder and pooling are right: train the head with cross-entropy on the pooled vectors (AdamW, "
        "lr around 1e-2), predict with argmax over the labels")


@pytest.mark.points(1)
def test_predict_matches_logits(clf, cls):
    """predict returns, for each text, the index of its largest logit"""
    texts, _ = _held_out()
    texts = texts[::4]
    torch.manual_seed(5)
    pooled_dim = clf.embed(texts[:1])
    expect_type(pooled_dim, torch.Tensor, "embed()")
    clf.load_head(cls.random_head(int(pooled_dim.shape[-1]), seed=7))
    logits = clf.logits(texts)
    expect_type(logits, torch.Tensor, "logits()")
    predicted = _predictions(clf.predict(texts), len(texts), "predict(texts)")
    want = logits.argmax(dim=-1).tolist()
    assert predicted == want, (
        f"predict gave {predicted}, but the argmax of your logits over the LABEL axis (dim=-1) is {want}")


ONE_TEXT = "a warm, funny and beautifully acted film"
PROBE_TEXTS = ["a dull, lifeless film", "wonderful", "I would not watch it again", ONE_TEXT]


def _replay(features, probe, head, steps, batch_size, lr, *, zero_grad=True, per_step=1):
    """AdamW on one repeated example from ``head``: what `steps` steps give, whatever batches are drawn."""
    linear = torch.nn.Linear(features.shape[1], 2)
    with torch.no_grad():
        linear.weight.copy_(head["weight"])
        linear.bias.copy_(head["bias"])
    optimizer = torch.optim.AdamW(linear.parameters(), lr=lr)
    batch, target = features.expand(batch_size, -1), torch.ones(batch_size, dtype=torch.long)
    losses = []
    for _ in range(steps):
        for inner in range(per_step):
            loss = torch.nn.functional.cross_entropy(linear(batch), target)
            if inner == 0:
                losses.append(float(loss))
            if zero_grad:
                optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return losses, linear(probe)


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(120)
def test_fit_mechanics(clf, ref_clf, cls, train_split):
    """fit takes one AdamW step per step on the loaded head, zeroes gradients, and its batches follow the seed"""
    cls.expect_pooled(clf, ref_clf, PROBE_TEXTS, why="the training-loop check needs embed() right first: ")
    features, probe = ref_clf.embed([ONE_TEXT]), ref_clf.embed(PROBE_TEXTS)
    head = cls.random_head(features.shape[1], seed=11)
    # one example repeated: every mini-batch is the same, so the trajectory does not depend on how batches are drawn
    clf.load_head(head)
    losses = cls.expect_losses(clf.fit([ONE_TEXT] * 48, [1] * 48, steps=5, batch_size=16, lr=1e-2, seed=0), 5)
    want_losses, want_logits = _replay(features, probe, head, 5, 16, 1e-2)
    got = clf.logits(PROBE_TEXTS)
    variants = {
        "each of your steps is a whole pass over the data (an epoch): a step is ONE mini-batch and one optimiser "
        "step": _replay(features, probe, head, 5, 16, 1e-2, per_step=3)[1],
        "the gradients are never zeroed, so each step adds up all earlier gradients: call optimizer.zero_grad() "
        "before every backward()": _replay(features, probe, head, 5, 16, 1e-2, zero_grad=False)[1],
    }

    def close(a, b):
        return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a, b, atol=1e-2, rtol=0.0)

    if not close(got, want_logits):
        named = next((advice for advice, logits in variants.items() if close(got, logits)), None)
        assert_tensor_close(got, want_logits, rtol=0.0, atol=1e-2, name="logits after 5 steps from a loaded head",
                            advice=named or ("5 steps of fit on one repeated example do not move the loaded head as "
                                             "5 AdamW steps (lr=lr) do: one mini-batch, zero_grad, backward and "
                                             "step per step, on the head's parameters"))
    assert abs(losses[0] - want_losses[0]) <= 1e-4, (
        f"the first loss fit returns is {losses[0]:.5f}, but the loaded head's loss on that batch is "
        f"{want_losses[0]:.5f}: return each step's loss, computed before its update")
    # the optimiser is made in fit (lr is fit's argument): the same object, reloaded, replays a run exactly
    texts, labels = train_split
    texts, labels = texts[::6], labels[::6]
    runs = {}
    for name, run_seed in (("first", 3), ("again", 3), ("other", 4)):
        clf.load_head(head)
        runs[name] = cls.expect_losses(clf.fit(texts, labels, steps=8, seed=run_seed), 8)
    assert max(abs(a - b) for a, b in zip(runs["first"], runs["again"], strict=True)) <= 1e-5, (
        "two fits with seed=3 from the same loaded head gave different losses: the seed is ignored (or something "
        "else random is drawn): draw the mini-batches with torch.Generator().manual_seed(seed), and start each fit "
        "with a new optimiser")
    assert max(abs(a - b) for a, b in zip(runs["first"], runs["other"], strict=True)) > 1e-6, (
        "fit(..., seed=3) and fit(..., seed=4) gave the same losses: the seed is ignored; draw the mini-batches "
        "with torch.Generator().manual_seed(seed)")
