"""Word embeddings: look up pre-trained word vectors, compare them, find neighbours and solve analogies.

Pre-trained vectors (word2vec, Mikolov et al. 2013, https://arxiv.org/abs/1301.3781; GloVe, Pennington et
al. 2014, https://nlp.stanford.edu/pubs/glove.pdf) give every word of a vocabulary a dense vector, such that
words used in similar contexts get similar vectors. The grader hands you a real set of vectors, trained
with word2vec on Wikipedia articles, news and Shakespeare (about 15,000 words, 100 dimensions; with an
online course configuration, GloVe's 400,000 x 100).

FILE FORMAT (GloVe's text format): UTF-8, one word per line, most frequent word first. Each line is the word
followed by its values, separated by single spaces, with no header line:

    the -0.094893 0.052870 0.025862 ...
    of 0.113462 -0.262180 ...

Words are lower case. Parse the values as float32.

COSINE SIMILARITY: cos(a, b) = (a . b) / (|a| |b|), along the last axis, with each norm clamped to at least
1e-8 so that a zero vector gives 0 (never NaN):  (a * b).sum(-1) / (a.norm(dim=-1).clamp_min(1e-8) *
b.norm(dim=-1).clamp_min(1e-8)). Inputs broadcast like any elementwise operation.

OUT-OF-VOCABULARY (OOV) WORDS: a word is looked up as it is, and, if it is not in the vocabulary, in lower
case ("Paris" -> "paris"). A word found neither way is OOV: ``vector``, ``similarity``, ``most_similar``
and ``analogy`` raise KeyError for it; ``lookup`` gives it a row of zeros and reports it as not found.

NEAREST NEIGHBOURS: the k words with the highest cosine similarity to the query word, most similar first,
never the query word itself.

ANALOGIES, 3CosAdd (Mikolov et al. 2013, https://aclanthology.org/N13-1090/; Levy & Goldberg 2014,
https://aclanthology.org/W14-1618/): "a is to b as c is to ?" (man : king :: woman : ?). With unit-length
vectors â, b̂, ĉ (each vector divided by its norm), the answer is the word x, other than a, b and c, whose
vector is closest in cosine to  b̂ - â + ĉ.  Its score is cos(x, b̂ - â + ĉ). (This is gensim's
most_similar(positive=[b, c], negative=[a]).)

Scores are compared with the reference within 1e-4; word lists must contain the same words (where two
words tie within 1e-4, either is accepted). Only plain data crosses the grader's sandbox boundary:
return tensors, floats, strings, lists/tuples and bools -- no numpy arrays or numpy floats.
"""

from __future__ import annotations

import torch


def load_vectors(path: str, limit: int | None = None) -> tuple[list[str], torch.Tensor]:
    """Read a vectors file (format above).

    Args:
        path: the vectors file.
        limit: if given, read only the first ``limit`` words (the most frequent ones).

    Returns:
        (words, vectors): the words in file order, and a float32 tensor (len(words), dim) whose row i is the
        vector of words[i].
    """
    raise NotImplementedError


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity along the last axis; a and b broadcast; zero vectors give 0.

    Example: a (4, 1, 100) and b (1, 3, 100) give a (4, 3) tensor.
    """
    raise NotImplementedError


class WordVectors:
    """Pre-trained vectors with lookups, similarity, neighbours and analogies.

    The checks call it like this:
        wv = WordVectors(path)            # or WordVectors(path, limit=5000)
        wv.vector("king"), wv.lookup(["the", "Zzyzx"]), wv.similarity("cat", "dog"),
        wv.most_similar("king", k=10), wv.analogy("man", "king", "woman", k=1)
    """

    def __init__(self, path: str, limit: int | None = None) -> None:
        """Load the vectors (with load_vectors) and prepare whatever lookups need (a word -> row dict...)."""
        raise NotImplementedError

    def vector(self, word: str) -> torch.Tensor:
        """The vector of ``word`` (lower-case fallback), float32 (dim,). Raises KeyError when it is OOV."""
        raise NotImplementedError

    def lookup(self, words: list[str]) -> tuple[torch.Tensor, list[bool]]:
        """An embedding matrix for a list of words, e.g. to initialise nn.Embedding for another vocabulary.

        Returns:
            (matrix, found): matrix is float32 (len(words), dim) with row i the vector of words[i], or zeros
            when words[i] is OOV; found[i] tells whether words[i] was found. An empty list gives (0, dim).
        """
        raise NotImplementedError

    def similarity(self, word1: str, word2: str) -> float:
        """Cosine similarity of two words' vectors, as a Python float. KeyError for an OOV word."""
        raise NotImplementedError

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        """The k nearest neighbours of ``word`` by cosine similarity: [(word, score), ...], best first.

        The query word itself is never in the list. KeyError when ``word`` is OOV.
        """
        raise NotImplementedError

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        """3CosAdd: the k best answers x to "a is to b as c is to x", [(word, score), ...], best first.

        Candidates exclude a, b and c themselves. KeyError when a, b or c is OOV.
        """
        raise NotImplementedError
