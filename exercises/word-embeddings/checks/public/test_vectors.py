"""Public checks of the word-embeddings exercise, on the real pre-trained vectors."""

import pytest
import torch

from grader.testing import StudentCodeError, assert_tensor_close, expect_type

FORMAT = "each line is 'word v1 v2 ... vd' separated by single spaces, with no header line, most frequent first"
COSINE = "cos(a, b) = (a * b).sum(-1) / (|a| |b|) along the last axis, each norm clamped to at least 1e-8"


def _loaded(value, what):
    expect_type(value, (list, tuple), what)
    assert len(value) == 2, f"{what} should be a (words, vectors) pair"
    words, vectors = value
    expect_type(words, (list, tuple), f"{what}[0] (the words)")
    expect_type(vectors, torch.Tensor, f"{what}[1] (the vectors)")
    return list(words), vectors


@pytest.mark.points(1)
def test_load_vectors(student, reference, vectors_path):
    """load_vectors reads every word and its float32 vector, in file order (and honours limit)"""
    words, vectors = _loaded(student.load_vectors(vectors_path), "load_vectors(path)")
    ref_words, ref_vectors = reference.load_vectors(vectors_path)
    assert len(words) == len(ref_words), (
        f"load_vectors read {len(words)} words, the file has {len(ref_words)}: {FORMAT}")
    assert words[:3] == ref_words[:3] and words == ref_words, (
        f"the words differ from the file's (first three: {words[:3]}, expected {ref_words[:3]}): {FORMAT}")
    assert_tensor_close(vectors, ref_vectors, rtol=0.0, atol=0.0, name="vectors",
                        advice=f"the vectors should be the file's values as float32: {FORMAT}")
    words, vectors = _loaded(student.load_vectors(vectors_path, limit=500), "load_vectors(path, limit=500)")
    assert words == ref_words[:500] and tuple(vectors.shape) == (500, ref_vectors.shape[1]), (
        "load_vectors(path, limit=500) should read only the first 500 words (and their 500 vectors)")


@pytest.mark.points(1)
def test_cosine_similarity(student, reference):
    """cosine_similarity along the last axis, broadcasting, and 0 (not NaN) for a zero vector"""
    torch.manual_seed(1)
    a, b = torch.randn(5, 8) * 3, torch.randn(5, 8)
    assert_tensor_close(student.cosine_similarity(a, b), reference.cosine_similarity(a, b), rtol=1e-5, atol=1e-6,
                        name="cosine_similarity(a, b) for (5, 8) inputs", advice=COSINE)
    a, b = torch.randn(4, 1, 8), torch.randn(1, 3, 8)
    assert_tensor_close(student.cosine_similarity(a, b), reference.cosine_similarity(a, b), rtol=1e-5, atol=1e-6,
                        name="cosine_similarity of (4, 1, 8) and (1, 3, 8)",
                        advice=f"the inputs broadcast to (4, 3, 8) and the result is (4, 3): {COSINE}")
    zero = torch.zeros(2, 8)
    zero[1] = 1.0
    out = student.cosine_similarity(zero, torch.ones(2, 8))
    assert_tensor_close(out, torch.tensor([0.0, 1.0]), rtol=0.0, atol=1e-6, name="cosine_similarity with a zero vector",
                        advice=f"a zero vector has no direction: its similarity is 0, not NaN; {COSINE}")


