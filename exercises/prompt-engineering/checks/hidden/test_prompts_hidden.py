"""Hidden checks of prompt-engineering: accuracy on a hidden probe set, few-shot against zero-shot, and the
parser on outputs the packaged model really wrote."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from grader.testing import record

DATA = Path(__file__).parent / "data"


def _probe(pe):
    rows = pe.labelled(DATA / "probe.tsv")
    return [r["text"] for r in rows], [r["label"] for r in rows]


def _accuracy(rows, gold, labels):
    predicted = [labels[max(range(len(labels)), key=row.__getitem__)] for row in rows]
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


def _margins(rows, labels):
    return [row[labels.index("positive")] - row[labels.index("negative")] for row in rows]


_SCORES: dict[str, list] = {}  # one runner grades one submission: score each style once


def _score(student, model_dir, pe, texts, style, shots=None):
    if style not in _SCORES:
        clf = pe.classifier(student, model_dir)
        _SCORES[style] = pe.expect_scores(clf.score(texts, style=style, shots=shots), len(texts), len(pe.LABELS),
                                          f"score(texts, style={style!r})")
    return _SCORES[style]


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(300)
def test_probe_accuracy_above_majority(student, pe, model_dir, targets):
    """zero-shot and instruction prompts, scored by label log-likelihood, beat the majority label on hidden reviews"""
    texts, gold = _probe(pe)
    majority = max(gold.count(label) for label in pe.LABELS) / len(gold)
    target = max(float(targets["min_accuracy"]), majority + float(targets["min_gain_over_majority"]))
    for style in ("zero", "instruction"):
        accuracy = _accuracy(_score(student, model_dir, pe, texts, style), gold, pe.LABELS)
        record(f"{style}_accuracy", accuracy)
        assert accuracy >= target, (
            f"{style} prompts classify {accuracy:.0%} of the hidden reviews correctly (the label of higher score); "
            f"the target is {target:.0%} (always answering the majority label gives {majority:.0%}): render with "
            "the chat template and score each label by the summed log-probability of its tokens after the prompt")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(420)  # graded alone, it scores the zero-shot prompts too
def test_few_shot_not_worse_than_zero_shot(student, pe, pool, model_dir, targets, seed):
    """few-shot prompts rank the hidden reviews (ROC AUC of the label margin) about as well as zero-shot ones"""
    texts, gold = _probe(pe)
    shots = pe.pick_shots(pool, int(targets["shots_per_label"]), seed)
    zero = _score(student, model_dir, pe, texts, "zero")
    few = _score(student, model_dir, pe, texts, "few", shots)
    zero_auc, few_auc = pe.auc(_margins(zero, pe.LABELS), gold), pe.auc(_margins(few, pe.LABELS), gold)
    record("zero_shot_auc", round(zero_auc, 4))
    record("few_shot_auc", round(few_auc, 4))
    record("few_shot_accuracy", _accuracy(few, gold, pe.LABELS))
    margin, floor = float(targets["few_shot_auc_margin"]), float(targets["min_few_shot_auc"])
    assert few_auc >= zero_auc - margin and few_auc >= floor, (
        f"with few-shot prompts, score(positive) - score(negative) ranks the hidden reviews with ROC AUC "
        f"{few_auc:.2f}, against {zero_auc:.2f} zero-shot (allowed: {margin:.2f} lower, and at least {floor:.2f}): "
        "each example is a user turn user_turn(example text) answered by an assistant turn holding ITS OWN label, "
        "in the order given, and the last user turn is the text being classified")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_parser_on_model_outputs(student, reference):
    """parse_label reads the labels out of answers the packaged model really gave"""
    outputs = json.loads((DATA / "model_outputs.json").read_text(encoding="utf-8"))
    parsed = [(o, student.parse_label(o)) for o in outputs]
    wrong = [(o, got) for o, got in parsed if got != reference.parse_label(o)]
    record("outputs", len(outputs))
    assert not wrong, (
        f"parse_label misreads {len(wrong)} of {len(outputs)} answers the model really wrote (one came back as "
        f"{wrong[0][1]!r}); they look like 'Positive', 'I think it is negative.' or mention "
        "'neutral': return the first whole word 'positive' or 'negative', any case, lower-cased, else None")
