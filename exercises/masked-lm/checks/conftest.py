"""Shared fixtures for the masked-lm checks (trusted side), given to checks as the ``mlm`` fixture.

The masking checks work on a synthetic batch of the packaged tokenizer's ids, built here from the grading
seed: [CLS] ... [SEP] then [PAD] up to a common length, with some [UNK] and [MASK] inside the text, more than
10^5 eligible tokens in all. Every rate is compared with its binomial expectation: the bound is
``SIGMA`` standard deviations, so each comparison fails a correct masker with probability 5.7e-7 and the
dozen comparisons of a grading together less often than once in 10^5 gradings.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_tensor, expect_type

SIGMA = 5.0
ROWS, COLS = 448, 320  # ~1.43e5 positions, ~1.05e5 eligible


@pytest.fixture(scope="session")
def model_dir(assets: Any) -> str:
    return str(assets["encoder-small"])


@pytest.fixture(scope="session")
def vocab(model_dir: str) -> SimpleNamespace:
    """The packaged tokenizer's [MASK] id, special ids and size, read on the trusted side."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    special = sorted(set(tokenizer.all_special_ids))
    return SimpleNamespace(mask_id=int(tokenizer.mask_token_id), size=len(tokenizer), special=special,
                           cls=int(tokenizer.cls_token_id), sep=int(tokenizer.sep_token_id),
                           pad=int(tokenizer.pad_token_id), unk=int(tokenizer.unk_token_id))


