"""Shared fixtures for the pretrained-classifier checks (trusted side).

The encoder and the labelled sentences are course assets (``encoder-small``, ``sentiment-sentences``),
read-only on both sides; the reference classifier is built here on the same model folder, and the
student's classifier stays in the sandbox.  ``expect_pretrained`` is the cheap first step of every
expensive check: a wrong encoder fails in a second, with advice, before any training runs.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type

PROBES = [
    "Hello, World!",
    "The movie was GREAT -- truly wonderful.",
    "a",
    "Naïve café owners über-hype their croissants ☕",
    " ".join(["an endlessly long and rambling sentence"] * 40),  # more than 128 tokens: truncated
]
TOL = {"rtol": 1e-4, "atol": 1e-4}


@pytest.fixture(scope="session")
def model_dir(assets: Any) -> str:
    return str(assets["encoder-small"])


@pytest.fixture(scope="session")
def train_split(assets: Any) -> tuple[list[str], list[int]]:
    """The provided training split: the 200 labelled sentences of the sentiment-sentences asset."""
    rows = (Path(assets["sentiment-sentences"]) / "sentences.tsv").read_text(encoding="utf-8").splitlines()
    pairs = [row.split("\t", 1) for row in rows if row.strip()]
    return [text for _, text in pairs], [int(label) for label, _ in pairs]


@pytest.fixture(scope="session")
def ref_clf(reference: Any, model_dir: str) -> Any:
    """The reference classifier on the same model folder (trusted)."""
    return reference.SentenceClassifier(model_dir)


@pytest.fixture
def clf(student: Any, model_dir: str) -> Any:
    """A fresh student SentenceClassifier, kept in the sandbox."""
    return student.new("SentenceClassifier", model_dir, num_labels=2)


def expect_pretrained(clf: Any, ref_clf: Any, texts: list[str], why: str = "") -> None:
    """The student's encoder gives the pre-trained model's hidden states for ``texts`` (eval mode)."""
    want = ref_clf.encode(texts)
    got = clf.encode(texts)
    expect_type(got, torch.Tensor, f"encode({len(texts)} texts)")
    if tuple(got.shape) != tuple(want.shape):
        raise AssertionError(
            f"{why}encode() returned shape {tuple(got.shape)}, expected {tuple(want.shape)} (batch, tokens, "
            f"hidden_size): tokenize with the model's own tokenizer, with its special tokens, padding=True, "
            f"truncation=True, max_length=128")
    batch = ref_clf.tokenize(texts)
    real = batch["attention_mask"].bool()  # padded positions' states feed nothing: compare the real tokens
    try:
        assert_tensor_close(got[real], want[real], name="encode() hidden states of the real tokens", **TOL)
    except AssertionError as exc:
        again = clf.encode(texts)
        ids = clf.tokenize(texts)
        ids = ids.get("input_ids") if isinstance(ids, dict) else None
        with torch.no_grad():
            unmasked = ref_clf.encoder(input_ids=batch["input_ids"]).last_hidden_state
        if not (isinstance(ids, torch.Tensor) and torch.equal(ids, batch["input_ids"])):
            advice = ("tokenize() does not give the model's own token ids (see test_tokenizer_matches_model), so "
                      "the encoder reads different tokens")
        elif torch.allclose(got[real], unmasked[real], **TOL):
            advice = ("the encoder is called without the attention_mask, so the real tokens attend to the padding "
                      "of the shorter texts: pass both, encoder(input_ids=..., attention_mask=...)")
        elif isinstance(again, torch.Tensor) and again.shape == got.shape and not torch.equal(again, got):
            advice = ("two calls on the same texts gave different hidden states: dropout is active; put the "
                      "encoder in eval mode (encoder.eval())")
        elif float(torch.nn.functional.cosine_similarity(got.flatten().double(), want.flatten().double(), 0)) < 0.5:
            advice = ("these hidden states look nothing like the pre-trained model's: load the weights with "
                      "AutoModel.from_pretrained(model_dir), not AutoModel.from_config(...) (random weights)")
        else:
            advice = "the hidden states differ from the pre-trained model's: is the encoder frozen and in eval mode?"
        raise AssertionError(f"{why}{advice}\n{exc}") from None


def expect_pooled(clf: Any, ref_clf: Any, texts: list[str], why: str = "") -> torch.Tensor:
    want = ref_clf.embed(texts)
    got = clf.embed(texts)
    assert_tensor_close(got, want, name=f"embed({len(texts)} texts)", **TOL, advice=(
        f"{why}embed() should mean-pool the pre-trained hidden states over the REAL tokens (attention_mask 1), "
        "one (hidden_size,) vector per text"))
    return want


def random_head(hidden: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"weight": torch.randn(2, hidden, generator=g) * 0.2, "bias": torch.randn(2, generator=g)}


def expect_losses(losses: Any, steps: int) -> list[float]:
    expect_type(losses, (list, tuple), "fit(...)'s return value")
    assert len(losses) == steps, (
        f"fit(..., steps={steps}) returned {len(losses)} losses: take exactly `steps` optimiser steps (the "
        "training budget) and return one loss per step")
    for value in losses:
        assert type(value) in (float, int), f"fit should return Python floats, found {type(value).__name__}"
    values = [float(v) for v in losses]
    assert all(v == v and abs(v) < 1e6 for v in values), "fit returned NaN or huge losses"
    return values


@pytest.fixture(scope="session")
def cls() -> SimpleNamespace:
    """Helpers for the pretrained-classifier checks."""
    return SimpleNamespace(PROBES=PROBES, TOL=TOL, expect_pretrained=expect_pretrained, expect_pooled=expect_pooled,
                           random_head=random_head, expect_losses=expect_losses)
