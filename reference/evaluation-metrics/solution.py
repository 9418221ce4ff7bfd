"""BLEU, ROUGE and perplexity from scratch, and an evaluate module wrapping them (reference)."""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from functools import lru_cache
from typing import Any

import torch

_13A = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]
SMOOTH_DEFAULTS: dict[str, float | None] = {"none": None, "floor": 0.1, "add-k": 1.0, "exp": None}
TOKENIZERS = ("13a", "none", "intl", "char")


def tokenize_13a(line: str) -> str:
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, repl in _13A:
        line = pattern.sub(repl, line)
    return " ".join(line.split())


@lru_cache(maxsize=1)
def _intl_patterns() -> list[tuple[Any, str]]:
    import regex

    return [(regex.compile(r"(\P{N})(\p{P})"), r"\1 \2 "), (regex.compile(r"(\p{P})(\P{N})"), r" \1 \2"),
            (regex.compile(r"(\p{S})"), r" \1 ")]


def bleu_tokenize(line: str, method: str = "13a", lowercase: bool = False) -> list[str]:
    if method not in TOKENIZERS:
        raise ValueError(f"unknown tokenizer {method!r}: use one of {TOKENIZERS}")
    if lowercase:
        line = line.lower()
    line = line.rstrip()
    if method == "13a":
        line = tokenize_13a(line)
    elif method == "intl":
        for pattern, repl in _intl_patterns():
            line = pattern.sub(repl, line)
    elif method == "char":
        line = " ".join(line)
    return line.split()


def ngram_counts(tokens: list[Any], max_order: int) -> dict[tuple[Any, ...], int]:
    counts: Counter[tuple[Any, ...]] = Counter()
    for n in range(1, max_order + 1):
        for i in range(len(tokens) - n + 1):
            counts[tuple(tokens[i : i + n])] += 1
    return dict(counts)


def closest_ref_length(hyp_len: int, ref_lens: list[int]) -> int:
    return min(ref_lens, key=lambda r: (abs(r - hyp_len), r))


def bleu_statistics(hypothesis: str, references: list[str], max_order: int = 4, tokenize: str = "13a",
                    lowercase: bool = False) -> dict[str, Any]:
    if not references:
        raise ValueError("BLEU needs at least one reference per hypothesis")
    hyp = bleu_tokenize(hypothesis, tokenize, lowercase)
    refs = [bleu_tokenize(r, tokenize, lowercase) for r in references]
    best: Counter[tuple[Any, ...]] = Counter()
    for ref in refs:
        for gram, count in ngram_counts(ref, max_order).items():
            best[gram] = max(best[gram], count)
    matches = [0] * max_order
    totals = [max(0, len(hyp) - n) for n in range(max_order)]
    for gram, count in ngram_counts(hyp, max_order).items():
        matches[len(gram) - 1] += min(count, best[gram])
    return {"matches": matches, "totals": totals, "hyp_len": len(hyp),
            "ref_len": closest_ref_length(len(hyp), [len(r) for r in refs])}


def bleu_from_statistics(matches: list[int], totals: list[int], hyp_len: int, ref_len: int,
                         smooth_method: str = "none", smooth_value: float | None = None,
                         effective_order: bool = False) -> float:
    if smooth_method not in SMOOTH_DEFAULTS:
        raise ValueError(f"unknown smooth_method {smooth_method!r}: use one of {list(SMOOTH_DEFAULTS)}")
    if smooth_value is None:
        smooth_value = SMOOTH_DEFAULTS[smooth_method]
    order = len(matches)
    bp = 1.0
    if hyp_len < ref_len:
        bp = math.exp(1 - ref_len / hyp_len) if hyp_len > 0 else 0.0
    if not any(matches):
        return 0.0
    correct = [float(m) for m in matches]
    total = [float(t) for t in totals]
    precisions = [0.0] * order
    divisor, used = 1.0, order
    for n in range(1, order + 1):
        if smooth_method == "add-k" and n > 1:
            correct[n - 1] += smooth_value
            total[n - 1] += smooth_value
        if total[n - 1] == 0:
            break
        if effective_order:
            used = n
        if correct[n - 1] == 0:
            if smooth_method == "exp":
                divisor *= 2
                precisions[n - 1] = 100.0 / (divisor * total[n - 1])
            elif smooth_method == "floor":
                precisions[n - 1] = 100.0 * smooth_value / total[n - 1]
        else:
            precisions[n - 1] = 100.0 * correct[n - 1] / total[n - 1]
    if any(p == 0.0 for p in precisions[:used]):
        return 0.0
    return bp * math.exp(sum(math.log(p) for p in precisions[:used]) / used)


