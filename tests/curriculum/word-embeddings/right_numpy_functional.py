# right: numpy loading, F.cosine_similarity, and a full argsort instead of topk
"""Word vectors written with numpy and torch.nn.functional, a full sort instead of topk.

Loads with numpy (str.split, np.asarray float32, torch.from_numpy), takes the cosine from
torch.nn.functional.cosine_similarity, and ranks with a full argsort in Python instead of topk.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def load_vectors(path: str, limit: int | None = None) -> tuple[list[str], torch.Tensor]:
    words = []
    rows = []
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            if limit is not None and i >= limit:
                break
            word, *values = line.split()
            words.append(word)
            rows.append(np.asarray(values, dtype=np.float32))
    return words, torch.from_numpy(np.stack(rows)) if rows else torch.zeros(0, 0)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a, b = torch.broadcast_tensors(a, b)
    return F.cosine_similarity(a, b, dim=-1, eps=1e-8)


class WordVectors:
    def __init__(self, path: str, limit: int | None = None) -> None:
        self.words, self.vectors = load_vectors(path, limit)
        self.row = {w: i for i, w in enumerate(self.words)}

    def _find(self, word: str) -> int | None:
        if word in self.row:
            return self.row[word]
        return self.row.get(word.lower())

    def _get(self, word: str) -> int:
        i = self._find(word)
        if i is None:
            raise KeyError(word)
        return i

    def vector(self, word: str) -> torch.Tensor:
        return self.vectors[self._get(word)].clone()

    def lookup(self, words: list[str]) -> tuple[torch.Tensor, list[bool]]:
        rows = [self._find(w) for w in words]
        matrix = torch.stack([self.vectors[i] if i is not None else torch.zeros(self.vectors.shape[1])
                              for i in rows]) if rows else torch.zeros(0, self.vectors.shape[1])
        return matrix, [i is not None for i in rows]

    def similarity(self, word1: str, word2: str) -> float:
        return cosine_similarity(self.vectors[self._get(word1)], self.vectors[self._get(word2)]).item()

    def _ranked(self, target: torch.Tensor, skip: set[int], k: int) -> list[tuple[str, float]]:
        scores = cosine_similarity(self.vectors, target.unsqueeze(0))
        out = []
        for i in torch.argsort(scores, descending=True).tolist():
            if i in skip:
                continue
            out.append((self.words[i], scores[i].item()))
            if len(out) == k:
                break
        return out

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        i = self._get(word)
        return self._ranked(self.vectors[i], {i}, k)

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        ia, ib, ic = self._get(a), self._get(b), self._get(c)
        unit = F.normalize(self.vectors[[ia, ib, ic]], dim=-1, eps=1e-8)
        return self._ranked(unit[1] - unit[0] + unit[2], {ia, ib, ic}, k)
