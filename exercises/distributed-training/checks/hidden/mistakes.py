"""Classic data-parallel mistakes, replayed on the trusted side to name the one a student made.

It simulates the W ranks one by one (each its own model and optimizer, gradients combined as a mistaken
wrapper would combine them), so it is itself a data-parallel trainer: it stays out of student packs.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from helpers import FROZEN, RunSpec, trusted_model


def replicas(run: RunSpec, reports: list[dict[str, Any]], *, broadcast: bool = True, reduce: str = "mean",
             scale_loss: bool = True, zero_frozen: bool = False, tied_factor: float = 1.0
             ) -> list[list[dict[str, torch.Tensor]]]:
    """Each rank's state_dict after each step when the ranks combine gradients this way."""
    cfg = run.config
    w, k = run.world_size, run.accumulation_steps
    x, y = cfg["inputs"].double(), cfg["targets"].double()
    models = [trusted_model(cfg["initial_states"][0 if broadcast else r]) for r in range(w)]
    if zero_frozen:
        for m in models:
            for p in m.parameters():
                p.requires_grad_(True)
    opts = [torch.optim.SGD(m.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                            weight_decay=cfg["weight_decay"]) for m in models]
    out: list[list[dict[str, torch.Tensor]]] = [[] for _ in range(w)]
    for s in range(run.steps):
        for r, m in enumerate(models):
            for micro in reports[r]["indices"][s]:
                loss = F.mse_loss(m(x[micro]), y[micro])
                (loss / k if scale_loss else loss).backward()
            if zero_frozen:
                for name, p in m.named_parameters():
                    if name in FROZEN:
                        p.grad = torch.zeros_like(p)
        params = [list(m.parameters()) for m in models]
        for i in range(len(params[0])):
            grads = [ps[i].grad for ps in params]
            if grads[0] is None:
                continue
            total = torch.stack(grads).sum(0)
            combined = {"mean": [total / w] * w, "sum": [total] * w, "half": [total / 2] * w, "none": grads}[reduce]
            for r in range(w):
                factor = tied_factor if params[r][i] is models[r].inp.weight else 1.0
                params[r][i].grad = combined[r].clone() * factor
        for r in range(w):
            opts[r].step()
            opts[r].zero_grad(set_to_none=True)
            out[r].append({n: v.detach().clone() for n, v in models[r].state_dict().items()})
    return out


def _variants(run: RunSpec) -> list[tuple[str, dict[str, Any]]]:
    w, k = run.world_size, run.accumulation_steps
    found = [
        ("the gradients are SUMMED over the ranks, not averaged: divide the all-reduced gradients by the world "
         f"size ({w}); DistributedDataParallel averages for you", {"reduce": "sum"}),
        ("the ranks never shared rank 0's starting weights: rank r trained from initial_states[r]; broadcast "
         "every parameter (frozen ones too) from rank 0 before the first step, as DistributedDataParallel does "
         "when it wraps the model", {"broadcast": False}),
        ("each rank stepped on its own shard's gradient: the gradients were never all-reduced (does the forward "
         "pass go through the DDP-wrapped model, not ddp_model.module? does the last micro-batch run outside "
         "no_sync()?)", {"reduce": "none"}),
        ("frozen parameters (requires_grad=False) moved: they got zero gradients, and weight decay pulls any "
         "parameter with a gradient; leave their .grad None (skip them when you all-reduce)", {"zero_frozen": True}),
        (f"the shared weight (inp.weight IS mid.weight) got {w} times its averaged gradient: it was all-reduced "
         "once per layer that uses it; reduce each Parameter once (model.parameters() lists it once)",
         {"tied_factor": float(w)}),
    ]
    if w != 2:
        found.insert(1, (f"the summed gradients are divided by 2, not by the world size ({w}): divide by "
                         "dist.get_world_size()", {"reduce": "half"}))
    if k > 1:
        found.insert(0, (f"the accumulated gradient is {k} times too large: divide each micro-batch loss by "
                         f"accumulation_steps ({k}) before backward", {"scale_loss": False}))
    return found


def _matches(student: list[dict[str, Any]], simulated: list[list[dict[str, torch.Tensor]]], rtol: float,
             atol: float) -> bool:
    for rep, sim in zip(student, simulated, strict=True):
        for got, want in zip(rep["params"], sim, strict=True):
            for name, value in want.items():
                if not torch.allclose(got[name], value, rtol=rtol, atol=atol):
                    return False
    return True


def diagnose(run: RunSpec, reports: list[dict[str, Any]], rtol: float, atol: float) -> str | None:
    """The description of the first classic mistake that reproduces the student's parameters, if any."""
    for text, options in _variants(run):
        if _matches(reports, replicas(run, reports, **options), rtol, atol):
            return text
    return None
