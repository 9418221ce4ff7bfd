"""Hidden checks of the pretrained-classifier exercise: accuracy on hidden sentences within the step budget."""

from pathlib import Path

import pytest
import torch

from grader.testing import expect_type, record

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
def test_held_out_accuracy(clf, ref_clf, cls, train_split, targets, seed):
    """after fit on the provided sentences within the step budget, accuracy on hidden sentences reaches the target"""
    why = "the accuracy check needs the pre-trained encoder and mean pooling first (see the public checks): "
    cls.expect_pretrained(clf, ref_clf, cls.PROBES[:2], why=why)
    cls.expect_pooled(clf, ref_clf, ["a short one", "and a somewhat longer second text"], why=why)
    texts, labels = train_split
    steps = int(targets["max_steps"])
    losses = cls.expect_losses(clf.fit(texts, labels, steps=steps, seed=seed), steps)
    record("series/loss", losses)
    held_texts, held_labels = _held_out()
    predicted = _predictions(clf.predict(held_texts), len(held_texts), "predict(held-out texts)")
    accuracy = sum(int(p == y) for p, y in zip(predicted, held_labels, strict=True)) / len(held_labels)
    record("held_out_accuracy", accuracy)
    record("steps", steps)
    target = float(targets["min_accuracy"])
    assert accuracy >= target, (
        f"held-out accuracy {accuracy:.2f} is below the target {target:.2f} after {steps} steps: train the head "
        "with cross-entropy on the pooled vectors (AdamW, lr around 1e-2), predict with argmax over the labels")


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
