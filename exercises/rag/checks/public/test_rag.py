"""Public checks of rag: chunking, embeddings, cosine search, BM25, retrieval metrics and the prompt's layout."""

from __future__ import annotations

import pytest
import torch

from grader.testing import StudentCodeError, assert_tensor_close, expect_type

CHUNK_CASES = [
    ("one two three four five six seven", 3, 1),
    ("one two three four five six seven eight", 3, 1),
    ("  Tabs\tand\nnew\n\nlines,\u00a0non-breaking\u2009thin\u3000ideographic  spaces  ", 4, 0),
    ("The \ufb01nal score was \uff12\uff10\uff11\uff16 to nil", 3, 2),
    ("short text", 50, 10),
    (" ".join(f"w{i}" for i in range(103)), 50, 10),
    ("", 50, 10),
    (" \n\t ", 5, 1),
]


def _raises(call, advice):
    with pytest.raises(StudentCodeError) as caught:
        call()
        pytest.fail(advice)
    assert caught.value.exc_type == "ValueError", f"{advice} (raised {caught.value.exc_type}, not ValueError)"


@pytest.mark.points(2)
def test_chunk_text(student, reference):
    """chunk_text cuts windows of max_words words, overlapping by overlap, on any whitespace, to the last word"""
    for text, max_words, overlap in CHUNK_CASES:
        got = student.chunk_text(text, max_words, overlap)
        want = reference.chunk_text(text, max_words, overlap)
        expect_type(got, list, f"chunk_text(..., {max_words}, {overlap})")
        if got != want:
            spaces = [c for c in text if c.isspace() and c != " "]
            hint = ("split on ANY whitespace (str.split() with no argument: tabs, newlines, non-breaking and other "
                    "Unicode spaces) and join each window with single spaces" if spaces else
                    f"windows start every max_words - overlap = {max_words - overlap} words and stop once one "
                    "reaches the last word; an empty text gives []")
            shown = text if len(text) < 60 else text[:57] + "..."
            raise AssertionError(f"{hint}\nchunk_text({shown!r}, {max_words}, {overlap}) returned {got!r:.300}, "
                                 f"expected {want!r:.300}")
    for args, why in (((0, 0), "max_words=0"), ((5, 5), "overlap=max_words"), ((5, -1), "overlap=-1")):
        _raises(lambda a=args: student.chunk_text("a b c", *a), f"chunk_text(..., {why}) should raise ValueError")


def _retriever(student, encoder_dir):
    return student.new("DenseRetriever", encoder_dir)


@pytest.mark.points(1)
def test_embeddings_normalised(student, reference, encoder_dir):
    """embed mean-pools the encoder over real tokens and L2-normalises each vector"""
    texts = ["Oscars", "The first ceremony was held in 1929 at the Hollywood Roosevelt Hotel.", "na\u00efve caf\u00e9",
             "Ray-finned fish make up about 99% of the known fish species."]
    got = _retriever(student, encoder_dir).embed(texts)
    want = reference.DenseRetriever(encoder_dir).embed(texts)
    expect_type(got, torch.Tensor, "embed(texts)")
    assert tuple(got.shape) == tuple(want.shape), f"embed gave shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    norms = got.double().norm(dim=-1)
    advice = "mean-pool the last hidden states over the attention mask, then divide each vector by its L2 norm"
    if not torch.allclose(norms, torch.ones_like(norms), atol=1e-4):
        cosine = torch.nn.functional.cosine_similarity(got.double(), want.double(), dim=-1)
        advice = ("the vectors are not unit length: L2-normalise them (F.normalize(v, dim=-1)) so that a dot "
                  "product is a cosine" if bool((cosine > 0.999).all()) else advice)
    assert_tensor_close(got, want, rtol=1e-4, atol=1e-4, name="embed(texts)", advice=advice)


def _expect_ranking(hits, trusted, k, what):
    scores = [s for _, s in hits]
    if scores != sorted(scores, reverse=True):
        hint = "ascending" if scores == sorted(scores) else "not sorted"
        raise AssertionError(f"{what}: the scores are {hint}: return the hits best first (descending similarity)")
    best = sorted(trusted.values(), reverse=True)[:k]
    assert len(hits) == min(k, len(trusted)), f"{what} returned {len(hits)} hits, expected {min(k, len(trusted))}"
    for pid, score in hits:
        assert pid in trusted, f"{what} returned the unknown passage id {pid!r}"
        assert abs(score - trusted[pid]) <= 1e-4, (
            f"{what}: the score of {pid} is {score:.5f}, but its cosine similarity is {trusted[pid]:.5f}: the "
            "score is the dot product of the two L2-normalised embeddings")
    assert all(abs(a - b) <= 1e-4 for a, b in zip(scores, best, strict=True)), (
        f"{what} did not return the {k} most similar passages (scores {scores[:3]}..., best {best[:3]}...)")


@pytest.mark.points(2)
def test_search_sorted_by_cosine(student, reference, rg, encoder_dir, passages):
    """search returns the top-k passages by cosine similarity, best first, with their cosine scores"""
    small = passages[:30]
    retriever = _retriever(student, encoder_dir)
    retriever.index(small)
    trusted = reference.DenseRetriever(encoder_dir)
    vectors = trusted.embed([p["text"] for p in small])
    queries = ["When was the first Academy Awards ceremony held?", "Who votes for the Oscars?", "statuette"]
    for query in queries:
        cosines = dict(zip((p["id"] for p in small), (vectors @ trusted.embed([query])[0]).tolist(), strict=True))
        for k in (5, 1, 100):
            what = f"search({query!r}, k={k})"
            _expect_ranking(rg.expect_hits(retriever.search(query, k), k, what), cosines, k, what)
    _raises(lambda: retriever.search("statuette", 0), "search(query, k=0) should raise ValueError")


