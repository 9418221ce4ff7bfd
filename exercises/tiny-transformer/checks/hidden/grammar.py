"""The toy next-word task: a small probabilistic grammar whose true next-token probabilities are known.

Sentences such as "some happy cats chase a dog and the birds ." are drawn from the grammar below; the
generator records log p(token | everything before it) for every token it emits, so the trusted side knows
the entropy floor of any stream: no model can beat it in expectation, and a loss well below it means the
targets leaked into the inputs (unshifted targets, attention to the future).
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter

ADJ = ("big", "small", "red", "old", "happy")
NOUN_SG = ("cat", "dog", "bird", "fish", "child")
NOUN_PL = ("cats", "dogs", "birds", "fishes", "children")
VERB_SG = ("sees", "likes", "chases", "finds")
VERB_PL = ("see", "like", "chase", "find")
VOCAB = (".", "the", "a", "some", "and", *ADJ, *NOUN_SG, *NOUN_PL, *VERB_SG, *VERB_PL)
ID = {word: i for i, word in enumerate(VOCAB)}
P_DET = (("the", 0.5), ("a", 0.3), ("some", 0.2))
P_ADJ = 0.4
P_AND = 0.25


def _choose(rng: random.Random, weighted: tuple[tuple[str, float], ...]) -> tuple[str, float]:
    r, total = rng.random(), 0.0
    for word, p in weighted:
        total += p
        if r < total:
            return word, math.log(p)
    return weighted[-1][0], math.log(weighted[-1][1])


def _noun_phrase(rng: random.Random, out: list[tuple[str, float]]) -> bool:
    """Determiner, optional adjective, noun (its number follows the determiner); True when plural."""
    det, logp = _choose(rng, P_DET)
    out.append((det, logp))
    nouns = {"a": NOUN_SG, "some": NOUN_PL}.get(det, NOUN_SG + NOUN_PL)
    if rng.random() < P_ADJ:
        out.append((rng.choice(ADJ), math.log(P_ADJ / len(ADJ))))
        noun = rng.choice(nouns)
        out.append((noun, math.log(1 / len(nouns))))
    else:
        noun = rng.choice(nouns)
        out.append((noun, math.log((1 - P_ADJ) / len(nouns))))
    return noun in NOUN_PL


def _sentence(rng: random.Random, out: list[tuple[str, float]]) -> None:
    """Subject, a verb agreeing with it in number, one or more objects joined by "and", then "."."""
    verbs = VERB_PL if _noun_phrase(rng, out) else VERB_SG
    out.append((rng.choice(verbs), math.log(1 / len(verbs))))
    _noun_phrase(rng, out)
    while True:
        word, logp = _choose(rng, ((".", 1 - P_AND), ("and", P_AND)))
        out.append((word, logp))
        if word == ".":
            return
        _noun_phrase(rng, out)


def stream(n_tokens: int, seed: int) -> tuple[list[int], list[float]]:
    """``n_tokens`` token ids of consecutive sentences (starting after a "."), and each token's true log p."""
    rng = random.Random(seed)
    out: list[tuple[str, float]] = [(".", 0.0)]
    while len(out) < n_tokens:
        _sentence(rng, out)
    return [ID[w] for w, _ in out[:n_tokens]], [lp for _, lp in out[:n_tokens]]


def ngram_losses(train: list[int], held_out: list[int]) -> dict[str, float]:
    """Cross-entropy (nats per token) on ``held_out`` of add-one unigram and bigram models fit on ``train``."""
    vocab = len(VOCAB)
    uni = Counter(train)
    pairs = Counter(itertools.pairwise(train))
    n = len(train)
    unigram = -sum(math.log((uni[t] + 1) / (n + vocab)) for t in held_out[1:]) / (len(held_out) - 1)
    bigram = -sum(math.log((pairs[(a, b)] + 1) / (uni[a] + vocab)) for a, b in itertools.pairwise(held_out))
    return {"unigram": unigram, "bigram": bigram / (len(held_out) - 1)}


def words(ids: list[int]) -> str:
    return " ".join(VOCAB[i] if 0 <= i < len(VOCAB) else f"<{i}>" for i in ids)