@pytest.mark.points(1)
def test_vector_lookup_and_oov(wv, ref_wv):
    """vector() and lookup(): lower-case fallback, KeyError / zeros and found flags for OOV, unchanged by searches"""
    assert_tensor_close(wv.vector("king"), ref_wv.vector("king"), rtol=0.0, atol=0.0, name='vector("king")',
                        advice="vector(word) is the word's row of the vectors, float32")
    assert_tensor_close(wv.vector("Paris"), ref_wv.vector("paris"), rtol=0.0, atol=0.0, name='vector("Paris")',
                        advice="the vectors are lower case: look a word up as it is, then in lower case")
    with pytest.raises(StudentCodeError) as err:
        wv.vector("zzyzxqv")
        pytest.fail('vector("zzyzxqv") returned a value for a word that is not in the vocabulary: raise KeyError')
    assert err.value.exc_type == "KeyError", f'vector("zzyzxqv") raised {err.value.exc_type}, expected KeyError'
    words = ["the", "Zzyzxqv", "Paris", "king"]
    value = wv.lookup(words)
    expect_type(value, (list, tuple), "lookup(words)")
    assert len(value) == 2, "lookup(words) should return a (matrix, found) pair"
    matrix, found = value
    ref_matrix, ref_found = ref_wv.lookup(words)
    assert list(found) == ref_found, (
        f"lookup({words}) found {list(found)}, expected {ref_found}: an OOV word is not found, and 'Paris' is "
        "found in lower case")
    assert_tensor_close(matrix, ref_matrix, rtol=0.0, atol=0.0, name=f"lookup({words}) matrix",
                        advice="row i is the vector of words[i], and an OOV word's row is all zeros")
    empty = wv.lookup([])
    expect_type(empty, (list, tuple), "lookup([])")
    assert isinstance(empty[0], torch.Tensor) and tuple(empty[0].shape) == (0, ref_matrix.shape[1]), (
        f"lookup([]) should give a (0, {ref_matrix.shape[1]}) matrix")
    # the same object after similarity, neighbours and analogies: the stored vectors must be what the file holds
    wv.similarity("king", "queen")
    wv.most_similar("king", k=3)
    wv.analogy("man", "king", "woman", k=1)
    assert_tensor_close(wv.vector("king"), ref_wv.vector("king"), rtol=0.0, atol=0.0,
                        name='vector("king") after similarity, most_similar and analogy', advice=(
                            "vector('king') changed after similarity, most_similar or analogy were called: they must "
                            "not modify the stored vectors (normalise into a new tensor, never in place with /= or "
                            "-=)"))
    again, _ = wv.lookup(words)
    assert_tensor_close(again, ref_matrix, rtol=0.0, atol=0.0, name="lookup(words) after the other methods",
                        advice="lookup() changed after the other methods ran: they must leave the stored vectors alone")


@pytest.mark.points(1)
def test_most_similar(student, reference, wv, ref_wv, we, targets, job_files):
    """most_similar gives the k nearest words by cosine, best first, without the query word (even when tied)"""
    for word, k in (("king", 10), ("music", 5), ("greek", 3)):
        we.check_ranking(wv.most_similar(word, k=k), ref_wv, we.neighbour_scores(ref_wv, word), [word], k,
                         f"most_similar({word!r}, k={k})", float(targets["score_tolerance"]))
    # a file where another word has exactly the query's vector: the query is not necessarily ranked first
    path = job_files.write("duplicates/vectors.txt", we.duplicates_file())
    small = student.new("WordVectors", path)
    ref_small = reference.WordVectors(str(job_files.root / "in" / "duplicates" / "vectors.txt"))
    for word, twin in we.DUPLICATES:
        we.check_ranking(small.most_similar(word, k=3), ref_small, we.neighbour_scores(ref_small, word), [word], 3,
                         f"most_similar({word!r}, k=3) on a file where {twin!r} has exactly {word!r}'s vector",
                         float(targets["score_tolerance"]), advice=lambda pairs, w=word, t=twin: (
                             f"{t!r} ties with {w!r} at cosine 1, so the query need not come first: leave the query "
                             "out by its row (its score set to -inf), not by dropping the first result"
                             if w in [p[0] for p in pairs] or t not in [p[0] for p in pairs] else None))


@pytest.mark.points(1)
def test_analogy(wv, ref_wv, we, targets):
    """analogy solves a : b :: c : ? with 3CosAdd on unit vectors, excluding a, b and c"""
    for a, b, c in (("man", "king", "woman"), ("he", "his", "she"), ("good", "better", "bad")):
        what = f"analogy({a!r}, {b!r}, {c!r}, k=3)"
        we.check_ranking(wv.analogy(a, b, c, k=3), ref_wv, we.analogy_scores(ref_wv, a, b, c), [a, b, c], 3, what,
                         float(targets["score_tolerance"]),
                         advice=lambda pairs: "3CosAdd: score(x) = cos(x, unit(b) - unit(a) + unit(c)), over every "
                                              "word but a, b and c")
