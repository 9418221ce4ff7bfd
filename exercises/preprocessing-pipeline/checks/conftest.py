"""Shared fixtures for the preprocessing-pipeline checks (trusted side).

The tokenizer is the course asset ``encoder-small`` (a BERT WordPiece tokenizer: [PAD] = 0,
[CLS] = 101, [SEP] = 102, no end-of-sequence token); both sides read it from the same read-only
folder.  Student results arrive as plain data and are validated here before any check uses them.
When a cleaned text differs from the reference, ``hidden/mistakes.py`` (left out of student packs,
since it recomputes the rules) names the classic mistake it matches.
"""

from __future__ import annotations

import os
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

BATCH_ADVICE = {
    "input_ids": "input_ids are the features' ids, right-padded with pad_token_id to the batch width (the longest "
                 "input, or max_length; rounded UP to pad_to_multiple_of)",
    "attention_mask": "attention_mask is 1 on each example's own positions and 0 on padding: build it from the "
                      "lengths, never by comparing ids with pad_token_id",
    "labels": "labels are right-padded with -100 (never with pad_token_id) to their own width: the longest labels, "
              "or max_length; rounded UP to pad_to_multiple_of",
}


try:  # hidden/mistakes.py recomputes the cleaning rules, so student packs leave it out
    from hidden import mistakes as MISTAKES
except ImportError:
    MISTAKES = None


def excerpt(text: str, at: int, width: int = 24) -> str:
    """``repr`` of the part of ``text`` around index ``at``."""
    start = max(0, at - width)
    return ("..." if start else "") + repr(text[start: at + width]) + ("..." if at + width < len(text) else "")


def first_difference(got: str, want: str) -> int:
    for i, (a, b) in enumerate(zip(got, want, strict=False)):
        if a != b:
            return i
    return min(len(got), len(want))


def expect_clean(student: Any, reference: ModuleType, cases: list[tuple[str, str]], why: str = "",
                 show_expected: bool = True) -> list[str]:
    """Fail unless clean_text(text) == want for every (text, want); name the classic mistake that explains them all.

    Returns the student's results.  The mistake named is the first variant of ``hidden/mistakes.py`` that gives
    the student's result on EVERY text of ``cases`` (a single text often fits several mistakes).
    """
    results = []
    for text, _ in cases:
        got = student.clean_text(text)
        expect_type(got, str, "clean_text(text)")
        results.append(got)
    failures = [(text, got, want) for (text, want), got in zip(cases, results, strict=True) if got != want]
    if not failures:
        return results
    named = MISTAKES.diagnose(reference, [text for text, _ in cases], results) if MISTAKES is not None else None
    text, got, want = failures[0]
    at = first_difference(got, want)
    where = (f"{len(failures)} of {len(cases)} texts differ; the first is {excerpt(text, 0, 40)}: your result differs "
             f"at character {at} ({excerpt(got, at)}")
    where += f", expected {excerpt(want, at)})" if show_expected else ")"
    raise AssertionError(f"{why}{named or 'clean_text does not follow the five steps of the stub'}\n{where}")


def expect_id_lists(value: Any, n: int, what: str) -> list[list[int]]:
    expect_type(value, (list, tuple), what)
    if len(value) != n:
        raise AssertionError(f"{what} returned {len(value)} sequences for {n} texts: one list of ids per text")
    for row in value:
        expect_type(row, (list, tuple), f"each sequence of {what}")
        for i in row:
            if type(i) is not int:
                raise AssertionError(f"{what} should hold Python ints, found {type(i).__name__}: convert with list()")
    return [list(row) for row in value]


PACK_ADVICE = {
    "input_ids": "the blocks are the stream (each non-empty document followed by eos_token_id, in order) cut into "
                 "consecutive pieces of block_size: no overlap, documents not cut one by one",
    "attention_mask": "attention_mask is 1 on tokens and 0 only on the padding of a last, incomplete block",
    "labels": "labels are a copy of input_ids (NOT shifted: the model shifts them), -100 on padding",
}


def expect_batch(got: Any, want: dict[str, torch.Tensor], what: str, why: str = "",
                 advice: dict[str, str] | None = None) -> dict[str, torch.Tensor]:
    """Fail with advice per key unless ``got`` is a dict of int64 tensors equal to ``want``."""
    advice = advice or BATCH_ADVICE
    expect_type(got, dict, what)
    if set(got) != set(want):
        raise AssertionError(f"{why}{what} should have the keys {sorted(want)}, got {sorted(map(str, got))}"
                             + (": add 'labels' exactly when the features have labels" if "labels" in want
                                or "labels" in got else ""))
    for key in ("input_ids", "attention_mask", "labels"):
        if key not in want:
            continue
        value = got[key]
        expect_type(value, torch.Tensor, f"{what}[{key!r}]")
        if value.dtype != torch.long:
            raise AssertionError(f"{why}{what}[{key!r}] has dtype {value.dtype}, expected torch.int64")
        if value.shape == want[key].shape and value.numel() == 0:
            continue
        assert_tensor_close(value, want[key], rtol=0, atol=0, name=f"{what}[{key!r}]", advice=f"{why}{advice[key]}")
    return got


def expect_block(value: Any, block_size: int, what: str) -> list[int]:
    expect_type(value, (list, tuple), what)
    for i in value:
        if type(i) is not int:
            raise AssertionError(f"{what} should be a list of Python ints, found {type(i).__name__}")
    if len(value) != block_size:
        raise AssertionError(f"{what} has {len(value)} ids: every block has exactly block_size={block_size} ids (drop "
                             "the incomplete last one)")
    return list(value)


@pytest.fixture(scope="session")
def tok_dir(assets: Any) -> str:
    return str(assets["encoder-small"])


@pytest.fixture(scope="session")
def pp() -> SimpleNamespace:
    """Helpers for the preprocessing-pipeline checks."""
    return SimpleNamespace(PACK_ADVICE=PACK_ADVICE, expect_clean=expect_clean, expect_id_lists=expect_id_lists,
                           expect_batch=expect_batch, expect_block=expect_block, excerpt=excerpt,
                           first_difference=first_difference)
