"""Shared fixtures for the custom-objectives checks (trusted side), given to checks as the ``co`` fixture.

Everything a check compares with is computed in the trusted process: the tiny Llama models are built and
initialised here and handed to the student as a config dict plus a dict of weight tensors; the preference
pairs are cut from the ``wiki-sample`` asset here (the stub's recipe); expected values come from the
``reference`` fixture; and the outcome checks take the student's trained WEIGHTS back and score the hidden
pairs with the reference's forward pass, so a number the student reports is never trusted.
``hidden/mistakes.py`` (left out of student packs) names the classic mistake a wrong value matches.
"""

from __future__ import annotations

import math
import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type, load_module

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)  # the models are tiny: more threads only contend for the cores

BOS_ID, PAD_ID, VOCAB_SIZE = 256, 257, 258
LN2 = math.log(2.0)
LETTERS = "abcdefghijklmnopqrstuvwxyz"
LOGP_TOL = {"rtol": 1e-4, "atol": 2e-4}  # sums of ~30 float32 log-probs of size ~5


# hidden/mistakes.py recomputes classic mistakes (it solves the exercise), so student packs leave it out.
MISTAKES = load_module(Path(__file__).parent / "hidden" / "mistakes.py", "custom_objectives_mistakes", optional=True)


def diagnose(kind: str, *args: Any) -> str | None:
    """The named mistake ``args`` match (hidden/mistakes.py), or None where it is absent or nothing matches."""
    return getattr(MISTAKES, kind)(*args) if MISTAKES is not None else None


# -- the tiny models ---------------------------------------------------------------------------------


def model_config(targets: Mapping[str, Any]) -> dict[str, Any]:
    """The LlamaConfig keyword arguments the student receives (plain data)."""
    return {
        "vocab_size": VOCAB_SIZE, "hidden_size": int(targets["hidden_size"]),
        "intermediate_size": 2 * int(targets["hidden_size"]), "num_hidden_layers": int(targets["layers"]),
        "num_attention_heads": 4, "num_key_value_heads": 4, "max_position_embeddings": 128,
        "rms_norm_eps": 1e-5, "initializer_range": 0.1, "tie_word_embeddings": False,
        "bos_token_id": BOS_ID, "eos_token_id": BOS_ID, "pad_token_id": PAD_ID,
    }


def init_weights(config: dict[str, Any], kind: str, seed: int) -> dict[str, torch.Tensor]:
    """Freshly initialised weights of a ``causal`` LM or a ``reward`` model (one score head), from ``seed``."""
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaForSequenceClassification

    torch.manual_seed(seed)
    if kind == "causal":
        model = LlamaForCausalLM(LlamaConfig(**config))
    else:
        model = LlamaForSequenceClassification(LlamaConfig(**config, num_labels=1))
        with torch.no_grad():  # a livelier head than the 0.1-std default, so a wrong read shows clearly
            model.score.weight.normal_(0.0, 0.5)
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def expect_weights(value: Any, like: dict[str, torch.Tensor], what: str) -> dict[str, torch.Tensor]:
    """Fail with advice unless ``value`` is a plain dict with ``like``'s keys and shapes."""
    expect_type(value, dict, what)
    missing, extra = sorted(set(like) - set(value)), sorted(set(value) - set(like))
    assert not missing and not extra, (
        f"{what} should have the keys of the weights you were given (the model's state_dict names): "
        f"missing {missing[:3]}, unexpected {extra[:3]}")
    for name, want in like.items():
        expect_type(value[name], torch.Tensor, f"{what}[{name!r}]")
        assert tuple(value[name].shape) == tuple(want.shape), (
            f"{what}[{name!r}] has shape {tuple(value[name].shape)}, expected {tuple(want.shape)}")
        assert torch.isfinite(value[name]).all(), f"{what}[{name!r}] holds NaN or Inf: did training diverge?"
    return {name: value[name].to(want.dtype) for name, want in like.items()}


# -- the preference pairs ----------------------------------------------------------------------------


def sentences(folder: Path, split: str) -> list[str]:
    """ASCII sentences of at least 48 characters from a split of the wiki-sample asset, in file order."""
    out = []
    for line in (folder / f"{split}.txt").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("="):
            continue
        out.extend(s for s in re.split(r"(?<=[.!?])\s+", line.strip()) if len(s) >= 48 and s.isascii())
    return out


