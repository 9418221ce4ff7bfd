"""Shared fixtures for the tokenization checks (trusted side).

The corpus lives in ``checks/data/corpus.txt`` and is read here, in the trusted process; student
functions receive it as a plain ``list[str]``.  Subword tokenizers stay in the sandbox as remote
objects whose methods return plain data; ``as_encoding`` validates that data before any check uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from grader.testing import expect_type

SPECIALS = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
SUBWORD_VOCAB_SIZE = 400


@pytest.fixture
def corpus(exercise_dir: Path) -> list[str]:
    """The training corpus: one sentence (or title) per line, blank lines dropped."""
    text = (Path(exercise_dir) / "checks" / "data" / "corpus.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


@pytest.fixture
def alphabet(corpus: list[str]) -> set[str]:
    """Every character of the corpus (a BPE tokenizer trained on it knows exactly these)."""
    return set("".join(corpus))


@pytest.fixture
def subword(student: Any, corpus: list[str]) -> Any:
    """The student's SubwordTokenizer trained on the corpus, kept in the sandbox."""
    return student.new("SubwordTokenizer", list(corpus), vocab_size=SUBWORD_VOCAB_SIZE, min_frequency=2)


def _as_encoding(value: Any, what: str) -> tuple[list[int], list[str], list[tuple[int, int]]]:
    expect_type(value, dict, what)
    for key in ("ids", "tokens", "offsets"):
        if key not in value:
            raise AssertionError(f"{what} should be a dict with keys 'ids', 'tokens' and 'offsets'; "
                                 f"'{key}' is missing (got keys {sorted(map(str, value))})")
    ids, tokens, offsets = value["ids"], value["tokens"], value["offsets"]
    expect_type(ids, (list, tuple), f"{what}['ids']")
    expect_type(tokens, (list, tuple), f"{what}['tokens']")
    expect_type(offsets, (list, tuple), f"{what}['offsets']")
    if not len(ids) == len(tokens) == len(offsets):
        raise AssertionError(f"{what}: 'ids', 'tokens' and 'offsets' should have one entry per token, got "
                             f"{len(ids)}, {len(tokens)} and {len(offsets)} entries")
    for i in ids:
        if type(i) is not int:
            raise AssertionError(f"{what}['ids'] should hold ints, found {type(i).__name__}: convert Encoding.ids "
                                 "with list()")
    for t in tokens:
        expect_type(t, str, f"each token in {what}['tokens']")
    pairs = []
    for o in offsets:
        if not (isinstance(o, (list, tuple)) and len(o) == 2 and all(type(x) is int for x in o)):
            raise AssertionError(f"{what}['offsets'] should hold (start, end) pairs of ints, found {o!r}")
        pairs.append((o[0], o[1]))
    return list(ids), list(tokens), pairs


@pytest.fixture(scope="session")
def as_encoding() -> Any:
    """Validate what SubwordTokenizer.encode returned: (ids, tokens, offsets) as plain lists."""
    return _as_encoding


def _as_word_tokens(value: Any, what: str) -> list[tuple[str, int, int]]:
    expect_type(value, (list, tuple), what)
    out = []
    for item in value:
        if not (isinstance(item, (list, tuple)) and len(item) == 3 and isinstance(item[0], str)
                and type(item[1]) is int and type(item[2]) is int):
            raise AssertionError(f"{what} should hold (token, start, end) triples of (str, int, int), found {item!r}")
        out.append((item[0], item[1], item[2]))
    return out


@pytest.fixture(scope="session")
def as_word_tokens() -> Any:
    """Validate what pre_tokenize returned: a list of (token, start, end) triples."""
    return _as_word_tokens


def _as_ids(value: Any, what: str) -> list[int]:
    expect_type(value, (list, tuple), what)
    for i in value:
        if type(i) is not int:
            raise AssertionError(f"{what} should be a list of ints, found {type(i).__name__} {i!r}")
    return list(value)


@pytest.fixture(scope="session")
def as_ids() -> Any:
    """Validate a list of token ids."""
    return _as_ids


def _as_vocab(value: Any, what: str) -> dict[str, int]:
    expect_type(value, dict, what)
    for k, v in value.items():
        if not isinstance(k, str) or type(v) is not int:
            raise AssertionError(f"{what} should map token strings to int ids, found {k!r}: {v!r}")
    return dict(value)


@pytest.fixture(scope="session")
def as_vocab() -> Any:
    """Validate a vocabulary: a dict token -> id."""
    return _as_vocab


def first_difference(got: list[Any], want: list[Any]) -> str:
    """Describe where two sequences first differ, for a message a student can act on."""
    for i, (g, w) in enumerate(zip(got, want, strict=False)):
        if g != w:
            return f"at position {i}: got {g!r}, expected {w!r}"
    return f"lengths differ: got {len(got)} items, expected {len(want)}"


def _upstream(student: Any, reference: Any, texts: list[str], what: str) -> str | None:
    """Name the first text on which the student's pre_tokenize already differs, or None.

    build_vocab, encode_words and decode_words all build on pre_tokenize: when it is wrong, their own
    figures (vocabulary sizes, ids) point at the wrong function.
    """
    for text in texts:
        shown = text if len(text) <= 60 else text[:57] + "..."
        try:
            got = _as_word_tokens(student.pre_tokenize(text), f"pre_tokenize({shown!r})")
        except AssertionError as exc:
            return f"fix pre_tokenize first: {what} builds on it, and it is already wrong: {exc}"
        want = reference.pre_tokenize(text)
        if got != want:
            return (f"fix pre_tokenize first (see test_pre_tokenize_matches_reference): {what} builds on it, and "
                    f"pre_tokenize({shown!r}) is already wrong ({first_difference(got, want)})")
    return None


@pytest.fixture(scope="session")
def upstream(reference: Any) -> Any:
    """upstream(student, texts, what): the pre_tokenize problem behind a later step's failure, or None."""
    return lambda student, texts, what: _upstream(student, reference, list(texts), what)


@pytest.fixture(scope="session")
def diff() -> Any:
    """first_difference(got, want) as a fixture (check files cannot import conftest)."""
    return first_difference
