"""Shared fixtures of the summarisation checks (trusted side), given to the checks as the ``summ`` fixture.

The oracles are the libraries themselves: the packaged model and tokenizer loaded here with transformers,
``shift_tokens_right`` and the model's own loss, ``generate`` for greedy decoding, and rouge-score's
``RougeScorer`` for ROUGE. Student code is reached only through the ``student`` fixture.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import expect_tensor, expect_type

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
FIELDS = ("precision", "recall", "fmeasure")


def read_rows(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class Trusted:
    """The packaged model and tokenizer, loaded once with transformers (eval mode, no gradients)."""

    def __init__(self, model_dir: str, source_length: int, target_length: int) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        self.model_dir = model_dir
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self.model = AutoModelForSeq2SeqLM.from_pretrained(model_dir, local_files_only=True).eval()
        self.config = self.model.config
        self.source_length, self.target_length = source_length, target_length
        # the T5 family was trained with a task prefix; BART and the others were not
        self.prefix = {"t5": "summarize: ", "mt5": "summarize: ", "umt5": "summarize: "}.get(
            self.config.model_type, "")

    def inputs(self, documents: list[str]) -> Any:
        return self.tokenizer([self.prefix + d for d in documents], max_length=self.source_length,
                              truncation=True, padding=True, return_tensors="pt")

    def targets(self, summaries: list[str]) -> Any:
        return self.tokenizer(text_target=summaries, max_length=self.target_length, truncation=True,
                              padding=True, return_tensors="pt")

    def labels(self, summaries: list[str]) -> torch.Tensor:
        t = self.targets(summaries)
        return torch.where(t["attention_mask"].bool(), t["input_ids"], torch.full_like(t["input_ids"], -100))

    @torch.no_grad()
    def loss(self, documents: list[str], summaries: list[str]) -> float:
        batch = self.inputs(documents)
        out = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                         labels=self.labels(summaries))  # the model shifts the labels itself
        return float(out.loss)

    @torch.no_grad()
    def greedy(self, documents: list[str], max_new_tokens: int) -> list[str]:
        batch = self.inputs(documents)
        out = self.model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                                  max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)
        return [t.strip() for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]


def oracle_rouge(targets: list[str], predictions: list[str], tokenizer: Any = None) -> list[dict[str, dict]]:
    """rouge-score's P/R/F for each (target, prediction); ``score(target, prediction)`` is its argument order."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True, tokenizer=tokenizer)
    return [{k: dict(zip(FIELDS, map(float, s), strict=True)) for k, s in scorer.score(t, p).items()}
            for t, p in zip(targets, predictions, strict=True)]


def expect_scores(result: Any, n: int, what: str) -> list[dict[str, dict[str, float]]]:
    """rouge_scores' result: a list of n dicts {rouge type: {precision, recall, fmeasure}} of floats."""
    expect_type(result, list, what)
    assert len(result) == n, f"{what} should return one dict per (target, prediction) pair: {n}, got {len(result)}"
    for row in result:
        expect_type(row, dict, f"each item of {what}")
        for kind in ROUGE_TYPES:
            assert kind in row, f"each item of {what} needs the keys {list(ROUGE_TYPES)}, got {sorted(row)}"
            expect_type(row[kind], dict, f"{what}[i][{kind!r}]")
            for field in FIELDS:
                value = row[kind].get(field)
                assert type(value) in (float, int), (
                    f"{what}[i][{kind!r}][{field!r}] should be a Python float, got {type(value).__name__}")
    return result


def rouge_problem(got: list[dict], want: list[dict], targets: list[str], predictions: list[str]) -> str | None:
    """None when every figure agrees within 1e-6, else advice naming the likely cause and the first bad pair."""
    swapped = all(abs(g[k]["precision"] - w[k]["recall"]) < 1e-6 and abs(g[k]["recall"] - w[k]["precision"]) < 1e-6
                  for g, w in zip(got, want, strict=True) for k in ROUGE_TYPES)
    for i, (g, w) in enumerate(zip(got, want, strict=True)):
        for kind in ROUGE_TYPES:
            for field in FIELDS:
                if abs(float(g[kind][field]) - w[kind][field]) > 1e-6:
                    where = (f"pair {i} (target {targets[i][:60]!r}, prediction {predictions[i][:60]!r}): "
                             f"{kind} {field} is {float(g[kind][field]):.6f}, rouge-score gives {w[kind][field]:.6f}")
                    if swapped:
                        return ("precision and recall are swapped: rouge-score's argument order is "
                                "scorer.score(target, prediction); precision = overlap / prediction length, "
                                f"recall = overlap / target length\n{where}")
                    return where
    return None


@pytest.fixture(scope="session")
def model_dir(assets: Any) -> str:
    return str(assets["seq2seq-small"])


@pytest.fixture(scope="session")
def pairs(assets: Any) -> dict[str, list[dict[str, str]]]:
    folder = Path(assets["summarisation-pairs"])
    return {split: read_rows(folder / f"{split}.jsonl") for split in ("train", "test")}


@pytest.fixture(scope="session")
def trusted(model_dir: str, targets: Any) -> Trusted:
    return Trusted(model_dir, int(targets["max_source_length"]), int(targets["max_target_length"]))


def new_summariser(student: Any, model_dir: str, targets: Any) -> Any:
    return student.new("Summariser", model_dir, max_source_length=int(targets["max_source_length"]),
                       max_target_length=int(targets["max_target_length"]))


def expect_texts(result: Any, n: int, what: str) -> list[str]:
    expect_type(result, list, what)
    assert len(result) == n and all(isinstance(t, str) for t in result), (
        f"{what} should return a list of {n} strings, one summary per document")
    return result


@pytest.fixture(scope="session")
def summ() -> SimpleNamespace:
    """Helpers for the summarisation checks."""
    return SimpleNamespace(ROUGE_TYPES=ROUGE_TYPES, FIELDS=FIELDS, oracle_rouge=oracle_rouge,
                           expect_scores=expect_scores, rouge_problem=rouge_problem, new=new_summariser,
                           expect_texts=expect_texts, expect_tensor=expect_tensor, Trusted=Trusted)