def typos(text: str, rng: random.Random) -> str:
    """About half the letters replaced by random lowercase letters; never returns ``text`` unchanged."""
    while True:
        out = "".join(rng.choice(LETTERS) if c.isalpha() and rng.random() < 0.5 else c for c in text)
        if out != text:
            return out


def make_pairs(pool: list[str], n: int, seed: int) -> list[dict[str, list[int]]]:
    """The stub's recipe: prompt = BOS + the first 8-16 bytes, chosen = the next 12-24 bytes, rejected = typos."""
    rng = random.Random(seed)
    pairs = []
    for text in rng.sample(pool, n):
        cut = rng.randint(8, 16)
        chosen = text[cut:cut + rng.randint(12, 24)]
        pairs.append({"prompt": [BOS_ID, *text[:cut].encode()], "chosen": list(chosen.encode()),
                      "rejected": list(typos(chosen, rng).encode())})
    return pairs


def pad_rows(rows: list[list[int]], pad_id: int, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) of ``rows`` padded to the longest with ``pad_id``, on the right or the left."""
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        start = width - len(row) if left else 0
        ids[i, start:start + len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, start:start + len(row)] = 1
    return ids, mask


def expect_vector(value: Any, n: int, what: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    expect_type(value, torch.Tensor, what)
    assert tuple(value.shape) == (n,), (
        f"{what} has shape {tuple(value.shape)}, expected ({n},): one value per sequence (or pair)")
    assert value.dtype == dtype, f"{what} has dtype {value.dtype}, expected {dtype}"
    return value


def expect_losses(value: Any, steps: int, what: str) -> list[float]:
    expect_type(value, (list, tuple), what)
    assert len(value) == steps, f"{what} returned {len(value)} losses: take exactly `steps` steps, one loss each"
    for v in value:
        assert type(v) in (float, int), f"{what} should return Python floats, found {type(v).__name__}"
    losses = [float(v) for v in value]
    assert all(math.isfinite(v) for v in losses), f"{what} returned NaN or Inf losses: lower the learning rate?"
    return losses


def close(actual: torch.Tensor, expected: torch.Tensor, name: str, advice: str, kind: str | None = None,
          *extra: Any, **tol: float) -> None:
    """assert_tensor_close whose first line is the named mistake (when one matches) or ``advice``."""
    try:
        assert_tensor_close(actual, expected, name=name, **(tol or LOGP_TOL))
    except AssertionError as exc:
        named = diagnose(kind, actual, *extra) if kind else None
        raise AssertionError(f"{named or advice}\n{exc}") from None


def attribute(obj: Any, name: str) -> Any:
    """A handle on ``obj.<name>`` inside the sandbox (for modules, which cannot cross the boundary)."""
    return obj.handle("__getattribute__", name)


@pytest.fixture(scope="session")
def config(targets: Mapping[str, Any]) -> dict[str, Any]:
    return model_config(targets)


@pytest.fixture(scope="session")
def pools(assets: Any) -> dict[str, list[str]]:
    folder = Path(assets["wiki-sample"])
    return {"train": sentences(folder, "train"), "test": sentences(folder, "test")}


@pytest.fixture(scope="session")
def train_pairs(pools: dict[str, list[str]], targets: Mapping[str, Any], seed: int) -> list[dict[str, list[int]]]:
    """The pairs handed to fit(): cut from the wiki-sample TRAIN split."""
    return make_pairs(pools["train"], int(targets["train_pairs"]), seed)


@pytest.fixture(scope="session")
def hidden_pairs(pools: dict[str, list[str]], targets: Mapping[str, Any], seed: int) -> list[dict[str, list[int]]]:
    """Pairs the student never sees: cut from the TEST split, with another seed."""
    return make_pairs(pools["test"], int(targets["hidden_pairs"]), seed + 1)


@pytest.fixture(scope="session")
def co() -> SimpleNamespace:
    """Helpers for the custom-objectives checks."""
    return SimpleNamespace(
        BOS_ID=BOS_ID, PAD_ID=PAD_ID, LN2=LN2, LOGP_TOL=LOGP_TOL, init_weights=init_weights,
        expect_weights=expect_weights,
        expect_vector=expect_vector, expect_losses=expect_losses, close=close, attribute=attribute,
        diagnose=diagnose, make_pairs=make_pairs, pad_rows=pad_rows,
    )
