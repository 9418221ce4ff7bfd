"""Reference: a decoder-only Transformer and its training loop, every piece written out."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

# -- the pieces -----------------------------------------------------------------------------------------


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    shifted = logits - logits.amax(dim=-1, keepdim=True)
    log_norm = shifted.exp().sum(dim=-1).log()
    picked = shifted.gather(-1, targets[:, None]).squeeze(-1)
    return (log_norm - picked).mean()


def clip_gradients(grads: Sequence[torch.Tensor | None], max_norm: float) -> list[torch.Tensor | None]:
    present = [g for g in grads if g is not None]
    if not present:
        return list(grads)
    total = torch.sqrt(sum((g.double() ** 2).sum() for g in present))
    factor = max_norm / (float(total) + 1e-6)
    if factor >= 1.0:
        return [None if g is None else g.clone() for g in grads]
    return [None if g is None else g * factor for g in grads]


def lr_cosine_schedule(it: int, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int) -> float:
    if it < warmup_iters:
        return max_lr * it / warmup_iters
    if it <= cosine_cycle_iters:
        progress = (it - warmup_iters) / (cosine_cycle_iters - warmup_iters)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
    return min_lr


class AdamW(torch.optim.Optimizer):
    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        if lr < 0 or eps < 0 or weight_decay < 0 or not all(0.0 <= b < 1.0 for b in betas):
            raise ValueError(f"invalid AdamW hyperparameters: lr={lr}, betas={betas}, eps={eps}, "
                             f"weight_decay={weight_decay}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None if closure is None else closure()
        for group in self.param_groups:
            lr, (beta1, beta2), eps, decay = group["lr"], group["betas"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m.mul_(beta1).add_(p.grad, alpha=1 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                p.mul_(1 - lr * decay)
                m_hat = m / (1 - beta1**t)
                v_hat = v / (1 - beta2**t)
                p.addcdiv_(m_hat, v_hat.sqrt().add_(eps), value=-lr)
        return loss


def adamw_trajectory(weight: torch.Tensor, bias: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                     steps: int, lr: float, betas: tuple[float, float], eps: float,
                     weight_decay: float) -> list[torch.Tensor]:
    """Given (keep it as it is): trains nn.Linear on the mean squared error with YOUR AdamW."""
    model = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        model.weight.copy_(weight)
        model.bias.copy_(bias)
    optimizer = AdamW(model.parameters(), lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    for _ in range(steps):
        optimizer.zero_grad()
        ((model(inputs) - targets) ** 2).mean().backward()
        optimizer.step()
    return [model.weight.detach().clone(), model.bias.detach().clone()]


def get_batch(data: torch.Tensor, batch_size: int, context_length: int,
              device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    if data.dim() != 1 or data.numel() <= context_length:
        raise ValueError(f"data must be 1-D with more than context_length={context_length} tokens, "
                         f"got shape {tuple(data.shape)}")
    starts = torch.randint(0, data.numel() - context_length, (batch_size,))
    offsets = torch.arange(context_length)
    x = data[starts[:, None] + offsets]
    y = data[starts[:, None] + offsets + 1]
    return x.to(device), y.to(device)


# -- the model -------------------------------------------------------------------------------------------


class Block(nn.Module):
    """Pre-norm GPT block: x + attn(norm1(x)), then x + mlp(norm2(x)); torch's TransformerEncoderLayer names."""

    def __init__(self, d_model: int, num_heads: int, d_ff: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, d_model = x.shape
        d_head = d_model // self.num_heads
        q, k, v = (t.view(batch, length, self.num_heads, d_head).transpose(1, 2)
                   for t in self.in_proj(x).chunk(3, dim=-1))
        scores = q @ k.transpose(-2, -1) / math.sqrt(d_head)
        future = torch.ones(length, length, dtype=torch.bool, device=x.device).triu(1)
        weights = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        return self.out_proj((weights @ v).transpose(1, 2).reshape(batch, length, d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class TinyLM(nn.Module):
    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide d_model={d_model}")
        self.context_length = context_length
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(context_length, d_model)
        self.layers = nn.ModuleList(Block(d_model, num_heads, d_ff) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        for name, param in self.named_parameters():
            if param.dim() >= 2:
                nn.init.normal_(param, 0.0, 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(param)

    def load_torch_weights(self, state: dict[str, torch.Tensor]) -> None:
        renamed = {k.replace("self_attn.in_proj_weight", "in_proj.weight")
                    .replace("self_attn.in_proj_bias", "in_proj.bias")
                    .replace("self_attn.out_proj", "out_proj"): v for k, v in state.items()}
        self.load_state_dict(renamed)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        length = ids.shape[1]
        if length > self.context_length:
            raise ValueError(f"{length} tokens exceed the context length {self.context_length}")
        x = self.tok_emb(ids) + self.pos_emb(torch.arange(length, device=ids.device))
        for layer in self.layers:
            x = layer(x)
        return self.lm_head(self.norm(x))


# -- the training loop -----------------------------------------------------------------------------------


class Trainer:
    def __init__(self, config: dict[str, Any], seed: int = 0) -> None:
        self.config = dict(config)
        self.device = config.get("device", "cpu")
        torch.manual_seed(seed)
        self.model = TinyLM(config["vocab_size"], config["context_length"], config["d_model"],
                            config["num_layers"], config["num_heads"], config["d_ff"]).to(self.device)
        decay = [p for p in self.model.parameters() if p.dim() >= 2]
        no_decay = [p for p in self.model.parameters() if p.dim() < 2]
        self.optimizer = AdamW([{"params": decay, "weight_decay": config["weight_decay"]},
                                {"params": no_decay, "weight_decay": 0.0}],
                               lr=config["max_lr"], betas=tuple(config["betas"]), eps=config["eps"])
        self.step = 0

    def load_torch_weights(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_torch_weights({k: v.to(self.device) for k, v in state.items()})

    def lr(self, step: int) -> float:
        c = self.config
        return lr_cosine_schedule(step, c["max_lr"], c["min_lr"], c["warmup_iters"], c["cosine_cycle_iters"])

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr(self.step)
        self.model.train()
        x, y = x.to(self.device), y.to(self.device)
        logits = self.model(x)
        loss = cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        self.optimizer.zero_grad()
        loss.backward()
        params = [p for p in self.model.parameters()]
        clipped = clip_gradients([p.grad for p in params], self.config["max_grad_norm"])
        for p, g in zip(params, clipped, strict=True):
            p.grad = g
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    def train(self, data: torch.Tensor, num_steps: int) -> list[float]:
        c = self.config
        losses = []
        for _ in range(num_steps):
            x, y = get_batch(data, c["batch_size"], c["context_length"], self.device)
            losses.append(self.train_step(x, y))
        return losses

    @torch.no_grad()
    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(ids.to(self.device)).float().cpu()

    @torch.no_grad()
    def generate(self, prompt: list[int], max_new_tokens: int) -> list[int]:
        self.model.eval()
        ids = list(prompt)
        for _ in range(max_new_tokens):
            window = torch.tensor([ids[-self.model.context_length:]], device=self.device)
            ids.append(int(self.model(window)[0, -1].argmax()))
        return ids

    def save_checkpoint(self, path: str) -> None:
        torch.save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                    "step": self.step}, path)

    def load_checkpoint(self, path: str) -> int:
        state = torch.load(path, map_location=self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        return self.step
