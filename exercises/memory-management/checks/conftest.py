"""Shared helpers for the memory-management checks (trusted side), given to checks as the ``mm`` fixture.

The model is the stub's own ``TinyLM`` (the stub ships with the checks, so this works in student packs
too): the trusted side builds initial weights with it, and the expected values come from the reference
run on plain data (``reference.loss_and_grads`` on ONE big batch is the oracle for accumulation).
Micro-batches are right-padded token sequences of different lengths, with prompt tokens and padding
labelled IGNORE_INDEX, so the mean of per-micro-batch means differs from the window's token mean.
When gradients are wrong, ``hidden/mistakes.py`` (left out of student packs) names the classic mistake.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type, load_module, record, tolerance

IGNORE = -100
CONFIG = {"vocab_size": 48, "d_model": 32, "n_heads": 4, "n_layers": 2, "max_len": 64}
DEEP = {"vocab_size": 40, "d_model": 24, "n_heads": 3, "n_layers": 4, "max_len": 48}
#: |bf16 autocast loss - fp32 loss| must stay within this (both on the same weights and batch)
LOSS_BOUND = 0.02
#: relative error allowed on the weight update of an fp32 training run (see expect_same_update)
UPDATE_TOL = 1e-3


HERE = Path(__file__).parent
GIVEN = load_module(HERE.parent / "stub" / "solution.py", "memory_management_given", optional=True)  # the given TinyLM
MISTAKES = load_module(HERE / "hidden" / "mistakes.py", "memory_management_mistakes", optional=True)


def init_state(config: Mapping[str, int], seed: int) -> dict[str, torch.Tensor]:
    """Random weights for ``config``, LayerNorm gains and biases included (so they matter)."""
    assert GIVEN is not None
    torch.manual_seed(seed)
    model = GIVEN.build_model(dict(config))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "ln" in name:
                param.normal_(1.0 if name.endswith("weight") else 0.0, 0.2)
            elif name.endswith("bias"):
                param.normal_(0.0, 0.05)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def sequences(gen: torch.Generator, count: int, lengths: tuple[int, int], vocab: tuple[int, int]) -> list[Any]:
    """``count`` (tokens, prompt_length) pairs: lengths in [lo, hi], token ids in [vocab lo, vocab hi)."""
    out = []
    for _ in range(count):
        n = int(torch.randint(lengths[0], lengths[1] + 1, (1,), generator=gen))
        tokens = torch.randint(vocab[0], vocab[1], (n,), generator=gen)
        prompt = int(torch.randint(0, n // 2 + 1, (1,), generator=gen))
        out.append((tokens, prompt))
    return out


def collate(seqs: list[Any], no_targets: bool = False) -> dict[str, torch.Tensor]:
    """Right-padded micro-batch: labels are the next token, IGNORE at the prompt, the last token, padding."""
    width = max(len(tokens) for tokens, _ in seqs)
    ids = torch.zeros(len(seqs), width, dtype=torch.long)
    labels = torch.full((len(seqs), width), IGNORE, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for i, (tokens, prompt) in enumerate(seqs):
        n = len(tokens)
        ids[i, :n] = tokens
        mask[i, :n] = 1
        labels[i, : n - 1] = tokens[1:]
        labels[i, :prompt] = IGNORE
    if no_targets:
        labels[:] = IGNORE
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def window(gen: torch.Generator, sizes: list[int], lengths: list[tuple[int, int]], vocab: tuple[int, int] = (1, 40),
           empty: tuple[int, ...] = ()) -> tuple[list[list[Any]], list[dict[str, torch.Tensor]]]:
    """Micro-batches of the given batch sizes and length ranges (``empty``: indices with no target token)."""
    groups = [sequences(gen, size, span, vocab) for size, span in zip(sizes, lengths, strict=True)]
    return groups, [collate(g, no_targets=i in empty) for i, g in enumerate(groups)]


def big_batch(groups: list[list[Any]], empty: tuple[int, ...] = ()) -> dict[str, torch.Tensor]:
    """All sequences of the groups in one batch (the oracle's input); ``empty`` groups keep no targets."""
    batch = collate([s for g in groups for s in g])
    row = 0
    for i, g in enumerate(groups):
        if i in empty:
            batch["labels"][row: row + len(g)] = IGNORE
        row += len(g)
    return batch


def targets_of(batches: list[dict[str, torch.Tensor]]) -> list[int]:
    return [int((b["labels"] != IGNORE).sum()) for b in batches]


def expect_result(result: Any, what: str) -> dict[str, Any]:
    expect_type(result, dict, what)
    for key in ("loss", "num_tokens", "grads", "block_forwards"):
        assert key in result, f"{what} should return a dict with 'loss', 'num_tokens', 'grads', 'block_forwards', " \
                              f"'peak_memory_bytes': it has {sorted(result)}"
    expect_type(result["grads"], dict, f"{what}['grads']")
    for key in ("loss",):
        assert type(result[key]) in (float, int), f"{what}['{key}'] should be a Python float, " \
                                                  f"got {type(result[key]).__name__}"
    for key in ("num_tokens", "block_forwards"):
        assert type(result[key]) is int, f"{what}['{key}'] should be a Python int, got {type(result[key]).__name__}"
    return result


def expect_grads(got: Mapping[str, Any], want: Mapping[str, torch.Tensor], *, what: str, advice: str,
                 diagnose: Callable[[], str | None] | None = None, tol: Mapping[str, float]) -> None:
    """Every parameter's gradient equals ``want``'s (same names, fp32), with advice on the first that differs."""
    missing = sorted(set(want) - set(got))
    extra = sorted(set(got) - set(want))
    assert not missing and not extra, (
        f"{what}: the gradient names should be the model's parameter names (named_parameters()); missing "
        f"{missing[:4]}, unexpected {extra[:4]}")
    worst = 0.0
    for name, expected in want.items():
        actual = got[name]
        expect_type(actual, torch.Tensor, f"{what}[{name!r}]")
        assert actual.dtype == torch.float32, (
            f"{what}[{name!r}] is {actual.dtype}: gradients of fp32 parameters are fp32 (keep the parameters "
            "fp32, even under autocast)")
        assert tuple(actual.shape) == tuple(expected.shape), (
            f"{what}[{name!r}] has shape {tuple(actual.shape)}, expected {tuple(expected.shape)}")
        if not torch.allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"]):  # report only what differs
            named = diagnose() if diagnose is not None else None
            lead = f"{named}\n" if named else ""
            try:
                assert_tensor_close(actual, expected, name=f"{what}[{name!r}]", **tol)
            except AssertionError as exc:
                raise AssertionError(f"{lead}{advice}\n{exc}") from None
        worst = max(worst, float((actual - expected).abs().max()) if actual.numel() else 0.0)
    record(f"{what}: max abs error", worst)


def flat(tensors: Mapping[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().double().flatten() for _, t in sorted(tensors.items())])


def expect_state(got: Any, like: Mapping[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    expect_type(got, dict, what)
    assert set(got) == set(like), f"{what} should have the model's state_dict keys: got {sorted(got)[:4]}..."
    for name, value in got.items():
        expect_type(value, torch.Tensor, f"{what}[{name!r}]")
        assert tuple(value.shape) == tuple(like[name].shape), f"{what}[{name!r}] has shape {tuple(value.shape)}"
    return dict(got)


def expect_same_update(got: Mapping[str, torch.Tensor], want: Mapping[str, torch.Tensor],
                       init: Mapping[str, torch.Tensor], advice: str, limit: float = UPDATE_TOL) -> float:
    """The update (weights - init) matches ``want``'s within ``limit`` relative error (over all weights).

    AdamW divides by sqrt(v) + 1e-8, so a gradient of order 1e-8 turns its rounding noise into update noise
    of order lr * 1e-3 in a few entries: a relative bound over the whole update is robust to that, while a
    wrong gradient changes the direction of every step.
    """
    names = sorted(want)
    bad = sorted(n for n in names if got[n].dtype != torch.float32)
    assert not bad, f"{bad[:3]} are not float32 after training: the weights (master weights) stay fp32"
    delta_got = torch.cat([(got[n].double() - init[n].double()).flatten() for n in names])
    delta_want = torch.cat([(want[n].double() - init[n].double()).flatten() for n in names])
    rel = float((delta_got - delta_want).norm() / delta_want.norm().clamp_min(1e-30))
    if rel > limit:
        worst = max(names, key=lambda n: float((got[n].double() - want[n].double()).norm()))
        raise AssertionError(f"{advice}\nthe weight updates differ by {rel:.2e} relative to their norm (allowed "
                             f"{limit:.0e}); the parameter that differs most is {worst!r}")
    return rel


def expect_history(got: Any, steps: int, what: str) -> dict[str, list[float]]:
    expect_type(got, dict, what)
    for key in ("losses", "lrs", "grad_norms"):
        assert key in got, f"{what} should return a dict with 'losses', 'lrs' and 'grad_norms': it has {sorted(got)}"
        expect_type(got[key], (list, tuple), f"{what}[{key!r}]")
        assert len(got[key]) == steps, (
            f"{what}[{key!r}] has {len(got[key])} entries, expected {steps}: one per OPTIMISER step, i.e. one per "
            "window of accumulation_steps micro-batches, the last partial window included (never one per "
            "micro-batch)")
        for v in got[key]:
            assert type(v) in (float, int) and math.isfinite(v), f"{what}[{key!r}] should hold finite Python floats"
    return {k: [float(v) for v in got[k]] for k in ("losses", "lrs", "grad_norms")}


def close_list(got: list[float], want: list[float], rel: float = 1e-4, abs_: float = 1e-6) -> bool:
    return len(got) == len(want) and all(abs(g - w) <= abs_ + rel * abs(w) for g, w in zip(got, want, strict=True))


def diagnose_window(config: Mapping[str, int], state: Mapping[str, torch.Tensor],
                    micro: list[dict[str, torch.Tensor]], got: Mapping[str, Any]) -> Callable[[], str | None]:
    """A deferred call into hidden/mistakes.py (absent in student packs: then no named mistake)."""
    def run() -> str | None:
        if MISTAKES is None or GIVEN is None:
            return None
        return MISTAKES.name_window_mistake(GIVEN, dict(config), dict(state), micro, dict(got))
    return run


@pytest.fixture(scope="session")
def mm() -> SimpleNamespace:
    """Helpers for the memory-management checks."""
    return SimpleNamespace(
        CONFIG=CONFIG, DEEP=DEEP, IGNORE=IGNORE, LOSS_BOUND=LOSS_BOUND, init_state=init_state, window=window,
        big_batch=big_batch, targets_of=targets_of, expect_result=expect_result, expect_grads=expect_grads,
        expect_state=expect_state, expect_same_update=expect_same_update,
        expect_history=expect_history, close_list=close_list, flat=flat,
        diagnose_window=diagnose_window, collate=collate, sequences=sequences, tolerance=tolerance)
