"""Public checks of ROUGE (rouge-score's own test vectors), the LCS, perplexity, and the evaluate module."""

import math

import pytest
import torch
import torch.nn.functional as F
from vectors import HYPS, REFS

from grader.testing import StudentCodeError, expect_type, record

ROUGE_VECTORS = [
    ("rouge1", "testing one two", "testing", (1.0, 1 / 3, 1 / 2)),
    ("rouge2", "testing one two", "testing one", (1.0, 1 / 2, 2 / 3)),
    ("rougeL", "testing one two", "testing one", (1.0, 2 / 3, 4 / 5)),
    ("rougeL", "testing one two", "testing two", (1.0, 2 / 3, 4 / 5)),
    ("rougeLsum", "w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5", (0.4, 0.8, 0.5333333333333333)),
    ("rougeLsum", "a b c\nd e", "d e\na b c", (1.0, 1.0, 1.0)),
    ("rouge1", "Testing, one; TWO!", "testing", (1.0, 1 / 3, 1 / 2)),
    ("rouge1", "testing one two", "", (0.0, 0.0, 0.0)),
    ("rouge2", "testing one two", "", (0.0, 0.0, 0.0)),
    ("rougeL", "testing one two", "", (0.0, 0.0, 0.0)),
    ("rougeLsum", "testing one two", "", (0.0, 0.0, 0.0)),
    ("rougeLsum", "", "testing one two", (0.0, 0.0, 0.0)),
    ("rougeLsum", "testing one two", "/", (0.0, 0.0, 0.0)),
    ("rouge1", "你好 世界", "你好 世界", (0.0, 0.0, 0.0)),
    ("rouge1", "a b c", "d e f", (0.0, 0.0, 0.0)),
]


@pytest.mark.points(1)
def test_rouge_vectors(student, em):
    """rouge-score's vectors: P/R/F of ROUGE-1, -2, -L, -Lsum, empty and non-word texts, F = 0 when P + R = 0"""
    em.expect_from_scratch(student)
    for kind, target, prediction, (p, r, f) in ROUGE_VECTORS:
        scores = student.rouge(target, prediction, (kind,))
        expect_type(scores, dict, "rouge(target, prediction, rouge_types)")
        assert kind in scores, f"rouge(..., ({kind!r},)) should return a dict with the key {kind!r}"
        got = em.expect_prf(scores[kind], f"rouge(...)[{kind!r}]")
        problem = em.prf_problem(got, {"precision": p, "recall": r, "fmeasure": f},
                                 f"{kind} of target {target!r}, prediction {prediction!r}")
        assert problem is None, problem
    probe = "The runner's RUNNING quickly, café 2024 was his!"
    tokens = student.rouge_tokenize(probe, True)
    assert tokens == ["the", "runner", "s", "run", "quickli", "caf", "2024", "was", "his"], (
        "rouge_tokenize: lower-case, non-[a-z0-9] runs become spaces, Porter-stem tokens longer than 3 characters "
        f"only ('was' stays 'was')\nrouge_tokenize({probe!r}, use_stemmer=True) = {tokens}")
    for bad in (lambda: student.rouge("a", "a", ("rougeX",)), lambda: student.rouge_n("a", "a", 0)):
        with pytest.raises(StudentCodeError) as err:
            bad()
            pytest.fail("rouge with an unknown type, and rouge_n with n = 0, should raise ValueError")
        assert err.value.exc_type == "ValueError", f"expected ValueError, got {err.value.exc_type}"
    record("vectors", len(ROUGE_VECTORS))


@pytest.mark.points(1)
def test_lcs(student, reference):
    """the LCS table and rouge-score's backtracking (one particular LCS among several)"""
    for a, b in (([1, 2, 3, 4, 5], [2, 5, 3, 4]), (list("abcab"), list("bacba")), ([], [1]), (list("aaa"), list("aa"))):
        table = student.lcs_table(a, b)
        want = reference.lcs_table(a, b)
        assert table == want, (f"lcs_table({a}, {b}) should be the (len(a)+1) x (len(b)+1) table of LCS lengths of "
                               f"the prefixes\ngot {table}\nexpected {want}")
        got = student.lcs_indices(a, b)
        want = reference.lcs_indices(a, b)
        assert got == want, (
            f"lcs_indices({a}, {b}) = {got}, expected {want}: read the LCS back from the end; on unequal tokens move "
            "left only when table[i][j-1] > table[i-1][j], otherwise up (rouge-score's choice among equal LCS)")


