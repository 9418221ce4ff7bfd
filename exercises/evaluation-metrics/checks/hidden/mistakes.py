"""Classic metric mistakes, recomputed to name the one a student made (trusted side, never shipped).

Each function takes the reference module (for the correct pieces), the inputs and the student's result,
and returns advice naming the first mistake that reproduces that result, or None.
"""

from __future__ import annotations

import math
from collections import Counter
from types import ModuleType
from typing import Any

import torch


def _stats(ref: ModuleType, hyp: str, refs: list[str], order: int, tokenize: str, lowercase: bool, *,
           length: str = "closest", clip: str = "max") -> dict[str, Any]:
    h = ref.bleu_tokenize(hyp, tokenize, lowercase)
    rs = [ref.bleu_tokenize(r, tokenize, lowercase) for r in refs]
    counts = [Counter(ref.ngram_counts(r, order)) for r in rs]
    best: Counter[tuple[Any, ...]] = Counter()
    for c in counts:
        for gram, n in c.items():
            best[gram] = best[gram] + n if clip == "sum" else max(best[gram], n)
    matches = [0] * order
    for gram, n in ref.ngram_counts(h, order).items():
        matches[len(gram) - 1] += n if clip == "none" else min(n, best[gram])
    lens = [len(r) for r in rs]
    ref_len = {"closest": ref.closest_ref_length(len(h), lens), "shortest": min(lens),
               "longest-tie": min(lens, key=lambda r: (abs(r - len(h)), -r)), "first": lens[0]}[length]
    return {"matches": matches, "totals": [max(0, len(h) - n) for n in range(order)], "hyp_len": len(h),
            "ref_len": ref_len}


STATS_MISTAKES = [
    ({"length": "shortest"}, "ref_len is the length of the reference CLOSEST to the hypothesis, not the shortest "
                             "one (the tensorflow/nmt rule)"),
    ({"length": "longest-tie"}, "when two references are equally close to the hypothesis length, take the SHORTER"),
    ({"length": "first"}, "ref_len comes from the closest of ALL references, not the first one"),
    ({"clip": "sum"}, "clip each n-gram by its count in the reference where it occurs most (max over references), "
                      "not by the sum over references"),
    ({"clip": "none"}, "clip the matches: an n-gram counts at most as often as it occurs in a reference"),
]


def stats_diagnose(ref: ModuleType, hyp: str, refs: list[str], options: dict[str, Any], got: Any) -> str | None:
    order, tokenize, lowercase = options.get("max_order", 4), options.get("tokenize", "13a"), options.get(
        "lowercase", False)
    for change, advice in STATS_MISTAKES:
        if _stats(ref, hyp, refs, order, tokenize, lowercase, **change) == got:
            return advice
    return None


def corpus_diagnose(ref: ModuleType, hyps: list[str], refs: list[list[str]], options: dict[str, Any],
                    got: float) -> str | None:
    """Averaged sentence scores, or statistics made with a classic mistake, that give the student's score."""
    smooth = {k: options[k] for k in ("smooth_method", "smooth_value") if k in options}
    order, tokenize, lowercase = options.get("max_order", 4), options.get("tokenize", "13a"), options.get(
        "lowercase", False)
    for effective in (True, False):
        mean = sum(ref.sentence_bleu(h, r, tokenize=tokenize, lowercase=lowercase, max_order=order,
                                     effective_order=effective, **smooth) for h, r in zip(hyps, refs, strict=True))
        if math.isclose(got, mean / len(hyps), abs_tol=1e-9):
            return ("corpus BLEU is computed from the statistics SUMMED over all segments, not as the mean of "
                    "sentence BLEU scores")
    for change, advice in STATS_MISTAKES:
        stats = [_stats(ref, h, r, order, tokenize, lowercase, **change) for h, r in zip(hyps, refs, strict=True)]
        summed = {"matches": [sum(s["matches"][n] for s in stats) for n in range(order)],
                  "totals": [sum(s["totals"][n] for s in stats) for n in range(order)],
                  "hyp_len": sum(s["hyp_len"] for s in stats), "ref_len": sum(s["ref_len"] for s in stats)}
        if math.isclose(got, ref.bleu_from_statistics(**summed, **smooth), abs_tol=1e-9):
            return advice
    return None


def _lsum_concatenated(ref: ModuleType, target: str, prediction: str, stem: bool) -> dict[str, float]:
    return ref.rouge_l(target.replace("\n", " "), prediction.replace("\n", " "), stem)