BM25_DOCS = [
    {"id": "d0", "text": "The cat sat on the mat."},
    {"id": "d1", "text": "A dog and a cat: the dog barked, the CAT ran."},
    {"id": "d2", "text": "Dogs chase cats; cats chase mice. Mice run!"},
    {"id": "d3", "text": "An unrelated sentence about the stock market in 1929."},
    {"id": "d4", "text": "cat cat cat cat cat cat cat cat"},
    {"id": "d5", "text": "The Academy Awards were first presented in 1929; the cat was not invited to the ceremony."},
]


@pytest.mark.points(1)
def test_bm25_scores(student, reference, rg):
    """BM25Retriever scores with Okapi BM25 (idf = ln(1 + (N - n + 0.5)/(n + 0.5))), best first"""
    for k1, b in ((1.5, 0.75), (1.2, 0.3)):
        retriever = student.new("BM25Retriever", k1=k1, b=b)
        retriever.index(BM25_DOCS)
        trusted = reference.BM25Retriever(k1=k1, b=b)
        trusted.index(BM25_DOCS)
        for query in ("cat", "the dog cat", "Cat, cat! 1929", "zebra"):
            want = dict(trusted.search(query, len(BM25_DOCS)))
            what = f"BM25Retriever(k1={k1}, b={b}).search({query!r}, k=6)"
            hits = rg.expect_hits(retriever.search(query, 6), 6, what)
            scores = [s for _, s in hits]
            assert scores == sorted(scores, reverse=True), f"{what}: return the hits best first (descending score)"
            for pid, score in hits:
                assert pid in want, f"{what} returned the unknown id {pid!r}"
                assert abs(score - want[pid]) <= 1e-6 * max(1.0, abs(want[pid])), (
                    f"{what}: {pid} scored {score:.6f}, expected {want[pid]:.6f}: lower-case, tokens = "
                    r"re.findall(r'\w+', text), every query token (repeats too) adds idf * tf * (k1 + 1) / "
                    "(tf + k1 * (1 - b + b * len(doc) / avgdl))")
            assert len(hits) == len(BM25_DOCS), f"{what} returned {len(hits)} hits: k=6 asks for all 6 documents"


RUN = {"q1": ["d3", "d1", "d2"], "q2": ["q2", "d5", "d4", "d9"], "q3": ["d7"], "q4": [], "q6": ["d1"]}
QRELS = {"q1": ["d1", "d2", "d8"], "q2": ["d4"], "q3": ["d6"], "q4": ["d1"], "q5": ["d2"]}


@pytest.mark.points(2)
def test_retrieval_metrics(student, reference):
    """recall@k = |relevant in top k| / |relevant| and MRR@k, averaged over qrels; a query never retrieves itself"""
    for k in (1, 2, 3, 10):
        got = student.retrieval_metrics(RUN, QRELS, k)
        want = reference.retrieval_metrics(RUN, QRELS, k)
        expect_type(got, dict, f"retrieval_metrics(run, qrels, {k})")
        for name in ("recall", "mrr"):
            assert name in got, f"retrieval_metrics should return {{'recall': ..., 'mrr': ...}}, got {list(got)}"
            value = got[name]
            assert type(value) in (float, int), f"{name} should be a float, got {type(value).__name__}"
            assert abs(value - want[name]) < 1e-9, (
                f"{name}@{k} is {value:.4f}, expected {want[name]:.4f}: "
                + ("recall divides by the number of RELEVANT passages (not by k); " if name == "recall" else
                   "MRR@k is 1/rank of the first relevant passage within the top k, 0 if none; ")
                + "drop a retrieved id equal to the query id before cutting at k (BEIR's ignore_identical_ids), "
                "and average over every query in qrels (one without results scores 0)")
    _raises(lambda: student.retrieval_metrics(RUN, QRELS, 0), "retrieval_metrics(..., k=0) should raise ValueError")


@pytest.mark.points(1)
def test_prompt_layout(student, reference, rg, encoder_dir, lm_dir, passages):
    """the prompt is the chat template around the retrieved passages, in rank order, then the question"""
    small = passages[30:42]
    rag = student.new("RAG", encoder_dir, lm_dir, small, k=3)
    trusted = reference.DenseRetriever(encoder_dir)
    trusted.index(small)
    text = {p["id"]: p["text"] for p in small}
    before, after = rg.template_ends(lm_dir)
    for question in ("In what year did the ceremony move to ____?", "Who designed the Oscar statuette?"):
        hits = rg.expect_hits(rag.retrieve(question), 3, f"RAG.retrieve({question!r})")
        want = trusted.search(question, 3)
        assert len(hits) == len(want) and all(abs(s - w) <= 1e-4 for (_, s), (_, w) in zip(hits, want, strict=True)), (
            "RAG.retrieve should return the DenseRetriever's top k (k given to RAG) for the question")
        prompt = rag.prompt(question)
        expect_type(prompt, str, "RAG.prompt(question)")
        assert prompt.startswith(before) and prompt.endswith(after), (
            "render ONE user message with the model's chat template and the generation prompt: "
            "tokenizer.apply_chat_template([{'role': 'user', 'content': ...}], tokenize=False, "
            "add_generation_prompt=True)")
        problem = rg.passages_in_order(prompt, [text[pid] for pid, _ in hits], question)
        assert problem is None, problem
        extra = [pid for pid in text if pid not in dict(hits) and text[pid] in prompt]
        assert not extra, f"the prompt holds passages that were not retrieved ({extra[:2]}): only the top k go in"
