"""Retrieval-augmented generation (RAG) over an offline Wikipedia sample.

RAG (Lewis et al. 2020, https://arxiv.org/abs/2005.11401) answers a question in two stages: a RETRIEVER
finds the passages of a corpus most related to the question, and a language model answers from a prompt
that puts those passages BEFORE the question. You build each piece and the grader measures them separately:

1. CHUNKING. ``chunk_text`` cuts an article into overlapping windows of words: windows of ``max_words``
   words starting every ``max_words - overlap`` words (0, step, 2*step, ...), the last one reaching the
   last word. Words are what ``str.split()`` (no argument) returns: it splits on ANY whitespace, including
   tabs, newlines and Unicode spaces such as the non-breaking space U+00A0 (frequent in Wikipedia text).
   Each chunk is its words joined by single spaces; the words themselves are kept as they are (no case
   folding, no Unicode normalisation). An empty or all-space text has no chunks.

2. DENSE RETRIEVAL with the packaged sentence encoder (all-MiniLM-L6-v2, Reimers & Gurevych 2019,
   https://arxiv.org/abs/1908.10084; https://www.sbert.net/): load ``AutoTokenizer`` and ``AutoModel`` from
   ``model_dir``; a text's embedding is the MEAN of the last hidden states over its real tokens (attention
   mask 1; padding=True, truncation=True, max_length=256), then L2-NORMALISED (unit length). The score of a
   passage for a query is their COSINE similarity, which for unit vectors is the dot product. ``search``
   returns the k best passages, best first (descending score), as (passage id, score) pairs.

3. BM25, the classic sparse retriever (Robertson & Zaragoza 2009, "The Probabilistic Relevance Framework:
   BM25 and Beyond"), accepted here as a second retriever. Tokens: ``re.findall(r"\\w+", text.lower())``.
   For a query q and a document d of |d| tokens (avgdl = the mean length over the indexed documents, N of
   them, n(t) of which contain token t):

       score(q, d) = sum over the query's tokens t, repeats included, of
                     idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))
       idf(t) = ln(1 + (N - n(t) + 0.5) / (n(t) + 0.5))            (Lucene's idf: never negative)

   with tf(t, d) the count of t in d; a token in no document adds nothing. Defaults k1 = 1.5, b = 0.75.

4. EVALUATION, the standard way (BEIR, Thakur et al. 2021, https://arxiv.org/abs/2104.08663, whose
   ``EvaluateRetrieval.evaluate`` has ``ignore_identical_ids=True``): for each query of ``qrels`` (query id ->
   its relevant passage ids), drop from its ranked results any passage whose id equals the query id, keep
   the first k, then

       recall@k = |relevant among the top k| / |relevant|          (divided by the RELEVANT count, not by k)
       MRR@k    = 1 / (rank of the first relevant passage in the top k), 0 when none is there

   both averaged over ALL queries of qrels (a query without results scores 0).

5. GENERATION with the packaged instruct model (SmolLM2-135M-Instruct, a Llama): one user message holding an
   instruction, the retrieved passages IN RANK ORDER (best first) and then the question; rendered with the
   model's own chat template and its generation prompt,
   ``tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)`` (no system
   message of yours: the template adds its own), tokenised WITHOUT adding special tokens again
   (``add_special_tokens=False``), and answered GREEDILY (``do_sample=False``) with ``max_new_tokens`` new
   tokens. Nothing but the instruction, the retrieved passages and the question goes into the prompt. The
   wording of the instruction and how you mark the passages ("[1] ...", "Passage 1: ...") are yours.

THE QUESTIONS the grader asks are cloze questions made from the corpus: a Wikipedia sentence holding
exactly one year, with the year replaced by ``____`` ("The ceremony moved to ____ ..."), so the passage that
answers each one is known. The answer is therefore a year: ``parse_answer`` takes the FIRST four-digit number
the model writes (regex ``\\b\\d{4}\\b``), or, when it writes none, the first line of its output, stripped.
A GROUNDED answer is one that appears, as whole words, in a passage the model was given.

WHAT THE CHECKS MEASURE. Chunks and metrics exactly; embeddings within 1e-4 of the reference; scores within
1e-4 of the cosine they recompute; BM25 scores within 1e-6. On hidden questions over the corpus (the first
two articles of the wiki-sample TEST split, cut with chunk_text(text, 50, 10)), the cpu profile asks for
dense recall@3 >= 0.8 and MRR@5 >= 0.7, BM25 recall@3 >= 0.8 and MRR@5 >= 0.7, and, over 20 questions answered
with k = 1 passage (the best one; the 135M model too often picks the wrong year out of three passages), at
least 50% of answers grounded in the passage given (the reference: about 80%; the same model without the
passage: about 35%). A few answers are regenerated from the prompt you return to make
sure they are the model's. Only plain data crosses the sandbox boundary (str, float, list, dict, tensors).

SPEED. Graders run several jobs side by side on a few cores; torch's worker threads then wait on each other
and a model runs many times slower. ``torch.set_num_threads(1)`` at import avoids that (the reference does).
"""

