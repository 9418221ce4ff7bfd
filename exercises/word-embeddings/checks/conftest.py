"""Shared fixtures for the word-embeddings checks (trusted side).

The vectors come from the ``word-vectors`` course asset, read-only on both sides of the sandbox; the
student's WordVectors object stays in the sandbox and returns plain lists.  Neighbour and analogy
answers are judged with the reference's scores of EVERY word, so a near-tie (two words within the
tolerance) accepts either word instead of failing a correct solution.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import expect_type


@pytest.fixture(scope="session")
def vectors_path(assets: Any) -> str:
    return str(Path(assets["word-vectors"]) / "vectors.txt")


@pytest.fixture(scope="session")
def ref_wv(reference: Any, vectors_path: str) -> Any:
    """The reference WordVectors on the real vectors (trusted)."""
    return reference.WordVectors(vectors_path)


@pytest.fixture
def wv(student: Any, vectors_path: str) -> Any:
    """The student's WordVectors on the same file, kept in the sandbox."""
    return student.new("WordVectors", vectors_path)


def as_pairs(value: Any, what: str) -> list[tuple[str, float]]:
    """Validate a [(word, score), ...] answer."""
    expect_type(value, (list, tuple), what)
    pairs = []
    for item in value:
        if not (isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str)
                and type(item[1]) in (float, int)):
            raise AssertionError(f"{what} should hold (word, score) pairs of (str, float), found {item!r}: "
                                 "convert tensor scores with float(...)")
        pairs.append((item[0], float(item[1])))
    return pairs


def neighbour_scores(ref_wv: Any, word: str) -> torch.Tensor:
    return ref_wv.unit @ ref_wv.unit[ref_wv.index[ref_wv.key(word)]]


def analogy_scores(ref_wv: Any, a: str, b: str, c: str) -> torch.Tensor:
    unit, row = ref_wv.unit, lambda w: ref_wv.index[ref_wv.key(w)]
    target = unit[row(b)] - unit[row(a)] + unit[row(c)]
    return unit @ (target / target.norm())


def check_ranking(answer: Any, ref_wv: Any, scores: torch.Tensor, excluded: list[str], k: int, what: str,
                  tol: float, advice: Callable[[list[tuple[str, float]]], str | None] | None = None,
                  hidden: bool = False) -> None:
    """The student's top-k list is a correct top-k under the reference's scores of every word.

    Each word is in the vocabulary, not excluded, not repeated; its score equals the reference's score
    for that word; the list is sorted best first; and no word outside it beats its last word by more than
    ``tol`` (so near-ties accept either word).  ``hidden``: messages name no query or expected word.
    """
    pairs = as_pairs(answer, what)
    hint = advice(pairs) if advice else None
    prefix = f"{hint}\n" if hint else ""
    assert len(pairs) == k, f"{prefix}{what} returned {len(pairs)} pairs, expected k={k}"
    words = [w for w, _ in pairs]
    banned = {ref_wv.key(w) for w in excluded}
    clash = [w for w in words if w in banned]
    shown = "a query word" if hidden else repr(clash[0] if clash else "")
    assert not clash, (f"{prefix}{what} contains {shown}, one of the query words: leave the query words "
                       "out of the candidates (set their scores to -inf before topk)")
    assert len(set(words)) == len(words), f"{prefix}{what} repeats a word: {words}"
    unknown = [w for w in words if w not in ref_wv.index]
    assert not unknown, f"{prefix}{what} returned {unknown[0]!r}, which is not a word of the vectors file"
    for word, score in pairs:
        want = float(scores[ref_wv.index[word]])
        expected = f"off by {abs(score - want):.3g}" if hidden else f"expected {want:.6f}"
        assert abs(score - want) <= tol, (f"{prefix}{what}: the score of {word!r} is {score:.6f}, {expected} "
                                          "(cosine similarity of unit vectors)")
    for (w1, s1), (w2, s2) in itertools.pairwise(pairs):
        assert s1 >= s2 - tol, f"{prefix}{what} is not sorted best first: {w1!r} {s1:.4f} before {w2!r} {s2:.4f}"
    masked = scores.clone()
    masked[[ref_wv.index[w] for w in banned if w is not None]] = float("-inf")
    best = masked.topk(k).values
    worst_given = min(s for _, s in pairs)
    top = "" if hidden else f": the reference's top {k} are {[ref_wv.words[i] for i in masked.topk(k).indices]}"
    assert worst_given >= float(best[-1]) - tol, f"{prefix}{what} misses words with higher scores{top}"


def analogy_questions(path: Path, ref_wv: Any, n: int, seed: int) -> list[list[str]]:
    """``n`` questions of the word2vec analogy set whose four words are all in the vocabulary."""
    usable = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(":") or not line.strip():
            continue
        words = line.lower().split()
        if len(words) == 4 and len(set(words)) == 4 and all(w in ref_wv.index for w in words):
            usable.append(words)
    return random.Random(seed).sample(usable, min(n, len(usable)))


def similarity_pairs(path: Path, ref_wv: Any) -> list[tuple[str, str, float]]:
    pairs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        w1, w2, human = line.split("\t")[:3]
        if w1.lower() in ref_wv.index and w2.lower() in ref_wv.index:
            pairs.append((w1.lower(), w2.lower(), float(human)))
    return pairs


def spearman(x: list[float], y: list[float]) -> float:
    rx = torch.tensor(x).argsort().argsort().double()
    ry = torch.tensor(y).argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([rx, ry]))[0, 1])


#: (query, the word listed before it with exactly the same vector) in :func:`duplicates_file`
DUPLICATES = (("colour", "color"), ("gray", "grey"), ("theatre", "theater"), ("centre", "center"),
              ("honour", "honor"), ("metre", "meter"))


def duplicates_file(seed: int = 7) -> str:
    """A small vectors file in which some words' nearest neighbour is NOT themselves: an earlier word has exactly
    the same vector (real files hold such rows), so the two tie at cosine 1 and the other word may rank first."""
    g = torch.Generator().manual_seed(seed)
    words = [f"word{i}" for i in range(24)]
    rows = {w: torch.randn(8, generator=g) for w in words}
    lines = []
    for query, twin in DUPLICATES:
        rows[twin] = rows[query] = torch.randn(8, generator=g)
        words += [twin, f"filler{len(lines)}", query]
        rows[f"filler{len(lines)}"] = torch.randn(8, generator=g)
        lines.append(query)
    return "".join(w + " " + " ".join(f"{float(v):.6f}" for v in rows[w]) + "\n" for w in words)


@pytest.fixture(scope="session")
def we() -> SimpleNamespace:
    """Helpers for the word-embeddings checks."""
    return SimpleNamespace(as_pairs=as_pairs, neighbour_scores=neighbour_scores, analogy_scores=analogy_scores,
                           check_ranking=check_ranking, analogy_questions=analogy_questions,
                           duplicates_file=duplicates_file, DUPLICATES=DUPLICATES,
                           similarity_pairs=similarity_pairs, spearman=spearman)
