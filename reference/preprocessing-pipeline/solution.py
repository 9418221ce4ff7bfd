"""Preprocessing pipeline for language-model training: clean, tokenize, batch, pack, stream (reference)."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import torch

TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
KEEP_FORMAT = {"\u200c", "\u200d"}  # ZWNJ, ZWJ: they change how Persian, Indic and emoji sequences are written
DROP_CATEGORIES = {"Cc", "Cf", "Co"}
MAX_PASSES = 100


def _drop_controls(text: str) -> str:
    return "".join(
        c for c in text
        if c.isspace() or c in KEEP_FORMAT or unicodedata.category(c) not in DROP_CATEGORIES
    )


def _whitespace(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out)


def _one_pass(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = TAG.sub(" ", text)
    text = html.unescape(text)
    text = _drop_controls(text)
    return _whitespace(text)


def clean_text(text: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"clean_text takes a str, got {type(text).__name__}")
    for _ in range(MAX_PASSES):
        cleaned = _one_pass(text)
        if cleaned == text:
            break
        text = cleaned
    return text


@lru_cache(maxsize=4)
def load_tokenizer(tokenizer_dir: str) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tokenizer_dir)


def separator_id(tokenizer_dir: str) -> int:
    tok = load_tokenizer(tokenizer_dir)
    return int(tok.eos_token_id if tok.eos_token_id is not None else tok.sep_token_id)


def tokenize(texts: list[str], tokenizer_dir: str, max_length: int | None = None,
             add_special_tokens: bool = True) -> list[list[int]]:
    if not texts:
        return []
    tok = load_tokenizer(tokenizer_dir)
    enc = tok(list(texts), add_special_tokens=add_special_tokens, truncation=max_length is not None,
              max_length=max_length)
    return [list(ids) for ids in enc["input_ids"]]


def _width(lengths: list[int], max_length: int | None, multiple: int | None) -> int:
    width = max_length if max_length is not None else max(lengths)
    if multiple:
        width = -(-width // multiple) * multiple
    return width


def _pad(rows: list[list[int]], width: int, value: int) -> torch.Tensor:
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def collate(features: list[dict[str, list[int]]], pad_token_id: int, max_length: int | None = None,
            pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    if not features:
        raise ValueError("collate needs at least one feature")
    ids = [list(f["input_ids"]) for f in features]
    has_labels = ["labels" in f for f in features]
    if any(has_labels) and not all(has_labels):
        raise ValueError("either every feature has labels or none has")
    labels = [list(f["labels"]) for f in features] if all(has_labels) else None
    for rows, name in ((ids, "input_ids"), (labels or [], "labels")):
        if max_length is not None and any(len(r) > max_length for r in rows):
            raise ValueError(f"a feature's {name} is longer than max_length={max_length}: truncate when tokenizing")
    width = _width([len(r) for r in ids], max_length, pad_to_multiple_of)
    batch = {"input_ids": _pad(ids, width, pad_token_id),
             "attention_mask": _pad([[1] * len(r) for r in ids], width, 0)}
    if labels is not None:
        batch["labels"] = _pad(labels, _width([len(r) for r in labels], max_length, pad_to_multiple_of), -100)
    return batch


def batches(features: list[dict[str, list[int]]], batch_size: int, pad_token_id: int, epochs: int = 1,
            seed: int = 0, max_length: int | None = None,
            pad_to_multiple_of: int | None = None) -> list[dict[str, torch.Tensor]]:
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    out = []
    for epoch in range(epochs):
        order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed + epoch)).tolist()
        for start in range(0, len(order), batch_size):
            chunk = [features[i] for i in order[start : start + batch_size]]
            out.append(collate(chunk, pad_token_id, max_length=max_length, pad_to_multiple_of=pad_to_multiple_of))
    return out


def pack(docs: list[list[int]], block_size: int, eos_token_id: int, drop_remainder: bool = True,
         pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    if block_size < 1:
        raise ValueError("block_size must be at least 1")
    stream: list[int] = []
    for doc in docs:
        if doc:
            stream.extend(doc)
            stream.append(eos_token_id)
    full = len(stream) // block_size
    rows = [stream[i * block_size : (i + 1) * block_size] for i in range(full)]
    tail = stream[full * block_size :]
    if tail and not drop_remainder:
        rows.append(tail)
    ids = _pad(rows, block_size, pad_token_id) if rows else torch.zeros((0, block_size), dtype=torch.long)
    mask = _pad([[1] * len(r) for r in rows], block_size, 0) if rows else ids.clone()
    labels = ids.masked_fill(mask == 0, -100)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def stream_blocks(path: str, tokenizer_dir: str, block_size: int) -> Iterator[list[int]]:
    if block_size < 1:
        raise ValueError("block_size must be at least 1")
    sep = separator_id(tokenizer_dir)
    buffer: list[int] = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = clean_text(line)
            if not text:
                continue
            ids = tokenize([text], tokenizer_dir, add_special_tokens=False)[0]
            if not ids:
                continue
            buffer.extend(ids)
            buffer.append(sep)
            start = 0
            while len(buffer) - start >= block_size:
                yield buffer[start : start + block_size]
                start += block_size
            del buffer[:start]
