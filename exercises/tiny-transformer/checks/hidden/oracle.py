"""The training step recomputed with torch's own pieces, and its classic mistakes (trusted side).

This module implements the exercise's schedule and training step, so it lives beside the hidden checks and
is left out of student packs.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F


def lr_cosine_schedule(it: int, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int) -> float:
    if it < warmup_iters:
        return max_lr * it / warmup_iters
    if it <= cosine_cycle_iters:
        progress = (it - warmup_iters) / (cosine_cycle_iters - warmup_iters)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)
    return min_lr


def train_steps(model: torch.nn.Module, config: dict[str, Any], batches: list[tuple[torch.Tensor, torch.Tensor]],
                *, mistake: str = "", decay_after: bool = False) -> tuple[list[float], list[float], torch.nn.Module]:
    """Train a copy of ``model`` on ``batches``: (losses, gradient norms before clipping, the trained copy).

    ``decay_after`` applies the decoupled decay after the Adam update instead of before it (the order some
    course notes give; it differs by lr^2 terms only). ``mistake`` recomputes a classic error instead:
    "no-zero-grad", "constant-lr", "decay-everything", "no-clipping".
    """
    model = copy.deepcopy(model)
    params = list(model.parameters())
    everything = mistake == "decay-everything"
    groups = [{"params": [p for p in params if p.dim() >= 2 or everything], "weight_decay": config["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2 and not everything], "weight_decay": 0.0}]
    kind = torch.optim.Adam if decay_after else torch.optim.AdamW
    optimizer = kind([g for g in groups if g["params"]], lr=config["max_lr"], betas=tuple(config["betas"]),
                     eps=config["eps"])
    if decay_after:  # torch's Adam would add the decay to the gradient: keep it aside and apply it by hand
        decays = [g.pop("weight_decay") for g in optimizer.param_groups]
        for group in optimizer.param_groups:
            group["weight_decay"] = 0.0
    losses, norms = [], []
    for step, (x, y) in enumerate(batches):
        lr = config["max_lr"] if mistake == "constant-lr" else lr_cosine_schedule(
            step, config["max_lr"], config["min_lr"], config["warmup_iters"], config["cosine_cycle_iters"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        if mistake != "no-zero-grad":
            optimizer.zero_grad()
        loss.backward()
        max_norm = math.inf if mistake == "no-clipping" else config["max_grad_norm"]
        norms.append(float(torch.nn.utils.clip_grad_norm_(params, max_norm)))
        optimizer.step()
        if decay_after:
            with torch.no_grad():
                for group, decay in zip(optimizer.param_groups, decays, strict=True):
                    for p in group["params"]:
                        p.mul_(1 - lr * decay)
        losses.append(float(loss.detach()))
    return losses, norms, model


MISTAKES = {
    "no-zero-grad": "the gradients accumulate across steps: call optimizer.zero_grad() every step",
    "constant-lr": "the learning rate stays at max_lr: set every param group's lr to lr_cosine_schedule(step, ...) "
                   "before each step (it is 0 at step 0)",
    "decay-everything": "weight decay reaches biases and LayerNorm parameters: decay only parameters with 2 or more "
                        "dimensions (a second param group with weight_decay=0)",
    "no-clipping": "the gradients are not clipped: clip their total norm to max_grad_norm before optimizer.step()",
}
