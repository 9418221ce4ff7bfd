"""Hidden checks of the metrics: random cases made from the grading seed, scored live by sacreBLEU, rouge-score
and torch in this process; corpus-level aggregation; extreme logits; the evaluate module on hidden data."""

import math
import random

import pytest
import torch
import torch.nn.functional as F

from grader.testing import expect_type, record

WORDS = ["the", "a", "dog", "cat", "man", "men", "bit", "had", "bitten", "him", "first", "was", "not", "unexpected",
         "no", "one", "surprised", "it", "it's", "wasn't", "and", "of", "to", "in", "on", "with", "Dr.", "U.S.", "e.g.",
         "New", "York", "running", "runs", "ran", "runner", "happily", "happiness", "generalization", "cats", "cat's",
         "naïve", "café", "Zürich", "3.14", "1,000", "2-3", "50%", "$5"]
PUNCT = [",", ".", "!", "?", ";", ":", "-", "(", ")", '"', "'", "&amp;", "&quot;", "&lt;", "—", "…", "«", "»", "€"]


def _sentence(rng, low=0, high=18):
    out = []
    for _ in range(rng.randint(low, high)):
        word = rng.choice(WORDS) if rng.random() < 0.8 else rng.choice(PUNCT)
        if rng.random() < 0.1:
            word = word.upper() if rng.random() < 0.5 else word.capitalize()
        out.append(word if not out or rng.random() < 0.85 else out.pop() + word)
    return " ".join(out)


def _variant(rng, sentence):
    words = sentence.split()
    for _ in range(rng.randint(0, 4)):
        op = rng.random()
        if op < 0.3 and words:
            del words[rng.randrange(len(words))]
        elif op < 0.6:
            words.insert(rng.randint(0, len(words)), rng.choice(WORDS))
        elif words:
            words[rng.randrange(len(words))] = rng.choice(WORDS + PUNCT)
    return " ".join(words)


def random_corpus(rng, n):
    hyps, refs = [], []
    for _ in range(n):
        base = _sentence(rng, 1)
        hyps.append("" if rng.random() < 0.05 else _variant(rng, base))
        count = rng.randint(1, 4)
        refs.append([_variant(rng, base) if rng.random() < 0.85 else _sentence(rng, 1) for _ in range(count)])
    return hyps, refs


OPTION_SETS = [
    {}, {"tokenize": "none"}, {"tokenize": "intl"}, {"tokenize": "char"}, {"lowercase": True},
    {"smooth_method": "floor"}, {"smooth_method": "floor", "smooth_value": 0.3}, {"smooth_method": "add-k"},
    {"smooth_method": "none"}, {"max_order": 2}, {"max_order": 6, "tokenize": "intl", "lowercase": True},
]


