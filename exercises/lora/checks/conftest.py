"""Shared helpers for the lora checks (trusted side), given to checks as the ``lo`` fixture.

Layer-level checks compare with the LoRA formula computed here; model-level checks use a tiny random
Llama built here (its config and weights go to the student as plain data) and peft on the trusted side:
the student's adapter weights are put into a trusted peft model with the stated r and alpha, so the
scaling the student's model really uses is checked, not reported.  The instruction data comes from the
wiki-sample asset (which article does this opening sentence come from?); the held-out articles are only
ever seen here, and their loss is computed here, on the student's saved adapter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from grader.testing import expect_type

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

IGNORE = -100
TINY = {"vocab_size": 96, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 64,
        "tie_word_embeddings": False, "rms_norm_eps": 1e-6, "pad_token_id": 0, "bos_token_id": 1,
        "eos_token_id": 2}
LOGIT_TOL = {"rtol": 1e-4, "atol": 1e-5}


def tiny_source(seed: int, config: Mapping[str, Any] = TINY) -> dict[str, Any]:
    """A random tiny Llama as plain data; weights drawn wider than transformers' std 0.02 so logits differ."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**config))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(1.0, 0.1)
            else:
                p.normal_(0.0, 0.2)
    return {"config": dict(config), "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()}}


def trusted_base(source: Mapping[str, Any]) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(**source["config"]))
    model.load_state_dict(source["state_dict"])
    return model.eval()


def trusted_peft(source: Mapping[str, Any], adapter: Mapping[str, torch.Tensor], r: int, alpha: float,
                 targets: list[str]) -> Any:
    """The trusted base model with the student's adapter weights loaded into a peft model of the stated config."""
    from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict

    model = get_peft_model(trusted_base(source), LoraConfig(r=r, lora_alpha=alpha, target_modules=targets,
                                                             lora_dropout=0.0, task_type="CAUSAL_LM"))
    missing = sorted(set(get_peft_model_state_dict(model)) - set(adapter))
    assert not missing, (f"adapter_state() lacks {len(missing)} adapter weights of target_modules={targets}, e.g. "
                         f"{missing[0]}: pass the given target_modules to LoraConfig")
    result = set_peft_model_state_dict(model, dict(adapter))
    unexpected = list(getattr(result, "unexpected_keys", []) or [])
    assert not unexpected, (f"adapter_state() has keys peft does not know for this config: {unexpected[:3]}: return "
                            "peft.get_peft_model_state_dict(model)")
    return model.eval()


def linear_shapes(config: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """(d_in, d_out) of each Llama projection, from the config (grouped-query k/v are narrower)."""
    d = int(config["hidden_size"])
    head = int(config.get("head_dim") or d // int(config["num_attention_heads"]))
    q = head * int(config["num_attention_heads"])
    kv = head * int(config.get("num_key_value_heads") or config["num_attention_heads"])
    ff = int(config["intermediate_size"])
    return {"q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d), "gate_proj": (d, ff),
            "up_proj": (d, ff), "down_proj": (ff, d)}


def expected_trainable(config: Mapping[str, Any], targets: list[str], r: int) -> int:
    """r * (d_in + d_out) per adapted linear layer, summed over layers and target modules."""
    shapes = linear_shapes(config)
    return int(config["num_hidden_layers"]) * sum(r * sum(shapes[t]) for t in targets)


def base_count(source: Mapping[str, Any]) -> int:
    return sum(v.numel() for v in source["state_dict"].values())


def folder_base_count(model_dir: Path) -> int:
    """Parameters of a model folder, read from its safetensors headers (tied weights stored once)."""
    from safetensors import safe_open

    total = 0
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), "pt") as fh:
            for key in fh.keys():  # noqa: SIM118 (safe_open is not a mapping)
                n = 1
                for s in fh.get_slice(key).get_shape():
                    n *= int(s)
                total += n
    return total


def token_batch(seed: int, batch: int = 2, length: int = 7, vocab: int = TINY["vocab_size"]) -> dict[str, torch.Tensor]:
    """Random ids with the second row right-padded (attention_mask 0, labels -100 there)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (batch, length), generator=g)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[1, length - 3:] = 0
    ids[1, length - 3:] = 0
    labels = ids.clone()
    labels[mask == 0] = IGNORE
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def real(t: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The logits at real (not padded) positions only."""
    return t[mask.bool()]


def expect_logits(value: Any, shape: tuple[int, ...], what: str) -> torch.Tensor:
    expect_type(value, torch.Tensor, what)
    assert tuple(value.shape) == tuple(shape), f"{what} has shape {tuple(value.shape)}, expected {shape}"
    assert value.dtype == torch.float32, f"{what} is {value.dtype}, expected float32 logits"
    return value


def instruction_pairs(wiki_dir: Path, split: str, limit: int) -> list[tuple[str, str]]:
    """(prompt, response) pairs: the opening words of an article's first paragraph naming its title -> title.

    ``split`` "train" takes the training articles; any other value the held-out ones (valid and test).
    """
    pairs = []
    for line in (wiki_dir / "articles.jsonl").read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if (row.get("split", "train") == "train") != (split == "train"):  # held out: the valid and test articles
            continue
        title = row["title"].strip()
        paragraph = next((p for p in row["text"].split("\n") if title.split()[0] in p and len(p.split()) > 12), None)
        if paragraph is None or len(title) > 40:
            continue
        opening = " ".join(paragraph.split()[:10])
        pairs.append((f"Title of the article beginning \"{opening}\"?", title))
        if len(pairs) == limit:
            break
    return pairs


def response_loss(model: Any, batch: Mapping[str, torch.Tensor]) -> float:
    """Mean cross-entropy over the response tokens of ``batch`` (the model shifts the labels itself)."""
    with torch.no_grad():
        return float(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           labels=batch["labels"]).loss)


@pytest.fixture(scope="session")
def lo() -> SimpleNamespace:
    """Helpers for the lora checks."""
    return SimpleNamespace(
        IGNORE=IGNORE, TINY=TINY, LOGIT_TOL=LOGIT_TOL, tiny_source=tiny_source, trusted_base=trusted_base,
        trusted_peft=trusted_peft, linear_shapes=linear_shapes, expected_trainable=expected_trainable,
        base_count=base_count, folder_base_count=folder_base_count, token_batch=token_batch, real=real,
        expect_logits=expect_logits, instruction_pairs=instruction_pairs, response_loss=response_loss)
