"""Shared fixtures for the rag checks (trusted side), given to checks as the ``rg`` fixture.

The corpus is the first ``articles`` articles of the wiki-sample asset's TEST split, cut into passages with
the reference's ``chunk_text`` (so the passage ids, and which passages answer a question, are known here).  Hidden
questions are cloze sentences made from the corpus: a sentence holding exactly one year, with the year
blanked out; its relevant passages are those that contain the whole sentence.  Every metric is computed
here from the ids and texts the student's code returns, never from numbers it reports.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from grader.testing import expect_type

YEAR = re.compile(r"\b(?:1[5-9]\d\d|20[0-2]\d)\b")
FOUR_DIGITS = re.compile(r"\b\d{4}\b")
BLANK = "____"
MAX_WORDS, OVERLAP = 50, 10  # the passages every check indexes (the stub's defaults)


def article_bodies(folder: Path, most: int, split: str = "test") -> list[tuple[str, str]]:
    """(title, text without heading lines) of the first ``most`` articles of a WikiText-layout split file."""
    out: list[tuple[str, list[str]]] = []
    for line in (folder / f"{split}.txt").read_text(encoding="utf-8").splitlines():
        title = re.fullmatch(r"\s*= ([^=].*?) =\s*", line)
        if title:
            out.append((title.group(1).strip(), []))
        elif out and line.strip() and not line.strip().startswith("="):
            out[-1][1].append(line)
    return [(title, "\n".join(lines)) for title, lines in out[:most]]


def cloze_questions(bodies: list[tuple[str, str]], passages: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Every sentence of 10-40 words with exactly one four-digit number, a year, inside at least one passage."""
    out = []
    for _, body in bodies:
        for sentence in re.split(r"(?<=[.!?])\s+", " ".join(body.split())):
            years = YEAR.findall(sentence)
            if len(years) != 1 or len(FOUR_DIGITS.findall(sentence)) != 1 or not 10 <= len(sentence.split()) <= 40:
                continue
            relevant = [p["id"] for p in passages if sentence in p["text"]]
            if relevant:
                out.append({"question": sentence.replace(years[0], BLANK, 1), "answer": years[0],
                            "relevant": relevant})
    return out


def expect_hits(value: Any, k: int, what: str) -> list[tuple[str, float]]:
    """Fail with advice unless ``value`` is a list of at most ``k`` (passage id, float score) pairs."""
    expect_type(value, (list, tuple), what)
    assert len(value) <= k, f"{what} returned {len(value)} hits for k={k}: return the top k only"
    hits = []
    for item in value:
        assert isinstance(item, (list, tuple)) and len(item) == 2, (
            f"{what} should return (passage_id, score) pairs, found {item!r}")
        pid, score = item
        expect_type(pid, str, f"a passage id in {what}")
        assert type(score) in (float, int), f"scores should be Python floats, found {type(score).__name__}"
        hits.append((pid, float(score)))
    return hits


def tokens(text: str) -> list[str]:
    """SQuAD-style normalisation (lower case, no punctuation, no articles), as tokens."""
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return [t for t in text.split() if t not in ("a", "an", "the")]


def contains(passage: str, answer: str) -> bool:
    """Whether the normalised answer is a run of whole tokens of the normalised passage."""
    want, words = tokens(answer), tokens(passage)
    return bool(want) and any(words[i:i + len(want)] == want for i in range(len(words) - len(want) + 1))


def template_ends(lm_dir: str) -> tuple[str, str]:
    """What the model's chat template puts before and after one user message (with the generation prompt)."""
    from transformers import AutoTokenizer

    marker = "\u0000MESSAGE\u0000"
    rendered = AutoTokenizer.from_pretrained(lm_dir).apply_chat_template(
        [{"role": "user", "content": marker}], tokenize=False, add_generation_prompt=True)
    before, after = rendered.split(marker)
    return before, after


def passages_in_order(prompt: str, texts: list[str], question: str) -> str | None:
    """What is wrong with where ``texts`` and ``question`` stand in ``prompt``; None when all is right."""
    positions = []
    for rank, text in enumerate(texts, start=1):
        at = prompt.find(text)
        if at < 0:
            return f"the passage ranked {rank} is not in the prompt (put each retrieved passage's text in, verbatim)"
        positions.append(at)
    if positions != sorted(positions):
        return "the passages are not in rank order: the best-scoring passage comes first"
    q = prompt.rfind(question)
    if q < 0:
        return "the question is not in the prompt (put it in verbatim)"
    if positions and q < positions[-1] + len(texts[-1]):
        return "the question comes before the passages: put the retrieved passages first, then the question"
    return None


_SHARED: dict[str, Any] = {}  # one runner grades one submission


def shared_object(student: Any, key: str, make: Any) -> Any:
    """A student object built once per grading (``make()``) and reached from later checks with their own budget.

    Indexing the corpus is the expensive part of two hidden checks; the core has no session-scoped student
    objects yet, so the handle is re-bound to each check's ``student`` proxy (and its time budget) here.
    """
    from grader.sandbox.remote import RemoteObject

    if key not in _SHARED:
        _SHARED[key] = make()
    obj = _SHARED[key]
    return RemoteObject(student, obj._handle, obj.type_name, key)


@pytest.fixture(scope="session")
def encoder_dir(assets: Any) -> str:
    return str(assets["encoder-small"])


@pytest.fixture(scope="session")
def lm_dir(assets: Any) -> str:
    return str(assets["causal-lm-small"])


@pytest.fixture(scope="session")
def bodies(assets: Any, targets: Mapping[str, Any]) -> list[tuple[str, str]]:
    return article_bodies(Path(assets["wiki-sample"]), int(targets["articles"]))


@pytest.fixture(scope="session")
def passages(reference: Any, bodies: list[tuple[str, str]]) -> list[dict[str, str]]:
    """The corpus every retriever indexes: {"id": "Title#i", "text": chunk}."""
    out = []
    for title, body in bodies:
        out.extend({"id": f"{title}#{i}", "text": text}
                   for i, text in enumerate(reference.chunk_text(body, MAX_WORDS, OVERLAP)))
    return out


@pytest.fixture(scope="session")
def questions(bodies: list[tuple[str, str]], passages: list[dict[str, str]], targets: Mapping[str, Any],
              seed: int) -> list[dict[str, Any]]:
    """Hidden cloze questions (a seeded sample), each with its id, answer and relevant passage ids."""
    pool = cloze_questions(bodies, passages)
    chosen = random.Random(seed).sample(pool, min(int(targets["questions"]), len(pool)))
    return [dict(q, id=f"q{i}") for i, q in enumerate(chosen)]


@pytest.fixture(scope="session")
def rg() -> SimpleNamespace:
    """Helpers for the rag checks."""
    return SimpleNamespace(BLANK=BLANK, expect_hits=expect_hits, contains=contains, template_ends=template_ends,
                           passages_in_order=passages_in_order, tokens=tokens,
                           shared_object=shared_object)