def _sacre_options(options):
    out = dict(options)
    if "max_order" in out:
        out["max_ngram_order"] = out.pop("max_order")
    return out


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_bleu_statistics_live(student, reference, em, seed):
    """per-segment statistics equal sacreBLEU's own on random segments with 1 to 4 references each"""
    rng = random.Random(seed)
    for options in OPTION_SETS:
        hyps, refs = random_corpus(rng, 12)
        want = em.sacre_segment_stats(hyps, refs, **_sacre_options(
            {k: v for k, v in options.items() if k in ("tokenize", "lowercase", "max_order")}))
        order = options.get("max_order", 4)
        stat_options = {k: v for k, v in options.items() if k in ("tokenize", "lowercase", "max_order")}
        for hyp, r, w in zip(hyps, refs, want, strict=True):
            got = em.expect_stats(student.bleu_statistics(hyp, r, **stat_options), order, "bleu_statistics(...)")
            if got != w:
                named = em.tokenize_advice(student, [hyp, *r], stat_options.get("tokenize", "13a"),
                                           stat_options.get("lowercase", False))
                if named is None and em.mistakes:
                    named = em.mistakes.stats_diagnose(reference, hyp, r, stat_options, got)
                advice = named or "the statistics differ from sacreBLEU's (clipping, lengths)"
                raise AssertionError(f"{advice}\nbleu_statistics of a "
                                     f"segment with {len(r)} references, options {stat_options}: got {got}, sacreBLEU "
                                     f"gives {w}")


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_hidden_corpus_bleu_live(student, reference, em, seed):
    """corpus BLEU equals sacreBLEU scored live on random corpora, every tokenizer, smoothing and order"""
    em.expect_from_scratch(student)
    rng = random.Random(seed + 1)
    for options in OPTION_SETS:
        hyps, refs = random_corpus(rng, rng.randint(3, 25))
        want = em.sacre_bleu(hyps, refs, **_sacre_options(options))
        got = em.expect_float(student.corpus_bleu(hyps, refs, **options), "corpus_bleu(...)")
        if not math.isclose(got, want, abs_tol=em.BLEU_TOL):
            named = em.mistakes.corpus_diagnose(reference, hyps, refs, options, got) if em.mistakes else None
            raise AssertionError(f"{named or 'corpus BLEU differs from sacreBLEU'}\ncorpus_bleu of {len(hyps)} "
                                 f"segments with {options}: {got!r}, sacreBLEU gives {want!r}")
    record("corpora", len(OPTION_SETS))


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_corpus_from_summed_statistics(student, reference, em, seed):
    """corpus_statistics sums the segments' statistics; corpus BLEU differs from the mean of sentence BLEUs"""
    em.expect_from_scratch(student)
    rng = random.Random(seed + 2)
    hyps, refs = random_corpus(rng, 30)
    hyps[0], refs[0] = "a short one", ["a short one indeed , and a much longer reference than the hypothesis"]
    rows = em.sacre_segment_stats(hyps, refs)
    want = {"matches": [sum(r["matches"][n] for r in rows) for n in range(4)],
            "totals": [sum(r["totals"][n] for r in rows) for n in range(4)],
            "hyp_len": sum(r["hyp_len"] for r in rows), "ref_len": sum(r["ref_len"] for r in rows)}
    got = em.expect_stats(student.corpus_statistics(hyps, refs), 4, "corpus_statistics(...)")
    if got != want:
        upstream = em.stats_advice(student, hyps, refs)
        advice = upstream or "corpus_statistics is the element-wise SUM of the segments' statistics (lengths too)"
        raise AssertionError(f"{advice}\ngot {got}\nexpected {want}")
    score = em.expect_float(student.corpus_bleu(hyps, refs), "corpus_bleu(...)")
    target = em.sacre_bleu(hyps, refs)
    mean = sum(reference.sentence_bleu(h, r) for h, r in zip(hyps, refs, strict=True)) / len(hyps)
    record("corpus_bleu", target)
    record("mean_sentence_bleu", mean)
    assert not math.isclose(score, mean, abs_tol=1e-6) or math.isclose(mean, target, abs_tol=1e-6), (
        "corpus BLEU is bleu_from_statistics of the SUMMED statistics, not the mean of the sentence scores")
    assert math.isclose(score, target, abs_tol=em.BLEU_TOL), f"corpus_bleu = {score}, sacreBLEU gives {target}"


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_sentence_bleu_live(student, em, seed):
    """sentence BLEU equals sacreBLEU's on random sentences, for each smoothing, with and without effective order"""
    em.expect_from_scratch(student)
    rng = random.Random(seed + 3)
    hyps, refs = random_corpus(rng, 30)
    for i, (hyp, r) in enumerate(zip(hyps, refs, strict=True)):
        options = dict(OPTION_SETS[i % len(OPTION_SETS)])
        effective = i % 3 != 0
        metric = em.sacre_metric(effective_order=effective, **_sacre_options(options))
        want = float(metric.sentence_score(hyp, r).score)
        got = em.expect_float(student.sentence_bleu(hyp, r, effective_order=effective, **options), "sentence_bleu")
        if not math.isclose(got, want, abs_tol=em.BLEU_TOL):
            upstream = em.stats_advice(student, [hyp], [r], **options)
            raise AssertionError(
                f"{upstream or 'check the smoothing rules and the effective order (the orders with totals > 0)'}\n"
                f"sentence_bleu(hypothesis, {len(r)} references, effective_order={effective}, {options}) = {got!r}, "
                f"sacreBLEU gives {want!r}")


