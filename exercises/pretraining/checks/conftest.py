"""Shared helpers for the pretraining checks (trusted side), given to checks as the ``pt`` fixture.

The student's Pretrainer gets a dict of split files in the WikiText layout. The held-out splits handed to
it carry canaries: made-up words in sentences repeated a few hundred times, which appear nowhere in the
training split. A tokenizer trained on the training split alone cuts each canary into several pieces; one
that also read the held-out text learns each canary as a single token. A model trained on held-out text
learns the canary sentence by heart.

Perplexity is always recomputed here from the student's own tokenizer and logits: the text is cut into
chunks of context_length + 1 tokens that overlap by one token, padded with the student's pad id, and
exp(summed NLL / number of real targets) is taken over all of them.

Also here: the causality probe (change the second half of a window, the first half's logits must not move),
the copy rate (a model trained on unshifted targets predicts the token it was given), and the readers of the
progress file and of train()'s losses shared by the short public run and the hidden one.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from grader.testing import expect_tensor, expect_type

CANARY_WORDS = ("Zyqwortplunk", "Brenvolathic", "Quimbletorn", "Marrowvale")
CANARY = "The Zyqwortplunk of Brenvolathic sang to the Quimbletorn every morning near Marrowvale."

#: the public checks' small model (the training run reads its sizes from the profile)
SMALL = {"vocab_size": 1024, "context_length": 16, "d_model": 32, "num_layers": 1, "num_heads": 2, "d_ff": 64,
         "batch_size": 4, "lr": 3e-3, "warmup_steps": 5, "log_every": 10, "max_train_chars": 400_000,
         "device": "cpu"}


def with_canaries(text: str, copies: int, seed: int) -> str:
    """``text`` with ``copies`` canary lines inserted at random line boundaries."""
    rng = random.Random(seed)
    lines = text.splitlines(keepends=True)
    for _ in range(copies):
        lines.insert(rng.randrange(len(lines) + 1), CANARY + "\n")
    return "".join(lines)


def wiki_text(assets: Any, split: str, max_chars: int | None = None) -> str:
    text = (Path(assets["wiki-sample"]) / f"{split}.txt").read_text(encoding="utf-8")
    if max_chars is None or len(text) <= max_chars:
        return text
    return text[: text.rfind("\n", 0, max_chars) + 1]  # whole lines


def held_out_splits(job_files: Any, assets: Any, folder: str, train: str | None = None) -> dict[str, str]:
    """Split files for the student: the training split (a job file when ``train`` text is given, else the
    asset's own file) and the valid/test splits with canaries, as job files. Paths as the student sees them."""
    splits = {}
    if train is None:
        splits["train"] = str(Path(assets["wiki-sample"]) / "train.txt")
    else:
        splits["train"] = job_files.write(f"{folder}/train.txt", train)
    for i, split in enumerate(("valid", "test")):
        splits[split] = job_files.write(f"{folder}/{split}.txt", with_canaries(wiki_text(assets, split), 300, i))
    return splits


def expect_ids(value: Any, what: str, vocab: int) -> list[int]:
    expect_type(value, list, what)
    assert all(type(i) is int and 0 <= i < vocab for i in value), (
        f"{what} should be a list of Python ints in [0, {vocab}): got {value[:8]!r}...")
    return value


def chunks(ids: list[int], context: int, pad_id: int) -> torch.Tensor:
    """(n, context + 1) windows starting every ``context`` tokens; the last one right-padded with pad_id."""
    starts = range(0, max(len(ids) - 1, 0), context)
    rows = [(ids[s: s + context + 1] + [pad_id] * context)[: context + 1] for s in starts]
    return torch.tensor(rows, dtype=torch.long).view(-1, context + 1)


def recompute(trainer: Any, text: str, context: int, vocab: int, pad_id: int,
              group: int = 32) -> dict[str, Any]:
    """Perplexity of ``text`` from the student's encode and logits: total NLL / real targets, exponentiated."""
    ids = expect_ids(trainer.encode(text), "encode(text)", vocab)
    windows = chunks(ids, context, pad_id)
    total, count, per_row = 0.0, 0, []
    for i in range(0, len(windows), group):
        block = windows[i: i + group]
        logits = expect_tensor(trainer.logits(block[:, :-1]), shape=(len(block), context, vocab),
                               what=f"logits(ids of shape ({len(block)}, {context}))")
        assert bool(torch.isfinite(logits).all()), "logits(...) returned NaN or Inf"
        targets = block[:, 1:]
        nll = F.cross_entropy(logits.double().reshape(-1, vocab), targets.reshape(-1),
                              reduction="none").view(targets.shape)
        real = targets != pad_id
        total += float(nll[real].sum())
        count += int(real.sum())
        per_row += [(float(n[r].sum()), int(r.sum())) for n, r in zip(nll, real, strict=True)]
    return {"ppl": math.exp(total / count), "tokens": count, "ids": ids, "windows": windows, "per_row": per_row,
            "nll": total, "chars": len(text)}


def causal_change(trainer: Any, context: int, vocab: int, seed: int) -> float:
    """How much the logits of the first half of a window move when only its second half changes (0 if causal)."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (2, context), generator=generator)
    what = f"logits(ids of shape (2, {context}))"
    base = expect_tensor(trainer.logits(ids), shape=(2, context, vocab), dtype=torch.float32, what=what)
    changed = ids.clone()
    changed[:, context // 2:] = (ids[:, context // 2:] + 1) % vocab
    out = expect_tensor(trainer.logits(changed), shape=(2, context, vocab), dtype=torch.float32, what=what)
    return float((out[:, : context // 2] - base[:, : context // 2]).abs().max())


def copy_rate(trainer: Any, text: str, context: int, vocab: int) -> float:
    """The share of positions whose most likely next token is the very token just read (a model trained on
    unshifted targets copies its input; a language model almost never predicts "the the")."""
    ids = expect_ids(trainer.encode(text), "encode(text)", vocab)
    rows = len(ids) // context
    assert rows, f"encode gave only {len(ids)} ids for {len(text)} characters"
    window = torch.tensor(ids[: rows * context], dtype=torch.long).view(rows, context)
    logits = expect_tensor(trainer.logits(window), shape=(rows, context, vocab), what="logits(ids)")
    return float((logits.argmax(-1) == window).double().mean())


def read_progress(lines: list[str]) -> list[dict[str, Any]]:
    """The progress file's lines as records, each checked for its fields."""
    records = []
    for line in lines:
        try:
            item = json.loads(line)
        except ValueError:
            raise AssertionError(f"progress line {line[:80]!r} is not JSON: write one json.dumps({{'step': ..., "
                                 "'loss': ..., 'elapsed_s': ...}) per line") from None
        expect_type(item, dict, "a progress line")
        step, loss, elapsed = item.get("step"), item.get("loss"), item.get("elapsed_s")
        loss_ok = (type(loss) in (int, float) and math.isfinite(loss)) or (step == 0 and loss is None)
        assert type(step) is int and loss_ok and type(elapsed) in (int, float), (
            f"progress line {line[:80]!r} needs an int step, a finite number loss (null at step 0) and a number "
            "elapsed_s")
        records.append(item)
    return records


def expect_step_marks(records: list[dict[str, Any]], every: int, steps: int) -> None:
    """A first line at step 0, then at least every ``every`` steps, and one at the last step."""
    assert records, "train() wrote no progress line: append one JSON line per report to progress_file, and flush it"
    marks = [r["step"] for r in records]
    assert marks[0] == 0, (
        f"the first progress line says step {marks[0]}: write one with step 0 as soon as train() is called")
    gaps = [b - a for a, b in itertools.pairwise(marks)]
    assert all(0 <= g <= every for g in gaps) and marks[-1] == steps, (
        f"progress lines came at steps {marks[:8]}{'...' if len(marks) > 8 else ''}{marks[-1]}: write one at least "
        f"every log_every={every} steps (steps never decreasing) and one after the last step ({steps})")


def expect_losses(losses: Any, steps: int) -> list[float]:
    expect_type(losses, list, "train(...)'s return value")
    assert len(losses) == steps and all(type(v) is float and math.isfinite(v) for v in losses), (
        f"train(splits, {steps}, ...) should return {steps} finite Python floats, one training loss per optimiser "
        f"step (float(loss)); got {len(losses)} values"
        + (f", the first a {type(losses[0]).__name__}" if losses and type(losses[0]) is not float else ""))
    return losses


def expect_pad_id(trainer: Any, vocab: int) -> int:
    pad_id = trainer.get("pad_id")
    assert type(pad_id) is int and 0 <= pad_id < vocab, (
        f"pad_id should be the int id of the '<pad>' special token once the tokenizer is trained, got {pad_id!r}")
    return pad_id


@pytest.fixture(scope="session")
def pt() -> SimpleNamespace:
    """Helpers for the pretraining checks."""
    return SimpleNamespace(SMALL=SMALL, CANARY=CANARY, CANARY_WORDS=CANARY_WORDS, with_canaries=with_canaries,
                           wiki_text=wiki_text, held_out_splits=held_out_splits, expect_ids=expect_ids,
                           chunks=chunks, recompute=recompute, expect_pad_id=expect_pad_id,
                           causal_change=causal_change, copy_rate=copy_rate, read_progress=read_progress,
                           expect_step_marks=expect_step_marks, expect_losses=expect_losses)