from __future__ import annotations

from typing import Any

import torch


def chunk_text(text: str, max_words: int = 50, overlap: int = 10) -> list[str]:
    """Overlapping word windows of ``text`` (see 1. in the module docstring).

    Example: chunk_text("a b c d e f g", 3, 1) == ["a b c", "c d e", "e f g"].

    Raises:
        ValueError: ``max_words < 1``, or ``overlap`` outside ``0 <= overlap < max_words``.
    """
    raise NotImplementedError


def retrieval_metrics(run: dict[str, list[str]], qrels: dict[str, list[str]], k: int) -> dict[str, float]:
    """Mean recall@k and MRR@k over the queries of ``qrels`` (see 4.): ``{"recall": float, "mrr": float}``.

    Args:
        run: query id -> passage ids, best first (as search returned them).
        qrels: query id -> ids of its relevant passages (at least one each).

    Raises:
        ValueError: ``k < 1``, ``qrels`` is empty, or a query of qrels has no relevant passage.
    """
    raise NotImplementedError


class DenseRetriever:
    """Mean-pooled, L2-normalised sentence embeddings; cosine search.

    The checks call it like this:
        r = DenseRetriever(model_dir); r.embed(texts)
        r.index([{"id": "Adobe#0", "text": "..."}, ...]); r.search("a question", k=5)
    """

    def __init__(self, model_dir: str, batch_size: int = 32, max_length: int = 256) -> None:
        """Load the tokenizer and the encoder (eval mode) from ``model_dir``."""
        raise NotImplementedError

    def embed(self, texts: list[str]) -> torch.Tensor:
        """(len(texts), hidden_size) float32 unit vectors; process long lists in batches of batch_size."""
        raise NotImplementedError

    def index(self, passages: list[dict[str, str]]) -> None:
        """Embed and keep every passage ({"id": str, "text": str}); a new call replaces the index."""
        raise NotImplementedError

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``min(k, N)`` passages most similar to ``query``: (id, cosine) pairs, best first.

        Raises:
            ValueError: ``k < 1``, or nothing has been indexed.
        """
        raise NotImplementedError


class BM25Retriever:
    """Okapi BM25 over the indexed passages (see 3.); the same index/search interface as DenseRetriever."""

    def __init__(self, k1: float = 1.5, b: float = 0.75) -> None:
        raise NotImplementedError

    def index(self, passages: list[dict[str, str]]) -> None:
        """Tokenise and count every passage ({"id": str, "text": str}); a new call replaces the index."""
        raise NotImplementedError

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``min(k, N)`` best passages by BM25 score: (id, score) pairs, best first (ties in any order).

        Raises:
            ValueError: ``k < 1``, or nothing has been indexed.
        """
        raise NotImplementedError


def parse_answer(output: str) -> str:
    """The first four-digit number in ``output``; when there is none, its first line, stripped ("" if empty)."""
    raise NotImplementedError


class RAG:
    """Dense retrieval, a prompt of the retrieved passages, a greedy answer from the instruct model.

    The checks call it like this:
        rag = RAG(encoder_dir, lm_dir, passages, k=3, max_new_tokens=8)
        rag.search(question, 5)      # [(id, score), ...]: its DenseRetriever's top 5
        rag.retrieve(question)       # [(id, score), ...]: the DenseRetriever's top k
        rag.prompt(question)         # the rendered prompt (str)
        rag.answer(question)         # {"answer": str, "raw": str, "passages": [ids], "prompt": str}
    """

    def __init__(self, encoder_dir: str, lm_dir: str, passages: list[dict[str, str]], k: int = 3,
                 max_new_tokens: int = 12) -> None:
        """Index ``passages`` with a DenseRetriever; load the causal LM and its tokenizer from ``lm_dir``."""
        raise NotImplementedError

    def search(self, question: str, k: int) -> list[tuple[str, float]]:
        """Its DenseRetriever's search: the top ``k`` passages for ``question`` (any k, not only RAG's)."""
        raise NotImplementedError

    def retrieve(self, question: str) -> list[tuple[str, float]]:
        """The top k passages for ``question`` (RAG's own k), as DenseRetriever.search returns them."""
        raise NotImplementedError

    def prompt(self, question: str) -> str:
        """The chat-template prompt for ``question``: instruction, retrieved passages best first, question."""
        raise NotImplementedError

    def answer(self, question: str) -> dict[str, Any]:
        """Retrieve, build the prompt, generate greedily; return the parsed answer with what produced it.

        Returns:
            {"answer": parse_answer(raw), "raw": the generated text (new tokens only, special tokens
            skipped), "passages": the ids of the passages in the prompt, best first, "prompt": the prompt}.
        """
        raise NotImplementedError
