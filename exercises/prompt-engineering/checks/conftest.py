"""Shared fixtures for the prompt-engineering checks (trusted side), given to checks as the ``pe`` fixture.

The model is the packaged instruct model (``causal-lm-small``); the trusted side loads its own copy through
the reference (token ids and log-likelihoods are recomputed here, never taken from the student).  Few-shot
examples come from ``checks/data/shots.tsv`` (shipped); the probe set the accuracy is measured on is kept
under ``hidden/data`` and never shipped.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from grader.testing import expect_type

LABELS = ("positive", "negative")


def labelled(path: Path) -> list[dict[str, str]]:
    """``label<TAB>text`` rows (label 0/1 or negative/positive) as {"text", "label"} dicts."""
    names = {"0": "negative", "1": "positive", "negative": "negative", "positive": "positive"}
    rows = [line.split("\t", 1) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"text": text.strip(), "label": names[label.strip()]} for label, text in rows]


def pick_shots(pool: list[dict[str, str]], per_label: int, seed: int) -> list[dict[str, str]]:
    """``per_label`` examples of each label, drawn with ``seed``, in an alternating order."""
    rng = random.Random(seed)
    groups = [rng.sample([row for row in pool if row["label"] == label], per_label) for label in LABELS]
    return [group[i] for i in range(per_label) for group in groups]


def expect_ids(value: Any, what: str) -> list[int]:
    expect_type(value, (list, tuple), what)
    for v in value:
        assert type(v) is int, f"{what} should hold Python ints (token ids), found {type(v).__name__}"
    return list(value)


def expect_scores(value: Any, n: int, width: int, what: str) -> list[list[float]]:
    expect_type(value, (list, tuple), what)
    assert len(value) == n, f"{what} returned {len(value)} rows of scores for {n} texts"
    rows = []
    for row in value:
        expect_type(row, (list, tuple), f"each row of {what}")
        assert len(row) == width, f"{what} should give {width} scores per text (one per label), found {len(row)}"
        for v in row:
            assert type(v) in (float, int) and math.isfinite(v), f"{what} should hold finite floats, found {v!r}"
        rows.append([float(v) for v in row])
    return rows


def auc(margins: list[float], gold: list[str]) -> float:
    """ROC AUC of ``margins`` (higher: more positive) against the gold labels; ties count half."""
    pos = [m for m, g in zip(margins, gold, strict=True) if g == "positive"]
    neg = [m for m, g in zip(margins, gold, strict=True) if g == "negative"]
    return sum((p > q) + 0.5 * (p == q) for p in pos for q in neg) / (len(pos) * len(neg))


def expect_labels(value: Any, n: int, what: str, allow_none: bool = False) -> list[str | None]:
    expect_type(value, (list, tuple), what)
    assert len(value) == n, f"{what} returned {len(value)} labels for {n} texts"
    allowed = set(LABELS) | ({None} if allow_none else set())
    for v in value:
        assert v in allowed, f"{what} should return one of {sorted(LABELS)} per text, found {v!r}"
    return list(value)


_SHARED: dict[str, Any] = {}  # one runner grades one submission


def classifier(student: Any, model_dir: str) -> Any:
    """The student's ``PromptClassifier(model_dir)``, built once per grading and re-bound to each check.

    Every ``student.new`` keeps its object (a 540 MB model) alive in the sandbox until the end, and the core
    has no session-scoped student objects or release yet: so one classifier serves every check, reached
    through the current check's ``student`` proxy (and its time budget).
    """
    from grader.sandbox.remote import RemoteObject

    if model_dir not in _SHARED:
        _SHARED[model_dir] = student.new("PromptClassifier", model_dir)
    obj = _SHARED[model_dir]
    return RemoteObject(student, obj._handle, obj.type_name, "PromptClassifier")


@pytest.fixture(scope="session")
def model_dir(assets: Any) -> str:
    return str(assets["causal-lm-small"])


@pytest.fixture(scope="session")
def pool(exercise_dir: Path) -> list[dict[str, str]]:
    """The labelled reviews few-shot examples are drawn from (checks/data/shots.tsv)."""
    return labelled(Path(exercise_dir) / "checks" / "data" / "shots.tsv")


@pytest.fixture(scope="session")
def trusted(reference: Any, model_dir: str) -> Any:
    """The reference classifier, on the same model folder (trusted)."""
    return reference.PromptClassifier(model_dir)


@pytest.fixture(scope="session")
def pe(targets: Mapping[str, Any]) -> SimpleNamespace:
    """Helpers for the prompt-engineering checks."""
    return SimpleNamespace(LABELS=LABELS, labelled=labelled, pick_shots=pick_shots, classifier=classifier,
                           expect_ids=expect_ids, expect_labels=expect_labels, expect_scores=expect_scores, auc=auc)
