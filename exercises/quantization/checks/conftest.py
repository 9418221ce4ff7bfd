"""Shared helpers for the quantization checks (trusted side), given to checks as the ``qz`` fixture.

Everything a verdict rests on is measured here: the float model's outputs come from a model loaded here, SQNR
is computed here from the student's outputs, the size is the byte count of the state-dict file the
student's code writes into the shared folder (read back with ``weights_only=True``, never unpickled in
full), the speed-up is timed here around interleaved calls, and perplexity is computed here from the
student's per-token log-probabilities.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import statistics
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import expect_type

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DYNAMIC = "torch.ao.nn.quantized.dynamic"
FLOAT_LINEAR = "torch.nn.modules.linear.Linear"
_CACHE: dict[str, Any] = {}


def sqnr_db(reference: torch.Tensor, actual: torch.Tensor) -> float:
    """20 log10(||x|| / ||x - y||), torchao's ``compute_error``; +inf when equal."""
    x, y = reference.double(), actual.double()
    noise = float((x - y).norm())
    return math.inf if noise == 0 else 20 * math.log10(float(x.norm()) / noise)


def float_model(model_dir: str, kind: str) -> Any:
    """The float model, loaded here once per grading."""
    key = f"{kind}:{model_dir}"
    if key not in _CACHE:
        from transformers import AutoModel, AutoModelForCausalLM

        loader = AutoModel if kind == "encoder" else AutoModelForCausalLM
        _CACHE[key] = loader.from_pretrained(model_dir, dtype=torch.float32).eval()
    return _CACHE[key]


def float_size(model_dir: str, kind: str, module: str = "") -> int:
    buffer = io.BytesIO()
    torch.save(float_model(model_dir, kind).get_submodule(module).state_dict(), buffer)
    return len(buffer.getvalue())


def linear_names(model: Any) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]


def sentences(assets: Mapping[str, Path], rows: slice) -> list[str]:
    lines = (Path(assets["sentiment-sentences"]) / "sentences.tsv").read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1] for line in lines if line.strip()][rows]


def encode(model_dir: str, texts: list[str], max_length: int = 48) -> dict[str, torch.Tensor]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


def float_embed(model_dir: str, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        hidden = float_model(model_dir, "encoder")(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


def lm_blocks(model_dir: str, text: str, rows: int, length: int) -> dict[str, torch.Tensor]:
    """``rows`` blocks of ``length`` tokens of ``text`` (no padding)."""
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(model_dir)(text, return_tensors="pt")["input_ids"][0]
    assert ids.numel() >= rows * length, "the perplexity text is too short for the requested blocks"
    ids = ids[: rows * length].reshape(rows, length)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def perplexity(logprobs: torch.Tensor) -> float:
    return math.exp(-float(logprobs.double().mean()))


def float_logprobs(model_dir: str, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    with torch.inference_mode():
        logits = float_model(model_dir, "causal-lm")(**batch).logits[:, :-1].float()
    return logits.log_softmax(-1).gather(-1, batch["input_ids"][:, 1:, None]).squeeze(-1)


def saved_state(student_model: Any, job_files: Any, name: str, module: str = "") -> tuple[int, dict[str, Any]]:
    """Ask the student's model to save ``module``'s state dict; return (file bytes, the state read back safely)."""
    host, inside = job_files.shared_dir()
    student_model.save_state(f"{inside}/{name}", module)
    path = Path(host) / name
    assert path.is_file(), (f"save_state(path, {module!r}) wrote nothing at {name}: "
                            "torch.save(model.get_submodule(module).state_dict(), path)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as exc:  # student's file
            raise AssertionError(f"the saved file is not a plain state dict torch.load(weights_only=True) can read "
                                 f"({type(exc).__name__}): save model.state_dict(), not the model object") from None
    expect_type(state, dict, "the saved state dict")
    return path.stat().st_size, state


def expect_types(value: Any) -> dict[str, str]:
    expect_type(value, dict, "module_types()")
    for k, v in value.items():
        assert isinstance(k, str) and isinstance(v, str), "module_types() maps module names to type-name strings"
    return value


def interleaved_times(calls: list[Callable[[], Any]], rounds: int, warmup: int) -> list[list[float]]:
    """Wall times of each call, ``warmup`` untimed calls each first, then ``rounds`` rounds in turn."""
    for call in calls:
        for _ in range(warmup):
            call()
    times: list[list[float]] = [[] for _ in calls]
    for _ in range(rounds):
        for i, call in enumerate(calls):
            start = time.perf_counter()
            call()
            times[i].append(time.perf_counter() - start)
    return times


def machine_speedup(model_dir: str, batch: Mapping[str, torch.Tensor], rounds: int) -> float:
    """What this CPU gives torch.ao's own dynamic int8 MiniLM over float, timed here like the student's: an
    int8 matmul is faster only where the CPU has the instructions for it (VNNI, AVX-512), so this is the gain
    the machine can show at all."""
    import copy

    model = float_model(model_dir, "encoder")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's eager quantisation is deprecated in torch 2.13
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)
    with torch.inference_mode():
        float_times, int8_times = interleaved_times([lambda: model(**batch), lambda: quantized(**batch)],
                                                    rounds=rounds, warmup=2)
    return statistics.median(float_times) / statistics.median(int8_times)


@pytest.fixture(scope="session")
def qz() -> SimpleNamespace:
    """Helpers for the quantization checks."""
    return SimpleNamespace(
        DYNAMIC=DYNAMIC, FLOAT_LINEAR=FLOAT_LINEAR, sqnr_db=sqnr_db, float_model=float_model, float_size=float_size,
        linear_names=linear_names, sentences=sentences, encode=encode, float_embed=float_embed, lm_blocks=lm_blocks,
        perplexity=perplexity, float_logprobs=float_logprobs, saved_state=saved_state, expect_types=expect_types,
        interleaved_times=interleaved_times, median=statistics.median, machine_speedup=machine_speedup)
