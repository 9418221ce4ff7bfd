# wrong: tokenize uses tokenizer.json as saved (padding and truncation to 128 on) and never switches truncation off
# loses: test_tokenize_truncates_with_special_tokens, test_hidden_tokenize_matches_reference
"""Preprocessing pipeline written with the tokenizers library directly, pad_sequence and chunked reads."""
import html
import re
import unicodedata
from functools import lru_cache
from pathlib import Path

import torch
from tokenizers import Tokenizer
from torch.nn.utils.rnn import pad_sequence

_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")
_WS = re.compile(r"\s+")


def _keep(c):
    if c in "\u200c\u200d" or c.isspace():
        return True
    return unicodedata.category(c) not in ("Cc", "Cf", "Co")


def clean_text(text):
    while True:
        t = unicodedata.normalize("NFKC", text)
        t = html.unescape(_TAG.sub(" ", t))
        t = "".join(filter(_keep, t))
        lines = [_WS.sub(" ", line).strip() for line in t.splitlines()]
        out = []
        for line in lines:
            if line == "" and (not out or out[-1] == ""):
                continue
            out.append(line)
        if out and out[-1] == "":
            out.pop()
        t = "\n".join(out)
        if t == text:
            return t
        text = t


@lru_cache
def _tok(d):
    return Tokenizer.from_file(str(Path(d) / "tokenizer.json"))


def tokenize(texts, tokenizer_dir, max_length=None, add_special_tokens=True):
    tok = _tok(tokenizer_dir)
    if max_length is not None:
        tok.enable_truncation(max_length)
    return [e.ids for e in tok.encode_batch(list(texts), add_special_tokens=add_special_tokens)]


def _padded(rows, value, width):
    t = pad_sequence([torch.tensor(r, dtype=torch.int64) for r in rows], batch_first=True, padding_value=value)
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)


def _w(rows, max_length, m):
    w = max_length or max(len(r) for r in rows)
    if m:
        while w % m:
            w += 1
    return w


def collate(features, pad_token_id, max_length=None, pad_to_multiple_of=None):
    if len(features) == 0:
        raise ValueError("empty")
    n_lab = sum("labels" in f for f in features)
    if n_lab not in (0, len(features)):
        raise ValueError("mixed labels")
    ids = [f["input_ids"] for f in features]
    if max_length and max(map(len, ids)) > max_length:
        raise ValueError("too long")
    out = {"input_ids": _padded(ids, pad_token_id, _w(ids, max_length, pad_to_multiple_of))}
    out["attention_mask"] = _padded([[1] * len(r) for r in ids], 0, out["input_ids"].shape[1])
    if n_lab:
        labs = [f["labels"] for f in features]
        if max_length and max(map(len, labs)) > max_length:
            raise ValueError("labels too long")
        out["labels"] = _padded(labs, -100, _w(labs, max_length, pad_to_multiple_of))
    return out


def batches(features, batch_size, pad_token_id, epochs=1, seed=0, max_length=None, pad_to_multiple_of=None):
    if batch_size <= 0:
        raise ValueError("batch_size")
    result = []
    for e in range(epochs):
        g = torch.Generator()
        g.manual_seed(seed + e)
        perm = torch.randperm(len(features), generator=g).tolist()
        for chunk in torch.split(torch.tensor(perm, dtype=torch.long), batch_size):
            result.append(collate([features[i] for i in chunk.tolist()], pad_token_id, max_length, pad_to_multiple_of))
    return result


def pack(docs, block_size, eos_token_id, drop_remainder=True, pad_token_id=0):
    if block_size <= 0:
        raise ValueError("block_size")
    flat = torch.tensor([t for d in docs if d for t in [*d, eos_token_id]], dtype=torch.int64)
    n = len(flat) // block_size if drop_remainder else -(-len(flat) // block_size)
    ids = torch.full((n * block_size,), pad_token_id, dtype=torch.int64)
    mask = torch.zeros(n * block_size, dtype=torch.int64)
    k = min(len(flat), n * block_size)
    ids[:k] = flat[:k]
    mask[:k] = 1
    ids, mask = ids.view(n, block_size), mask.view(n, block_size)
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.where(mask.bool(), ids, -100)}


def _lines(f, size=1 << 20):
    rest = ""
    while True:
        chunk = f.read(size)
        if not chunk:
            if rest:
                yield rest
            return
        parts = (rest + chunk).split("\n")
        rest = parts.pop()
        for p in parts:
            yield p + "\n"


def stream_blocks(path, tokenizer_dir, block_size):
    if block_size <= 0:
        raise ValueError("block_size")
    tok = _tok(tokenizer_dir)
    eos = tok.token_to_id("[SEP]")
    pending = []
    with open(path, encoding="utf-8") as f:
        for line in _lines(f):
            ids = tokenize([clean_text(line)], tokenizer_dir, add_special_tokens=False)[0]
            if not ids:
                continue
            pending += [*ids, eos]
            while len(pending) >= block_size:
                yield pending[:block_size]
                pending = pending[block_size:]