def corpus_statistics(hypotheses: list[str], references: list[list[str]], max_order: int = 4,
                      tokenize: str = "13a", lowercase: bool = False) -> dict[str, Any]:
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} reference lists: give one list of "
                         "references per hypothesis")
    summed = {"matches": [0] * max_order, "totals": [0] * max_order, "hyp_len": 0, "ref_len": 0}
    for hyp, refs in zip(hypotheses, references, strict=True):
        stats = bleu_statistics(hyp, refs, max_order, tokenize, lowercase)
        for key in ("matches", "totals"):
            summed[key] = [a + b for a, b in zip(summed[key], stats[key], strict=True)]
        summed["hyp_len"] += stats["hyp_len"]
        summed["ref_len"] += stats["ref_len"]
    return summed


def corpus_bleu(hypotheses: list[str], references: list[list[str]], smooth_method: str = "exp",
                smooth_value: float | None = None, tokenize: str = "13a", lowercase: bool = False,
                max_order: int = 4) -> float:
    stats = corpus_statistics(hypotheses, references, max_order, tokenize, lowercase)
    return bleu_from_statistics(stats["matches"], stats["totals"], stats["hyp_len"], stats["ref_len"],
                                smooth_method, smooth_value)


def sentence_bleu(hypothesis: str, references: list[str], smooth_method: str = "exp",
                  smooth_value: float | None = None, tokenize: str = "13a", lowercase: bool = False,
                  effective_order: bool = True, max_order: int = 4) -> float:
    stats = bleu_statistics(hypothesis, references, max_order, tokenize, lowercase)
    return bleu_from_statistics(stats["matches"], stats["totals"], stats["hyp_len"], stats["ref_len"],
                                smooth_method, smooth_value, effective_order)


# -- ROUGE ---------------------------------------------------------------------------------------------
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    from nltk.stem import porter

    return porter.PorterStemmer()


def rouge_tokenize(text: str, use_stemmer: bool = False) -> list[str]:
    tokens = _NON_ALNUM.sub(" ", text.lower()).split()
    if use_stemmer:
        tokens = [_stemmer().stem(t) if len(t) > 3 else t for t in tokens]
    return [t for t in tokens if re.fullmatch(r"[a-z0-9]+", t)]


def _score(overlap: int, n_prediction: int, n_target: int) -> dict[str, float]:
    precision = overlap / n_prediction if n_prediction else 0.0
    recall = overlap / n_target if n_target else 0.0
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "fmeasure": f}


def rouge_n(target: str, prediction: str, n: int, use_stemmer: bool = False) -> dict[str, float]:
    if n < 1:
        raise ValueError("ROUGE-N needs n >= 1")
    tgt = Counter(tuple(g) for g in _grams(rouge_tokenize(target, use_stemmer), n))
    pred = Counter(tuple(g) for g in _grams(rouge_tokenize(prediction, use_stemmer), n))
    overlap = sum(min(c, pred[g]) for g, c in tgt.items())
    return _score(overlap, sum(pred.values()), sum(tgt.values()))


def _grams(tokens: list[str], n: int) -> list[list[str]]:
    return [tokens[i : i + n] for i in range(len(tokens) - n + 1)]


def lcs_table(a: list[Any], b: list[Any]) -> list[list[int]]:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                table[i][j] = table[i - 1][j - 1] + 1
            else:
                table[i][j] = max(table[i - 1][j], table[i][j - 1])
    return table


def lcs_indices(ref: list[Any], cand: list[Any]) -> list[int]:
    table = lcs_table(ref, cand)
    i, j, out = len(ref), len(cand), []
    while i > 0 and j > 0:
        if ref[i - 1] == cand[j - 1]:
            out.append(i - 1)
            i -= 1
            j -= 1
        elif table[i][j - 1] > table[i - 1][j]:
            j -= 1
        else:
            i -= 1
    return out[::-1]


