"""Public checks of BLEU on sacreBLEU's published test vectors (its test_bleu.py and test_sentence_bleu.py)."""

import math

import pytest
from vectors import HYPS, REF, REFS, SYS

from grader.testing import StudentCodeError, expect_type


def _close(got, want, what, advice, tol=1e-6):
    assert math.isclose(got, want, rel_tol=0, abs_tol=tol), f"{advice}\n{what} = {got!r}, expected {want!r}"


def _raises(call, what, reason):
    with pytest.raises(StudentCodeError) as err:
        call()
        pytest.fail(f"{what} should raise ValueError: {reason}")
    assert err.value.exc_type == "ValueError", f"{what} raised {err.value.exc_type}, expected ValueError ({reason})"


@pytest.mark.points(1)
def test_tokenizers(student, reference):
    """13a, intl, none and char tokenisation as sacreBLEU does it; lower-casing; unknown names refused"""
    lines = ["Hello, world! It's 3.14 &amp; 1,000-2 &quot;ok&quot;.", "A-\nB  c\td<skipped>e.", "x=y; (z) [w] {v}/u",
             "¿Qué? «Sí» — 5 € …", "  trailing   spaces   ", ""]
    for line in lines:
        got = student.tokenize_13a(line)
        expect_type(got, str, "tokenize_13a(line)")
        want = reference.tokenize_13a(line)
        assert got == want, (
            "tokenize_13a: unescape the 4 entities, pad with spaces, apply the four regular expressions of the stub "
            f"in order, collapse whitespace\non {line!r}: got {got!r}, expected {want!r}")
    for method in ("13a", "intl", "none", "char"):
        for lowercase in (False, True):
            for line in lines:
                got = student.bleu_tokenize(line, method, lowercase)
                want = reference.bleu_tokenize(line, method, lowercase)
                assert got == want, (
                    f"bleu_tokenize(line, {method!r}, lowercase={lowercase}): lower-case first, rstrip, tokenize, "
                    f"split on whitespace\non {line!r}: got {got!r}, expected {want!r}")
    _raises(lambda: student.bleu_tokenize("a b", "spacy"), "bleu_tokenize(line, 'spacy')", "unknown tokenizer")


@pytest.mark.points(1)
def test_ngram_counts(student, reference):
    """every n-gram of orders 1..max_order with its count, as tuples"""
    for tokens, order in ((["a", "b", "a"], 2), (["the", "cat", "the", "cat", "the"], 4), ([], 3), (["x"], 4)):
        got = student.ngram_counts(tokens, order)
        expect_type(got, dict, "ngram_counts(tokens, max_order)")
        want = reference.ngram_counts(tokens, order)
        assert got == want, (f"ngram_counts({tokens}, {order}) should count each n-gram (as a tuple) of every order "
                             f"1..{order}\ngot {got}\nexpected {want}")


@pytest.mark.points(1)
def test_bleu_statistics(student, em):
    """clipped matches (max over references), totals, the closest reference length (ties: the shorter)"""
    cases = [
        ("am I am a character sequence", ["I am a symbol string sequence a a"],
         {"matches": [4, 2, 1, 0], "totals": [6, 5, 4, 3], "hyp_len": 6, "ref_len": 8},
         "sacreBLEU's statistics vector"),
        ("the the the the", ["the cat sat", "the the mat is red"],
         {"matches": [2, 1, 0, 0], "totals": [4, 3, 2, 1], "hyp_len": 4, "ref_len": 3},
         "clip each n-gram by the reference where it occurs MOST (2 'the'), not the sum over references (3); the "
         "closest reference length to 4 is 3 (5 would be as close: on a tie take the SHORTER)"),
        ("a b c d e", ["a b c d e f g h i j", "a b", "a b c d e f g"],
         {"matches": [5, 4, 3, 2], "totals": [5, 4, 3, 2], "hyp_len": 5, "ref_len": 7},
         "ref_len is the length of the reference CLOSEST to the hypothesis (7), not the shortest (2) as "
         "tensorflow/nmt uses"),
    ]
    for hyp, refs, want, advice in cases:
        got = em.expect_stats(student.bleu_statistics(hyp, refs), 4, "bleu_statistics(hypothesis, references)")
        assert got == want, f"{advice}\nbleu_statistics({hyp!r}, {refs!r}) = {got}, expected {want}"
    _raises(lambda: student.bleu_statistics("a", []), "bleu_statistics('a', [])", "no references")