def stat_batch(vocab: SimpleNamespace, seed: int, rows: int = ROWS, cols: int = COLS) -> torch.Tensor:
    """(rows, cols) int64: [CLS] text [SEP] [PAD]..., lengths cols/2..cols, 1 % [UNK] and 0.5 % [MASK] in the text."""
    g = torch.Generator().manual_seed(10_007 + seed)
    special = torch.tensor(vocab.special)
    ids = torch.randint(vocab.size, (rows, cols), generator=g)
    while bool(torch.isin(ids, special).any()):  # text tokens: ordinary ids only
        bad = torch.isin(ids, special)
        ids[bad] = torch.randint(vocab.size, (int(bad.sum()),), generator=g)
    u = torch.rand(rows, cols, generator=g)
    ids[u < 0.01] = vocab.unk
    ids[(u >= 0.01) & (u < 0.015)] = vocab.mask_id
    lengths = torch.randint(cols // 2, cols + 1, (rows,), generator=g)
    pos = torch.arange(cols)[None, :]
    ids[:, 0] = vocab.cls
    ids[pos == (lengths[:, None] - 1)] = vocab.sep
    ids[pos >= lengths[:, None]] = vocab.pad
    return ids


def unpack(result: Any, ids: torch.Tensor, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The (masked input_ids, labels) of a mask() result, checked for type, shape and dtype."""
    expect_type(result, dict, what)
    for key in ("input_ids", "labels"):
        assert key in result, f"{what} should return a dict with 'input_ids' and 'labels', got keys {sorted(result)}"
    masked = expect_tensor(result["input_ids"], tuple(ids.shape), torch.int64, f"{what}['input_ids']")
    labels = expect_tensor(result["labels"], tuple(ids.shape), torch.int64, f"{what}['labels']")
    return masked, labels


def counts(ids: torch.Tensor, masked: torch.Tensor, labels: torch.Tensor, vocab: SimpleNamespace) -> dict[str, int]:
    """Eligible, selected (label != -100) and, among the selected, [MASK] / random / unchanged counts."""
    eligible = ~torch.isin(ids, torch.tensor(vocab.special))
    selected = labels != -100
    as_mask = selected & (masked == vocab.mask_id)
    unchanged = selected & (masked == ids)
    return {"eligible": int(eligible.sum()), "selected": int((selected & eligible).sum()),
            "special_selected": int((selected & ~eligible).sum()),
            "mask": int(as_mask.sum()), "random": int((selected & ~as_mask & ~unchanged).sum()),
            "unchanged": int(unchanged.sum())}


def rate_problem(hits: int, n: int, p: float, what: str) -> str | None:
    """None when hits/n lies within SIGMA binomial standard deviations of p, else a sentence saying how far."""
    if n == 0:
        return f"{what}: nothing to measure (no position was selected)"
    sd = math.sqrt(max(p * (1 - p), 1e-12) / n)
    rate = hits / n
    if abs(rate - p) <= SIGMA * sd + 1e-12:
        return None
    return (f"{what} is {rate:.4f} ({hits} of {n}), expected {p:.4f} +- {SIGMA * sd:.4f} "
            f"({SIGMA:g} standard deviations of the binomial)")


def expect_rates(c: dict[str, int], p_select: float, p_mask: float, p_random: float, setting: str) -> None:
    """All four rates within their bounds, else fail naming the worst one and the likely cause."""
    problems = [rate_problem(c["selected"], c["eligible"], p_select, "the selected share of eligible tokens")]
    n = c["selected"]
    keep = max(0.0, 1.0 - p_mask - p_random)
    problems += [rate_problem(c["mask"], n, p_mask, "the [MASK] share of selected tokens"),
                 rate_problem(c["random"], n, p_random, "the random-token share of selected tokens"),
                 rate_problem(c["unchanged"], n, keep, "the unchanged share of selected tokens")]
    found = [p for p in problems if p]
    if not found:
        return
    raise AssertionError(f"{diagnose_rates(c, p_select, p_mask, p_random)} ({setting})\n" + "\n".join(found))


def diagnose_rates(c: dict[str, int], p_select: float, p_mask: float, p_random: float) -> str:
    """The first line a student reads: the classic mistake these rates point to, or general advice."""
    n = max(c["selected"], 1)
    selected, masks, random = c["selected"] / max(c["eligible"], 1), c["mask"] / n, c["random"] / n
    rest = 1.0 - p_mask
    if selected > 0.9:
        return ("almost every token has a label: labels must be -100 at the positions that were NOT selected "
                "(only selected tokens are predicted)")
    if c["special_selected"]:
        return (f"{c['special_selected']} special tokens ([CLS], [SEP], [PAD]...) were selected: only the "
                "non-special tokens are eligible, so the shares are off")
    defaults = (0.15, 0.8, 0.1)
    if (p_select, p_mask, p_random) != defaults and all(
            rate_problem(c[key], c[of], p, "") is None
            for key, of, p in (("selected", "eligible", 0.15), ("mask", "selected", 0.8), ("random", "selected", 0.1))):
        return ("the rates are the default 15 % / 80 % / 10 %, not the ones this masker was built with: use the "
                "mlm_probability, mask_replace_prob and random_replace_prob arguments")
    if p_random > 0 and rest > 0 and abs(random - p_random * rest) < 0.3 * p_random * rest < abs(random - p_random):
        return (f"about {100 * p_random * rest:.0f} % of selected tokens are random instead of {100 * p_random:.0f} %: "
                "after choosing [MASK] with mask_replace_prob, the random draw among the REST must use "
                "random_replace_prob / (1 - mask_replace_prob), not random_replace_prob (the 2 %-instead-of-10 % bug)")
    if abs(masks - p_mask * (1 - p_random)) < abs(masks - p_mask) and p_random > 0.05:
        return ("fewer [MASK] than expected: the random replacement overwrites tokens that already got [MASK]; "
                "draw the random tokens only among the selected tokens that did not get [MASK]")
    if abs(selected - p_select) > 0.02:
        return (f"the share of selected tokens is off: select each eligible token with probability "
                f"mlm_probability ({p_select}), and count only non-special tokens as eligible")
    return ("the replacement shares are off: of the selected tokens, mask_replace_prob get [MASK], "
            "random_replace_prob a random token and the rest stay unchanged (see the module docstring)")


def mask_call(masker: Any, ids: torch.Tensor, seed: int, what: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    what = what or f"mask(input_ids {tuple(ids.shape)}, seed={seed})"
    return unpack(masker.mask(ids, seed), ids, what)


def sentences(path: Path, limit: int) -> list[str]:
    """Sentences of 40-200 characters from a WikiText-layout file (headings skipped)."""
    out: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("="):
            continue
        out += [s for s in re.split(r"(?<=[.!?])\s+", line) if 40 < len(s) < 200]
        if len(out) >= limit:
            break
    return out[:limit]


def expect_pretrained(lm: Any, ref_lm: Any, texts: list[str], why: str) -> None:
    """The student's encoder gives the packaged encoder's hidden states (cheap: before any training)."""
    batch = ref_lm.tokenize(texts)
    want = ref_lm.hidden_states(batch["input_ids"], batch["attention_mask"])
    got = lm.hidden_states(batch["input_ids"], batch["attention_mask"])
    assert_tensor_close(got, want, rtol=1e-4, atol=1e-4, name="hidden_states() before fit", advice=(
        f"{why}the encoder's hidden states are not the packaged encoder's: load it with "
        "AutoModelForMaskedLM.from_pretrained(model_dir) (not from_config: random weights) and run it in eval "
        "mode (dropout off) without gradients"))


@pytest.fixture(scope="session")
def mlm(vocab: SimpleNamespace) -> SimpleNamespace:
    """Helpers for the masked-lm checks."""
    return SimpleNamespace(SIGMA=SIGMA, vocab=vocab, stat_batch=lambda seed: stat_batch(vocab, seed),
                           unpack=unpack, counts=lambda ids, m, lab: counts(ids, m, lab, vocab),
                           rate_problem=rate_problem, diagnose_rates=diagnose_rates, expect_rates=expect_rates,
                           mask_call=mask_call, sentences=sentences, expect_pretrained=expect_pretrained)
