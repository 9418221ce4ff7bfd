"""Reference: pre-trained word vectors -- loading, cosine similarity, neighbours, 3CosAdd analogies, OOV."""

from __future__ import annotations

import torch

EPS = 1e-8


def load_vectors(path: str, limit: int | None = None) -> tuple[list[str], torch.Tensor]:
    words: list[str] = []
    rows: list[list[float]] = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            if limit is not None and len(words) >= limit:
                break
            parts = line.rstrip("\n").split(" ")
            if len(parts) < 2:
                continue
            words.append(parts[0])
            rows.append([float(v) for v in parts[1:]])
    return words, torch.tensor(rows, dtype=torch.float32)


def cosine_similarity(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    a_norm = a.norm(dim=-1).clamp_min(EPS)
    b_norm = b.norm(dim=-1).clamp_min(EPS)
    return (a * b).sum(dim=-1) / (a_norm * b_norm)


class WordVectors:
    def __init__(self, path: str, limit: int | None = None) -> None:
        self.words, self.vectors = load_vectors(path, limit)
        self.index = {w: i for i, w in enumerate(self.words)}
        self.unit = self.vectors / self.vectors.norm(dim=1, keepdim=True).clamp_min(EPS)

    def __len__(self) -> int:
        return len(self.words)

    def key(self, word: str) -> str | None:
        if word in self.index:
            return word
        return word.lower() if word.lower() in self.index else None

    def _row(self, word: str) -> int:
        key = self.key(word)
        if key is None:
            raise KeyError(f"{word!r} is not in the vocabulary")
        return self.index[key]

    def vector(self, word: str) -> torch.Tensor:
        return self.vectors[self._row(word)].clone()

    def lookup(self, words: list[str]) -> tuple[torch.Tensor, list[bool]]:
        out = torch.zeros(len(words), self.vectors.shape[1])
        found = []
        for i, word in enumerate(words):
            key = self.key(word)
            found.append(key is not None)
            if key is not None:
                out[i] = self.vectors[self.index[key]]
        return out, found

    def similarity(self, word1: str, word2: str) -> float:
        return float(self.unit[self._row(word1)] @ self.unit[self._row(word2)])

    def _top(self, scores: torch.Tensor, exclude: list[int], k: int) -> list[tuple[str, float]]:
        scores = scores.clone()
        scores[exclude] = float("-inf")
        values, indices = scores.topk(min(k, len(self.words) - len(set(exclude))))
        return [(self.words[i], float(v)) for v, i in zip(values.tolist(), indices.tolist(), strict=True)]

    def most_similar(self, word: str, k: int = 10) -> list[tuple[str, float]]:
        row = self._row(word)
        return self._top(self.unit @ self.unit[row], [row], k)

    def analogy(self, a: str, b: str, c: str, k: int = 1) -> list[tuple[str, float]]:
        ra, rb, rc = self._row(a), self._row(b), self._row(c)
        target = self.unit[rb] - self.unit[ra] + self.unit[rc]
        scores = self.unit @ (target / target.norm().clamp_min(EPS))
        return self._top(scores, [ra, rb, rc], k)
