"""Hidden checks of the word-embeddings exercise: hidden word lists and the standard benchmarks."""

from pathlib import Path

import pytest

from grader.testing import StudentCodeError, record

HIDDEN_WORDS = [
    ("queen", 10), ("war", 7), ("water", 12), ("river", 4), ("computer", 6), ("german", 9), ("blood", 5),
    ("horse", 8), ("science", 10), ("philosophy", 3), ("god", 6), ("london", 4), ("english", 15), ("gold", 2),
    ("death", 1), ("love", 11), ("city", 6), ("money", 3), ("ship", 5), ("france", 20),
]
HIDDEN_ANALOGIES = [("france", "french", "italy"), ("king", "queen", "lord"), ("big", "bigger", "small"),
                    ("boy", "girl", "father"), ("walk", "walked", "play")]


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_neighbours_hidden_words(wv, ref_wv, we, targets):
    """nearest neighbours of hidden words, for several k"""
    for word, k in HIDDEN_WORDS:
        we.check_ranking(wv.most_similar(word, k=k), ref_wv, we.neighbour_scores(ref_wv, word), [word], k,
                         f"most_similar of a hidden word (k={k})", float(targets["score_tolerance"]), hidden=True)


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_analogy_benchmark(wv, ref_wv, we, assets, seed, targets):
    """3CosAdd answers on questions of the word2vec analogy set and on hidden analogies"""
    tol = float(targets["score_tolerance"])
    questions = we.analogy_questions(Path(assets["word-benchmarks"]) / "questions-words.txt", ref_wv,
                                      int(targets["analogy_questions"]), seed)
    correct = 0
    for i, (a, b, c, d) in enumerate(questions):
        answer = wv.analogy(a, b, c, k=1)
        we.check_ranking(answer, ref_wv, we.analogy_scores(ref_wv, a, b, c), [a, b, c], 1,
                         f"analogy question {i + 1} of the benchmark", tol, hidden=True)
        correct += we.as_pairs(answer, "analogy")[0][0] == d
    for a, b, c in HIDDEN_ANALOGIES:
        we.check_ranking(wv.analogy(a, b, c, k=4), ref_wv, we.analogy_scores(ref_wv, a, b, c), [a, b, c], 4,
                         "a hidden analogy (k=4)", tol, hidden=True)
    record("analogy_accuracy", round(correct / max(len(questions), 1), 4))
    record("analogy_questions", len(questions))


@pytest.mark.points(1)
def test_similarity_benchmark(wv, ref_wv, we, assets):
    """similarity() on the WordSim-353 pairs equals the reference (Spearman's rho is recorded)"""
    pairs = we.similarity_pairs(Path(assets["word-benchmarks"]) / "wordsim353.tsv", ref_wv)
    got = []
    for w1, w2, _human in pairs:
        value = wv.similarity(w1, w2)
        assert type(value) in (float, int), f"similarity() should return a Python float, got {type(value).__name__}"
        want = ref_wv.similarity(w1, w2)
        assert abs(value - want) <= 1e-4, (
            f"similarity({w1!r}, {w2!r}) = {value:.6f}, expected {want:.6f}: the cosine similarity of the two "
            "words' vectors")
        got.append(float(value))
    record("wordsim353_pairs", len(pairs))
    record("wordsim353_spearman", round(we.spearman(got, [h for _, _, h in pairs]), 4))


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_oov_hidden(wv, ref_wv, we, targets):
    """OOV words raise KeyError everywhere; capitalised words fall back to lower case"""
    for call, args in (("most_similar", ("Qwzxv",)), ("similarity", ("king", "xqzvw")),
                       ("analogy", ("man", "king", "wqmzx"))):
        with pytest.raises(StudentCodeError) as err:
            wv.call(call, *args)
            pytest.fail(f"{call} with an out-of-vocabulary word returned a value: raise KeyError")
        assert err.value.exc_type == "KeyError", f"{call} with an OOV word raised {err.value.exc_type}, not KeyError"
    we.check_ranking(wv.analogy("Man", "King", "Woman", k=2), ref_wv,
                     we.analogy_scores(ref_wv, "man", "king", "woman"), ["man", "king", "woman"], 2,
                     "analogy with capitalised words", float(targets["score_tolerance"]), hidden=True)
    value = wv.similarity("LONDON", "Paris")
    assert type(value) in (float, int), (
        f"similarity() should return a Python float, got {type(value).__name__}: convert the score with float(...)")
    assert abs(value - ref_wv.similarity("london", "paris")) <= 1e-4, (
        "similarity('LONDON', 'Paris') should use the lower-case words' vectors")