def _logits(seed, batch=3, seq=6, vocab=11, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(batch, seq, vocab, generator=g, dtype=torch.float64) * 2).to(dtype)
    labels = torch.randint(0, vocab, (batch, seq), generator=g)
    labels[0, :3] = -100  # a prompt that is not scored
    labels[-1] = -100  # a row that is all padding
    return logits, labels


def expected_perplexity(logits, labels, ignore_index=-100, shifted=False):
    if not shifted:
        logits, labels = logits[:, :-1], labels[:, 1:]
    v = logits.shape[-1]
    return math.exp(float(F.cross_entropy(logits.double().reshape(-1, v), labels.reshape(-1),
                                          ignore_index=ignore_index)))


@pytest.mark.points(1)
def test_perplexity_matches_cross_entropy(student, em):
    """exp of the token-mean NLL, ignored positions excluded, with and without the one-position shift"""
    logits, labels = _logits(0)
    for shifted in (False, True):
        want = expected_perplexity(logits, labels, shifted=shifted)
        got = em.expect_float(student.perplexity(logits, labels, shifted=shifted), "perplexity(...)")
        if not math.isclose(got, want, rel_tol=em.PPL_RTOL):
            named = em.mistakes.perplexity_diagnose(logits, labels, shifted, got) if em.mistakes else None
            raise AssertionError(
                (f"{named}\n" if named else "")
                + f"perplexity(logits, labels, shifted={shifted}) = {got}, expected {want} = exp(F.cross_entropy(...)) "
                + ("on logits[:, :-1] and labels[:, 1:] (logits at t predict the token at t + 1)" if not shifted else
                   "on the aligned tensors") + ", positions with label -100 not counted")
    per = student.perplexity_per_sequence(logits, labels)
    expect_type(per, list, "perplexity_per_sequence(...)")
    assert len(per) == 3 and math.isnan(per[2]) and not any(math.isnan(p) for p in per[:2]), (
        f"perplexity_per_sequence should give one float per row, nan for the row with no counted token: {per}")
    for row in range(2):
        want = expected_perplexity(logits[row:row + 1], labels[row:row + 1])
        assert math.isclose(per[row], want, rel_tol=em.PPL_RTOL), f"row {row}: {per[row]}, expected {want}"
    with pytest.raises(StudentCodeError) as err:
        student.perplexity(logits, torch.full_like(labels, -100))
        pytest.fail("perplexity with every label ignored should raise ValueError (no token to average over)")
    assert err.value.exc_type == "ValueError", f"expected ValueError, got {err.value.exc_type}"


@pytest.mark.points(1)
@pytest.mark.timeout_s(180)
def test_evaluate_module_loads(student, em):
    """your text_metrics.py loads with evaluate.load(path) offline and scores sacreBLEU's corpus, added in batches"""
    em.expect_from_scratch(student)
    path = student.metric_path()
    expect_type(path, str, "metric_path()")
    assert path.endswith("text_metrics.py"), f"metric_path() should end with text_metrics.py, got {path!r}"
    scores = em.evaluate_scores(student, HYPS, REFS, batch_size=2)
    expect_type(scores, dict, "evaluate_scores(...)")
    for key in ("bleu", "rouge1", "rouge2", "rougeL", "rougeLsum"):
        assert key in scores, f"the evaluate module's compute() should return {key!r}: got {sorted(scores)}"
        em.expect_float(scores[key], f"evaluate_scores(...)[{key!r}]")
    if not math.isclose(scores["bleu"], 48.530827, abs_tol=1e-6):
        raise AssertionError(f"{em.module_advice(student, 'bleu', scores['bleu'], HYPS, REFS)}\nbleu through the "
                             f"evaluate module is {scores['bleu']}, expected 48.530827")
