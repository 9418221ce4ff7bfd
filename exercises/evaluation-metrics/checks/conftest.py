"""Shared fixtures for the evaluation-metrics checks (trusted side).

The oracles are the libraries themselves, run in this process: sacreBLEU for BLEU (its per-segment
statistics too), Google's rouge-score for ROUGE, and torch's cross-entropy in float64 for perplexity.
References travel per hypothesis (``references[i]`` lists those of hypothesis i); :func:`sacre_bleu`
transposes them into sacreBLEU's reference streams, padding with None where segments have fewer.
"""

from __future__ import annotations

import math
import os
from types import SimpleNamespace
from typing import Any

import pytest

from grader.testing import BoundaryError, StudentCodeError, expect_type, tolerance

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

#: module-level names that mean solution.py computes the scores with the libraries it should replace
LIBRARIES = ("sacrebleu", "rouge_score", "rouge_scorer", "torchmetrics", "bleu_score")
BLEU_TOL = 1e-9  # absolute, on the 0-100 scale: the same float operations in another order differ by ~1e-13
ROUGE_TOL = 1e-12

try:  # hidden/mistakes.py recomputes classic mistakes (so it solves the exercise): not in student packs
    from hidden import mistakes as MISTAKES
except ImportError:
    MISTAKES = None


def expect_from_scratch(student: Any) -> None:
    """Refuse a solution.py that imports the metric libraries at module level (the stub forbids them)."""
    for name in LIBRARIES:
        try:
            if student.get(name) is None:
                continue
        except StudentCodeError as exc:
            if exc.exc_type == "missing":
                continue
            raise
        except BoundaryError:  # a module object cannot cross the boundary: the name is there
            pass
        raise AssertionError(f"solution.py has a module-level `{name}`: compute the scores yourself, without "
                             "sacrebleu, rouge_score or torchmetrics (the stub lists what may be imported)")


def streams(references: list[list[str]]) -> list[list[str | None]]:
    """Per-hypothesis references -> sacreBLEU's reference streams (None where a segment has fewer)."""
    width = max(len(refs) for refs in references)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(width)]


def sacre_metric(**options: Any) -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(**options)


def sacre_bleu(hypotheses: list[str], references: list[list[str]], **options: Any) -> float:
    """sacreBLEU's corpus score (options as BLEU(...) takes them: tokenize, smooth_method, max_ngram_order...)."""
    return float(sacre_metric(**options).corpus_score(hypotheses, streams(references)).score)


def sacre_segment_stats(hypotheses: list[str], references: list[list[str]], **options: Any) -> list[dict[str, Any]]:
    """sacreBLEU's own per-segment statistics, in this exercise's layout."""
    metric = sacre_metric(**options)
    order = metric.max_ngram_order
    rows = metric._extract_corpus_statistics(hypotheses, streams(references))
    return [{"hyp_len": int(r[0]), "ref_len": int(r[1]), "matches": [int(x) for x in r[2: 2 + order]],
             "totals": [int(x) for x in r[2 + order:]]} for r in rows]


def rouge_oracle(target: str, prediction: str, kinds: tuple[str, ...], use_stemmer: bool) -> dict[str, Any]:
    from rouge_score import rouge_scorer

    scores = rouge_scorer.RougeScorer(list(kinds), use_stemmer=use_stemmer).score(target, prediction)
    return {k: {"precision": s.precision, "recall": s.recall, "fmeasure": s.fmeasure} for k, s in scores.items()}


def expect_float(value: Any, what: str) -> float:
    if type(value) is not float and type(value) is not int:
        raise AssertionError(f"{what} should return a Python float, got {type(value).__name__}")
    return float(value)


def expect_stats(value: Any, order: int, what: str) -> dict[str, Any]:
    expect_type(value, dict, what)
    for key in ("matches", "totals", "hyp_len", "ref_len"):
        if key not in value:
            raise AssertionError(f"{what} should be a dict with 'matches', 'totals', 'hyp_len' and 'ref_len'; "
                                 f"'{key}' is missing")
    for key in ("matches", "totals"):
        expect_type(value[key], (list, tuple), f"{what}[{key!r}]")
        if len(value[key]) != order or any(type(x) is not int for x in value[key]):
            raise AssertionError(f"{what}[{key!r}] should be {order} ints (one per n-gram order), got {value[key]!r}")
    for key in ("hyp_len", "ref_len"):
        if type(value[key]) is not int:
            raise AssertionError(f"{what}[{key!r}] should be an int, got {value[key]!r}")
    return {"matches": list(value["matches"]), "totals": list(value["totals"]), "hyp_len": value["hyp_len"],
            "ref_len": value["ref_len"]}