def _lsum_double_counted(ref: ModuleType, target: str, prediction: str, stem: bool) -> dict[str, float]:
    tgt = [ref.rouge_tokenize(s, stem) for s in target.split("\n") if s]
    pred = [ref.rouge_tokenize(s, stem) for s in prediction.split("\n") if s]
    m, n = sum(map(len, tgt)), sum(map(len, pred))
    if not m or not n:
        return {"precision": 0.0, "recall": 0.0, "fmeasure": 0.0}
    hits = sum(len(set().union(*(ref.lcs_indices(s, c) for c in pred))) for s in tgt)
    p, r = hits / n, hits / m
    return {"precision": p, "recall": r, "fmeasure": 2 * p * r / (p + r) if p + r else 0.0}


def _stem_everything(ref: ModuleType, kind: str, target: str, prediction: str) -> dict[str, float] | None:
    from nltk.stem import porter

    stem = porter.PorterStemmer().stem
    tgt = [stem(t) for t in ref.rouge_tokenize(target)]
    pred = [stem(t) for t in ref.rouge_tokenize(prediction)]
    if kind == "rougeL":
        return ref._score(ref.lcs_table(tgt, pred)[-1][-1] if tgt and pred else 0, len(pred), len(tgt))
    if kind[5:].isdigit():
        n = int(kind[5:])
        grams_t = Counter(tuple(tgt[i:i + n]) for i in range(len(tgt) - n + 1))
        grams_p = Counter(tuple(pred[i:i + n]) for i in range(len(pred) - n + 1))
        return ref._score(sum(min(c, grams_p[g]) for g, c in grams_t.items()), sum(grams_p.values()),
                          sum(grams_t.values()))
    return None


def rouge_diagnose(ref: ModuleType, kind: str, target: str, prediction: str, stem: bool,
                   got: dict[str, float]) -> str | None:
    def same(score: dict[str, float]) -> bool:
        return all(math.isclose(got[k], score[k], abs_tol=1e-12) for k in score)

    if kind == "rougeLsum" and same(_lsum_concatenated(ref, target, prediction, stem)):
        return ("ROUGE-Lsum is the summary-level LCS: the union of each target sentence's LCS with EVERY prediction "
                "sentence, not one LCS of the joined texts")
    if kind == "rougeLsum" and same(_lsum_double_counted(ref, target, prediction, stem)):
        return ("ROUGE-Lsum must not count a token more often than it occurs in either text: keep Counters of the "
                "remaining target and prediction tokens and count a hit only while both are > 0")
    everything = _stem_everything(ref, kind, target, prediction) if stem else None
    if everything is not None and same(everything):
        return "stem only tokens LONGER than 3 characters, as rouge-score does"
    swapped = ref.rouge(prediction, target, (kind,), stem)[kind]
    if same(swapped) and not same(ref.rouge(target, prediction, (kind,), stem)[kind]):
        return ("the arguments are (target, prediction): precision divides the overlap by the PREDICTION's count, "
                "recall by the TARGET's")
    return None


def perplexity_diagnose(logits: torch.Tensor, labels: torch.Tensor, shifted: bool, got: float,
                        ignore_index: int = -100) -> str | None:
    """Name the classic perplexity mistake that gives ``got``."""
    def ppl(lg: torch.Tensor, lb: torch.Tensor, counted: bool = True) -> float:
        v = lg.shape[-1]
        flat, target = lg.double().reshape(-1, v), lb.reshape(-1)
        if not counted:
            nll = torch.nn.functional.cross_entropy(flat, target.clamp_min(0), reduction="none")
            return math.exp(float(nll.mean()))
        return math.exp(float(torch.nn.functional.cross_entropy(flat, target, ignore_index=ignore_index)))

    aligned = (logits, labels) if shifted else (logits[:, :-1], labels[:, 1:])
    other = (logits[:, :-1], labels[:, 1:]) if shifted else (logits, labels)
    rows = [ppl(aligned[0][i:i + 1], aligned[1][i:i + 1]) for i in range(logits.shape[0])
            if bool((aligned[1][i] != ignore_index).any())]
    candidates = [
        (sum(rows) / len(rows) if rows else float("nan"),
         "the corpus perplexity is exp(total NLL / total counted tokens), not the mean of per-sequence perplexities"),
        (ppl(*aligned, counted=False), "positions whose label is ignore_index (-100) must not be counted"),
        (ppl(*other), "with shifted=False, logits[:, t] predict labels[:, t + 1]: drop the last logit and the first "
                      "label (and with shifted=True do not shift)"),
    ]
    for value, advice in candidates:
        if math.isfinite(value) and math.isclose(got, value, rel_tol=1e-6):
            return advice
    if math.isinf(got) or math.isnan(got):
        return ("an infinite or NaN perplexity: use torch.log_softmax in float32 or float64 (log(softmax(x)) gives "
                "-inf for very unlikely tokens; half precision overflows)")
    return None