def _text(rng, sentences):
    return "\n".join(_sentence(rng, 0, 12) for _ in range(sentences))


def _rouge_pairs(rng, n):
    pairs = []
    for i in range(n):
        target = _text(rng, rng.randint(1, 3))
        prediction = "\n".join(_variant(rng, line) for line in target.split("\n")) if i % 4 else _text(rng, 2)
        pairs.append((target, prediction))
    return [*pairs, ("", "something"), ("something", ""), ("/ , .", "/"), ("naïve café", "naive cafe"),
            ("Running runs ran", "he was running"), ("his dog has a bone", "hi dog ha a bone")]  # last: stemmed


def _expect_rouge(student, reference, em, pairs, kinds):
    for index, (target, prediction) in enumerate(pairs):
        stem = index % 2 == 1
        want = em.rouge_oracle(target, prediction, kinds, stem)
        scores = student.rouge(target, prediction, kinds, stem)
        expect_type(scores, dict, "rouge(target, prediction, rouge_types, use_stemmer)")
        for kind in kinds:
            assert kind in scores, f"rouge(...) should return a dict with the key {kind!r}"
            got = em.expect_prf(scores[kind], f"rouge(...)[{kind!r}]")
            problem = em.prf_problem(got, want[kind], f"{kind} (use_stemmer={stem})")
            if problem:
                named = (em.mistakes.rouge_diagnose(reference, kind, target, prediction, stem, got)
                         if em.mistakes else None)
                raise AssertionError(f"{named}\n{problem}" if named else problem)


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_hidden_rouge_live(student, reference, em, seed):
    """ROUGE-1/2/L/Lsum equal rouge-score's on random texts (punctuation, case, non-ASCII, stemming, empty)"""
    em.expect_from_scratch(student)
    _expect_rouge(student, reference, em, _rouge_pairs(random.Random(seed + 4), 40),
                  ("rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"))


def _line(rng, words):
    return " ".join(rng.choice(words) for _ in range(rng.randint(2, 7)))


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_rouge_lsum_multiline(student, reference, em, seed):
    """ROUGE-Lsum on multi-sentence texts with repeated words: union LCS, no token counted twice"""
    em.expect_from_scratch(student)
    rng = random.Random(seed + 5)
    pairs = []
    for _ in range(25):
        words = rng.sample(["w1", "w2", "w3", "w4", "w5", "w6"], 4)
        target = "\n".join(_line(rng, words) for _ in range(rng.randint(1, 3)))
        prediction = "\n".join(_line(rng, words) for _ in range(rng.randint(2, 4)))
        pairs.append((target, prediction))
    _expect_rouge(student, reference, em, pairs, ("rougeLsum",))


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_internals_random(student, reference, seed):
    """n-gram counts, LCS tables and rouge-score's backtracking on random token lists (many equal LCS)"""
    rng = random.Random(seed + 6)
    for _ in range(30):
        a = [rng.choice("abc") for _ in range(rng.randint(0, 9))]
        b = [rng.choice("abc") for _ in range(rng.randint(0, 9))]
        order = rng.randint(1, 5)
        assert student.ngram_counts(a, order) == reference.ngram_counts(a, order), (
            f"ngram_counts({a}, {order}) differs: count every n-gram of the orders 1..{order} as a tuple")
        assert student.lcs_table(a, b) == reference.lcs_table(a, b), f"lcs_table({a}, {b}) differs"
        got, want = student.lcs_indices(a, b), reference.lcs_indices(a, b)
        assert got == want, (
            f"lcs_indices({a}, {b}) = {got}, expected {want}: of the several LCS, read back rouge-score's (diagonal on "
            "equal tokens, left only when table[i][j-1] > table[i-1][j], otherwise up)")