def expect_prf(value: Any, what: str) -> dict[str, float]:
    expect_type(value, dict, what)
    out = {}
    for key in ("precision", "recall", "fmeasure"):
        if key not in value:
            raise AssertionError(f"{what} should be a dict with 'precision', 'recall' and 'fmeasure'")
        out[key] = expect_float(value[key], f"{what}[{key!r}]")
    return out


def prf_problem(got: dict[str, float], want: dict[str, float], what: str) -> str | None:
    """None when equal; else advice that names a swap of precision and recall when it is one."""
    if all(math.isclose(got[k], want[k], rel_tol=0, abs_tol=ROUGE_TOL) for k in want):
        return None
    swapped = (math.isclose(got["precision"], want["recall"], abs_tol=ROUGE_TOL)
               and math.isclose(got["recall"], want["precision"], abs_tol=ROUGE_TOL))
    shown = ", ".join(f"{k} {got[k]:.6f} (expected {want[k]:.6f})" for k in want)
    if swapped and want["precision"] != want["recall"]:
        return (f"{what}: precision and recall are swapped: precision divides the overlap by the PREDICTION's count, "
                f"recall by the TARGET's (arguments are (target, prediction))\n{shown}")
    return f"{what}: {shown}"


def tokenize_advice(student: Any, texts: list[str], method: str = "13a", lowercase: bool = False) -> str | None:
    """Advice when the student's bleu_tokenize differs from sacreBLEU's preprocessing on one of ``texts``."""
    metric = sacre_metric(tokenize=method, lowercase=lowercase)
    for text in texts:
        want = metric._preprocess_segment(text).split()
        got = student.bleu_tokenize(text, method, lowercase)
        if got != want:
            return (f"bleu_tokenize(text, {method!r}, lowercase={lowercase}) differs from sacreBLEU's tokenizer on "
                    f"{text[:60]!r}: got {got[:12]}, sacreBLEU gives {want[:12]}")
    return None


def stats_advice(student: Any, hypotheses: list[str], references: list[list[str]], **options: Any) -> str | None:
    """Advice when the student's per-segment statistics already differ from sacreBLEU's (the upstream step)."""
    stat_options = {k: v for k, v in options.items() if k in ("tokenize", "lowercase", "max_order")}
    sacre = {k if k != "max_order" else "max_ngram_order": v for k, v in stat_options.items()}
    for hyp, refs, want in zip(hypotheses, references, sacre_segment_stats(hypotheses, references, **sacre),
                               strict=True):
        got = expect_stats(student.bleu_statistics(hyp, refs, **stat_options), len(want["matches"]), "bleu_statistics")
        if got != want:
            return (f"bleu_statistics already differs from sacreBLEU's statistics on a segment ({got} instead of "
                    f"{want}): get the statistics right first (the bleu_statistics checks)")
    return None


def evaluate_scores(student: Any, *args: Any, **kwargs: Any) -> Any:
    """student.evaluate_scores, with advice when evaluate refuses the module's imports."""
    try:
        return student.evaluate_scores(*args, **kwargs)
    except StudentCodeError as exc:
        if exc.exc_type == "ImportError" and "dependencies" in exc.message:
            raise AssertionError("evaluate.load could not read text_metrics.py's imports: write ONE import per line "
                                 f"(evaluate parses them with a regular expression)\n{exc.message}") from None
        raise


def module_advice(student: Any, key: str, got: float, hypotheses: list[str], references: list[list[str]]) -> str:
    """Why the evaluate module's ``key`` differs: its own aggregation, or the student's corpus BLEU upstream."""
    if key != "bleu":
        return "ROUGE in the module: the mean over predictions of the best F-measure among each one's references"
    own = expect_float(student.corpus_bleu(hypotheses, references), "corpus_bleu(...)")
    if math.isclose(own, got, abs_tol=1e-9):
        return "the module agrees with your corpus_bleu, which differs from sacreBLEU: see the corpus BLEU checks"
    return "corpus BLEU of ALL predictions together: evaluate calls _compute once, with every batch added"


@pytest.fixture(scope="session")
def em(targets: Any) -> SimpleNamespace:
    """Helpers for the evaluation-metrics checks; PPL_RTOL is the profile's float32 rtol (perplexity in float32)."""
    import torch

    return SimpleNamespace(BLEU_TOL=BLEU_TOL, ROUGE_TOL=ROUGE_TOL, PPL_RTOL=tolerance(targets, torch.float32)["rtol"],
                           expect_from_scratch=expect_from_scratch, sacre_bleu=sacre_bleu, sacre_metric=sacre_metric,
                           sacre_segment_stats=sacre_segment_stats, rouge_oracle=rouge_oracle,
                           expect_float=expect_float, expect_stats=expect_stats, expect_prf=expect_prf,
                           prf_problem=prf_problem, stats_advice=stats_advice,
                           tokenize_advice=tokenize_advice,
                           evaluate_scores=evaluate_scores, module_advice=module_advice,
                           mistakes=MISTAKES)