def rouge_l(target: str, prediction: str, use_stemmer: bool = False) -> dict[str, float]:
    tgt, pred = rouge_tokenize(target, use_stemmer), rouge_tokenize(prediction, use_stemmer)
    if not tgt or not pred:
        return _score(0, 0, 0)
    return _score(lcs_table(tgt, pred)[-1][-1], len(pred), len(tgt))


def rouge_lsum(target: str, prediction: str, use_stemmer: bool = False) -> dict[str, float]:
    tgt = [rouge_tokenize(s, use_stemmer) for s in target.split("\n") if s]
    pred = [rouge_tokenize(s, use_stemmer) for s in prediction.split("\n") if s]
    m, n = sum(map(len, tgt)), sum(map(len, pred))
    if not m or not n:
        return _score(0, 0, 0)
    left_t = Counter(t for s in tgt for t in s)
    left_p = Counter(t for s in pred for t in s)
    hits = 0
    for sentence in tgt:
        union = sorted(set().union(*(lcs_indices(sentence, c) for c in pred)))
        for token in (sentence[i] for i in union):
            if left_t[token] > 0 and left_p[token] > 0:
                hits += 1
                left_t[token] -= 1
                left_p[token] -= 1
    return _score(hits, n, m)


def rouge(target: str, prediction: str, rouge_types: tuple[str, ...] = ("rouge1", "rouge2", "rougeL", "rougeLsum"),
          use_stemmer: bool = False) -> dict[str, dict[str, float]]:
    out = {}
    for kind in rouge_types:
        if kind == "rougeL":
            out[kind] = rouge_l(target, prediction, use_stemmer)
        elif kind == "rougeLsum":
            out[kind] = rouge_lsum(target, prediction, use_stemmer)
        elif re.fullmatch(r"rouge[1-9]", kind):
            out[kind] = rouge_n(target, prediction, int(kind[5:]), use_stemmer)
        else:
            raise ValueError(f"unknown ROUGE type {kind!r}")
    return out


# -- perplexity ----------------------------------------------------------------------------------------
def _token_nll(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int,
               shifted: bool) -> tuple[torch.Tensor, torch.Tensor]:
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits (batch, seq, vocab) and labels (batch, seq) do not match: {tuple(logits.shape)} "
                         f"and {tuple(labels.shape)}")
    if not shifted:
        logits, labels = logits[:, :-1], labels[:, 1:]
    logp = torch.log_softmax(logits.double(), dim=-1)
    keep = labels != ignore_index
    safe = labels.masked_fill(~keep, 0)
    nll = -logp.gather(-1, safe.unsqueeze(-1)).squeeze(-1) * keep
    return nll.sum(dim=1), keep.sum(dim=1)


def perplexity(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100, shifted: bool = False) -> float:
    nll, count = _token_nll(logits, labels, ignore_index, shifted)
    if int(count.sum()) == 0:
        raise ValueError("no position is counted (every label is ignore_index): perplexity is undefined")
    return math.exp(float(nll.sum()) / int(count.sum()))


def perplexity_per_sequence(logits: torch.Tensor, labels: torch.Tensor, ignore_index: int = -100,
                            shifted: bool = False) -> list[float]:
    nll, count = _token_nll(logits, labels, ignore_index, shifted)
    return [math.exp(float(s) / int(c)) if int(c) else float("nan") for s, c in zip(nll, count, strict=True)]


# -- the evaluate module -------------------------------------------------------------------------------
def metric_path() -> str:
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), "text_metrics.py")


def evaluate_scores(predictions: list[str], references: list[list[str]], batch_size: int | None = None,
                    use_stemmer: bool = False) -> dict[str, float]:
    import evaluate

    metric = evaluate.load(metric_path())
    step = batch_size or max(len(predictions), 1)
    for start in range(0, len(predictions), step):
        metric.add_batch(predictions=predictions[start : start + step], references=references[start : start + step])
    scores = metric.compute(use_stemmer=use_stemmer)
    return {key: float(value) for key, value in scores.items()}