@pytest.mark.points(1)
def test_bleu_from_statistics(student):
    """brevity penalty, smoothing (exp, floor, add-k), effective order and the zero-match early exit"""
    cases = [
        (([9, 7, 5, 3], [10, 8, 6, 4], 11, 11), {}, 83.75922397, "no smoothing, no brevity penalty"),
        (([9, 7, 5, 3], [10, 8, 6, 4], 11, 15), {}, 83.75922397 * math.exp(1 - 15 / 11),
         "brevity penalty exp(1 - ref_len / hyp_len) when the hypothesis is shorter"),
        (([3, 2, 1, 0], [4, 3, 2, 1], 4, 4), {"smooth_method": "floor", "smooth_value": 0.01},
         22.360679774997894, "floor: a zero-match order gets precision 100 * smooth_value / total"),
        (([2, 0, 0, 0], [2, 1, 0, 0], 2, 4), {"smooth_method": "exp"}, 0.0,
         "stop at the first order with no n-grams: the orders from there on keep precision 0, so without effective "
         "order the score is 0"),
        (([2, 0, 0, 0], [2, 1, 0, 0], 2, 4), {"smooth_method": "exp", "effective_order": True},
         100 * math.exp(1 - 2) * math.sqrt(100 * 50) / 100,
         "exp: each zero-match order doubles the divisor (precision 100 / (2 * 1) here); with effective order only "
         "orders 1 and 2 count"),
        (([4, 0, 0, 0], [4, 3, 2, 1], 4, 4), {"smooth_method": "exp"},
         math.exp((math.log(100) + math.log(100 / 6) + math.log(100 / 8) + math.log(100 / 8)) / 4),
         "exp: the divisor doubles for EACH zero-match order in turn: 100 / (2 * 3), 100 / (4 * 2), 100 / (8 * 1)"),
        (([2, 0, 0, 0], [3, 2, 1, 0], 3, 2), {"smooth_method": "floor", "smooth_value": 0.01, "effective_order": True},
         3.218297948685433, "effective order uses the orders whose TOTAL is > 0 (3 here), not only those with matches"),
        (([1, 0, 0, 0], [1, 0, 0, 0], 1, 2), {"smooth_method": "floor", "smooth_value": 0.01, "effective_order": True},
         36.78794411714425, "effective order with one token: only unigrams count; times the brevity penalty"),
        (([0, 0, 0, 0], [6, 5, 4, 3], 6, 2), {"smooth_method": "floor", "smooth_value": 0.01}, 0.0,
         "no match of any order: BLEU is 0 whatever the smoothing (sacreBLEU issue #141)"),
        (([5, 1, 0, 0], [6, 5, 4, 3], 6, 6), {"smooth_method": "add-k"},
         100 * math.exp((math.log(5 / 6) + math.log(2 / 6) + math.log(1 / 5) + math.log(1 / 4)) / 4),
         "add-k adds k (default 1) to matches AND totals of the orders n > 1 only"),
        (([5, 1, 0, 0], [6, 5, 4, 3], 6, 6), {"smooth_method": "none"}, 0.0,
         "without smoothing a zero precision makes BLEU 0"),
        (([0, 0], [0, 0], 0, 3), {}, 0.0, "an empty hypothesis scores 0"),
    ]
    for args, options, want, advice in cases:
        got = student.bleu_from_statistics(*args, **options)
        if type(got) not in (float, int):
            raise AssertionError(f"bleu_from_statistics should return a float, got {type(got).__name__}")
        _close(got, want, f"bleu_from_statistics{args} with {options}", advice)
    _raises(lambda: student.bleu_from_statistics([1], [1], 1, 1, smooth_method="laplace"),
            "bleu_from_statistics(..., smooth_method='laplace')", "unknown smoothing method")


@pytest.mark.points(1)
def test_corpus_bleu(student, reference, em):
    """sacreBLEU's corpus vectors: 13a, none and intl tokenisation, orders 1 to 6, empty hypotheses"""
    em.expect_from_scratch(student)
    vectors = [({}, 48.530827), ({"tokenize": "none"}, 49.1919566), ({"tokenize": "intl"}, 43.91623493),
               ({"smooth_method": "none"}, 48.530827)]
    for options, want in vectors:
        got = em.expect_float(student.corpus_bleu(HYPS, REFS, **options), "corpus_bleu(...)")
        named = (em.mistakes.corpus_diagnose(reference, HYPS, REFS, options, got)
                 if em.mistakes and not math.isclose(got, want, abs_tol=1e-6) else None)
        _close(got, want, f"corpus_bleu(the 3 sentences of sacreBLEU's test, {options})",
               named or "corpus BLEU sums the statistics of all segments, then applies bleu_from_statistics once",
               tol=1e-6)
    for order, want in zip(range(1, 7), (77.65, 60.50, 53.93, 48.53, 46.14, 43.28), strict=True):
        got = em.expect_float(student.corpus_bleu(HYPS, REFS, max_order=order), "corpus_bleu(...)")
        _close(got, want, f"corpus_bleu(..., max_order={order})", "max_order sets the highest n-gram order", 5e-3)
    got = em.expect_float(student.corpus_bleu(["", "", ""], REFS), "corpus_bleu of empty hypotheses")
    _close(got, 0.0, "corpus_bleu(['', '', ''], ...)", "empty hypotheses are kept (and score 0), not dropped")
    _raises(lambda: student.corpus_bleu(HYPS, REFS[:2]), "corpus_bleu(3 hypotheses, 2 reference lists)",
            "references[i] is the list of references of hypothesis i: the lengths must match")


@pytest.mark.points(1)
def test_sentence_bleu(student, em):
    """sacreBLEU's sentence vectors: each smoothing, tokenisation and lower-casing, with effective order"""
    em.expect_from_scratch(student)
    table = [({}, 8.493), ({"smooth_method": "none"}, 0.0), ({"smooth_method": "floor"}, 4.51688),
             ({"smooth_method": "floor", "smooth_value": 0.5}, 10.10), ({"smooth_method": "add-k"}, 14.882),
             ({"smooth_method": "add-k", "smooth_value": 2}, 21.389), ({"tokenize": "none"}, 7.347),
             ({"tokenize": "intl"}, 8.493), ({"tokenize": "char"}, 40.8759),
             ({"tokenize": "char", "lowercase": True}, 42.0267)]
    for options, want in table:
        got = em.expect_float(student.sentence_bleu(SYS, [REF], **options), "sentence_bleu(...)")
        _close(got, want, f"sentence_bleu(SYS, [REF], {options})",
               "sentence BLEU: effective order, with the smoothing asked for", tol=1e-2)
    for method in ("exp", "none", "floor", "add-k"):
        got = em.expect_float(student.sentence_bleu("this is a cat", ["okay thanks"], smooth_method=method), "sentence")
        _close(got, 0.0, f"sentence_bleu('this is a cat', ['okay thanks'], smooth_method={method!r})",
               "no n-gram matches: 0 under every smoothing")
