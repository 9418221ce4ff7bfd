"""Reference: gradient accumulation with token-level normalisation, bf16 autocast, activation checkpointing."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

IGNORE_INDEX = -100


# -- GIVEN: the model. Do not change it (the grader builds the same one). -----------------------------------
class Block(nn.Module):
    """Pre-norm Transformer block: causal self-attention and a GELU MLP, each with a residual.

    ``forward_calls`` counts how often the block ran (checkpointing recomputes it in backward).
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.forward_calls = 0
        self.ln1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.proj = nn.Linear(d_model, d_model)
        self.ln2 = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, 4 * d_model)
        self.fc2 = nn.Linear(4 * d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forward_calls += 1
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(att.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class TinyLM(nn.Module):
    """A small causal language model: ``forward(ids) == head(blocks(embed(ids)))``, logits (b, t, vocab)."""

    def __init__(self, vocab_size: int, d_model: int, n_heads: int, n_layers: int, max_len: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size)

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        return self.tok(input_ids) + self.pos(positions)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        return self.lm_head(self.ln_f(x))

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.embed(input_ids)
        for block in self.blocks:
            x = block(x)
        return self.head(x)


def build_model(config: dict[str, int], state_dict: dict[str, torch.Tensor] | None = None,
                device: str = "cpu") -> TinyLM:
    """A TinyLM from ``config`` with ``state_dict`` loaded (strictly), in fp32 on ``device``."""
    model = TinyLM(config["vocab_size"], config["d_model"], config["n_heads"], config["n_layers"],
                   config["max_len"])
    if state_dict is not None:
        model.load_state_dict(state_dict)
    return model.to(device)


def block_forwards(model: TinyLM) -> int:
    """How many block forwards ``model`` ran since it was built (n_layers per plain forward pass)."""
    return sum(block.forward_calls for block in model.blocks)


# -- the exercise -------------------------------------------------------------------------------------------
def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} do not match")
    total = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX,
                            reduction="sum")
    return total, int((labels != IGNORE_INDEX).sum())


def _logits(model: TinyLM, input_ids: torch.Tensor, checkpointing: bool) -> torch.Tensor:
    if not checkpointing:
        return model(input_ids)
    x = model.embed(input_ids)
    for block in model.blocks:
        x = checkpoint(block, x, use_reentrant=False)
    return model.head(x)


def forward_logits(config: dict[str, int], state_dict: dict[str, torch.Tensor], input_ids: torch.Tensor, *,
                   autocast: bool = False, checkpointing: bool = False) -> torch.Tensor:
    model = build_model(config, state_dict)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        return _logits(model, input_ids, checkpointing)


def _accumulate(model: TinyLM, micro_batches: list[dict[str, torch.Tensor]], autocast: bool, checkpointing: bool,
                device: str = "cpu") -> tuple[float, int]:
    """Backward every micro-batch of one window into .grad; the window's loss is sum / total target tokens."""
    count = sum(int((mb["labels"] != IGNORE_INDEX).sum()) for mb in micro_batches)
    total = 0.0
    for mb in micro_batches:
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=autocast):
            logits = _logits(model, mb["input_ids"].to(device), checkpointing)
        loss_sum, _ = token_loss_sum(logits, mb["labels"].to(device))
        (loss_sum / max(count, 1)).backward()
        total += float(loss_sum.detach())
    return total / max(count, 1), count


def _grads(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: (p.grad if p.grad is not None else torch.zeros_like(p)).detach().cpu().clone()
            for name, p in model.named_parameters()}


def loss_and_grads(config: dict[str, int], state_dict: dict[str, torch.Tensor],
                   micro_batches: list[dict[str, torch.Tensor]], *, autocast: bool = False,
                   checkpointing: bool = False, device: str = "cpu") -> dict[str, Any]:
    if not micro_batches:
        raise ValueError("loss_and_grads needs at least one micro-batch")
    model = build_model(config, state_dict, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    loss, count = _accumulate(model, micro_batches, autocast, checkpointing, device)
    peak = int(torch.cuda.max_memory_allocated() - base) if device.startswith("cuda") else None
    return {"loss": loss, "num_tokens": count, "grads": _grads(model), "block_forwards": block_forwards(model),
            "peak_memory_bytes": peak}


class AccumulationTrainer:
    def __init__(self, config: dict[str, int], state_dict: dict[str, torch.Tensor], *, accumulation_steps: int,
                 lr: float = 1e-2, warmup_steps: int = 1, weight_decay: float = 0.0, autocast: bool = False,
                 checkpointing: bool = False) -> None:
        if int(accumulation_steps) < 1:
            raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
        if int(warmup_steps) < 1:
            raise ValueError(f"warmup_steps must be >= 1, got {warmup_steps}")
        self.model = build_model(config, state_dict)
        self.k = int(accumulation_steps)
        self.autocast, self.checkpointing = autocast, checkpointing
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup_steps))
        self.steps = 0

    def train(self, micro_batches: list[dict[str, torch.Tensor]]) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"losses": [], "lrs": [], "grad_norms": []}
        for start in range(0, len(micro_batches), self.k):
            self.optimizer.zero_grad(set_to_none=True)
            loss, _ = _accumulate(self.model, micro_batches[start:start + self.k], self.autocast, self.checkpointing)
            norm = math.sqrt(sum(float(p.grad.double().pow(2).sum()) for p in self.model.parameters()
                                 if p.grad is not None))
            out["lrs"].append(float(self.optimizer.param_groups[0]["lr"]))
            self.optimizer.step()
            self.scheduler.step()
            self.steps += 1
            out["losses"].append(loss)
            out["grad_norms"].append(norm)
        return out

    def optimizer_steps(self) -> int:
        return self.steps

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}