def _expect_ppl(student, em, logits, labels, shifted, what):
    aligned = (logits, labels) if shifted else (logits[:, :-1], labels[:, 1:])
    v = logits.shape[-1]
    want = math.exp(float(F.cross_entropy(aligned[0].double().reshape(-1, v), aligned[1].reshape(-1),
                                          ignore_index=-100)))
    got = em.expect_float(student.perplexity(logits, labels, shifted=shifted), f"perplexity({what})")
    if not math.isclose(got, want, rel_tol=em.PPL_RTOL):
        named = em.mistakes.perplexity_diagnose(logits, labels, shifted, got) if em.mistakes else None
        raise AssertionError(f"{named or 'the perplexity differs from exp(F.cross_entropy(...))'}\nperplexity({what}, "
                             f"shifted={shifted}) = {got!r}, expected {want!r}")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_perplexity_extreme_logits(student, em, seed):
    """perplexity of float32, float16 and bfloat16 logits, with labels the model finds vanishingly unlikely"""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 40, 50, generator=g, dtype=torch.float64) * 3
    labels = logits.argmax(-1)
    for b, t in ((0, 5), (1, 17), (1, 30)):  # three tokens at log-probability about -1500
        labels[b, t] = (labels[b, t] + 1) % 50
        logits[b, t - 1, labels[b, t]] = -1500.0
        logits[b, t, labels[b, t]] = -1500.0
    labels[1, :4] = -100
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for shifted in (False, True):
            _expect_ppl(student, em, logits.to(dtype), labels, shifted, f"{dtype} logits of magnitude 1500")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_hidden_perplexity_corpus_vs_sequences(student, em, seed):
    """corpus perplexity pools the tokens of all rows (not the mean of row perplexities); rows with masks"""
    g = torch.Generator().manual_seed(seed + 7)
    logits = torch.randn(5, 12, 30, generator=g) * 2
    labels = torch.randint(0, 30, (5, 12), generator=g)
    labels[0, :9] = -100
    labels[2, 5:] = -100
    labels[4] = -100
    for shifted in (False, True):
        _expect_ppl(student, em, logits, labels, shifted, "rows with different numbers of counted tokens")
    per = student.perplexity_per_sequence(logits, labels)
    expect_type(per, list, "perplexity_per_sequence(...)")
    assert len(per) == 5 and math.isnan(per[4]), f"perplexity_per_sequence: one float per row, nan for row 4: {per}"
    for row in range(4):
        want = math.exp(float(F.cross_entropy(logits[row, :-1].double(), labels[row, 1:], ignore_index=-100)))
        assert math.isclose(per[row], want, rel_tol=em.PPL_RTOL), (
            f"perplexity_per_sequence row {row} = {per[row]}, expected {want}")


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(240)
def test_hidden_evaluate_module_live(student, em, seed):
    """the evaluate module, fed in batches, gives sacreBLEU's corpus BLEU and rouge-score's mean best-reference F"""
    em.expect_from_scratch(student)
    rng = random.Random(seed + 8)
    hyps, refs = random_corpus(rng, 17)
    for stem, batch in ((False, 5), (True, None)):
        scores = em.evaluate_scores(student, hyps, refs, batch_size=batch, use_stemmer=stem)
        expect_type(scores, dict, "evaluate_scores(...)")
        want = {"bleu": em.sacre_bleu(hyps, refs)}
        kinds = ("rouge1", "rouge2", "rougeL", "rougeLsum")
        for kind in kinds:
            best = [max(em.rouge_oracle(r, h, (kind,), stem)[kind]["fmeasure"] for r in rs)
                    for h, rs in zip(hyps, refs, strict=True)]
            want[kind] = sum(best) / len(best)
        for key, value in want.items():
            assert key in scores, f"the evaluate module's compute() should return {key!r}: got {sorted(scores)}"
            got = em.expect_float(scores[key], f"evaluate_scores(...)[{key!r}]")
            if not math.isclose(got, value, abs_tol=1e-9):
                raise AssertionError(f"{em.module_advice(student, key, got, hyps, refs)}\n{key} through the evaluate "
                                     f"module (batch_size={batch}, use_stemmer={stem}) is {got!r}, expected {value!r}")

