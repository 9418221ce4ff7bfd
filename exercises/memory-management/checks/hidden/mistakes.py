"""Classic gradient-accumulation mistakes, recomputed, to name the one a wrong gradient matches (trusted side).

This module accumulates gradients the right way and the wrong ways, so it lives beside the hidden checks
and is left out of student packs; the conftest loads it when it is there.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F

IGNORE = -100

#: how each mistake weights micro-batch i's summed token loss s_i (n_i its target tokens, N = sum n_i,
#: m_i its attention-mask count, M = sum m_i, k the number of micro-batches)
WEIGHTS: dict[str, tuple[Callable[..., float], str]] = {
    "mean_of_means": (lambda n, N, m, M, k, i: 1.0 / (max(n, 1) * k),
                      "your gradient is the MEAN OF PER-MICRO-BATCH MEANS ((s1/n1 + s2/n2)/k): with micro-batches of "
                      "different lengths that is not the window's token mean. Divide each micro-batch's token-loss "
                      "SUM by the window's total target-token count N_window instead"),
    "sum_of_means": (lambda n, N, m, M, k, i: 1.0 / max(n, 1),
                     "your gradient is the SUM of per-micro-batch means: it is k times too large, and still "
                     "wrong for unequal lengths. Divide each micro-batch's token-loss sum by the window's "
                     "target-token count"),
    "sums": (lambda n, N, m, M, k, i: 1.0,
             "your gradient is the gradient of the summed token losses: divide by the window's target-token count"),
    "mask_count": (lambda n, N, m, M, k, i: 1.0 / max(M, 1),
                   "you divide by the number of REAL tokens (attention_mask), but prompt tokens and each sequence's "
                   "last token are not targets: count target tokens with labels != -100"),
    "last_only": (lambda n, N, m, M, k, i: (1.0 / max(N, 1)) if i == k - 1 else 0.0,
                  "only the LAST micro-batch's gradient is left: zero_grad() runs before every micro-batch. Zero the "
                  "gradients once per window, before its first micro-batch"),
    "last_only_mean": (lambda n, N, m, M, k, i: (1.0 / max(n, 1)) if i == k - 1 else 0.0,
                       "only the LAST micro-batch's gradient (its own mean) is left: zero_grad() runs before every "
                       "micro-batch. Zero the gradients once per window, and divide by the window's token count"),
}


def _weighted_grads(given: ModuleType, config: dict[str, int], state: dict[str, torch.Tensor],
                    micro: list[dict[str, torch.Tensor]], weight: Callable[..., float]) -> dict[str, torch.Tensor]:
    model = given.build_model(config, state)
    counts = [int((mb["labels"] != IGNORE).sum()) for mb in micro]
    masks = [int(mb["attention_mask"].sum()) for mb in micro]
    for i, mb in enumerate(micro):
        logits = model(mb["input_ids"])
        s = F.cross_entropy(logits.flatten(0, 1), mb["labels"].flatten(), ignore_index=IGNORE, reduction="sum")
        (s * weight(counts[i], sum(counts), masks[i], sum(masks), len(micro), i)).backward()
    return {n: (p.grad if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


def _matches(got: dict[str, Any], want: dict[str, torch.Tensor]) -> bool:
    for name, w in want.items():
        g = got.get(name)
        if not isinstance(g, torch.Tensor) or g.shape != w.shape:
            return False
        if not torch.allclose(g.double(), w.double(), rtol=1e-3, atol=1e-6):
            return False
    return True


def name_window_mistake(given: ModuleType, config: dict[str, int], state: dict[str, torch.Tensor],
                        micro: list[dict[str, torch.Tensor]], got: dict[str, Any]) -> str | None:
    """The advice for the first classic mistake whose gradient equals ``got['grads']``, else None."""
    grads = got.get("grads")
    if not isinstance(grads, dict):
        return None
    for weight, advice in WEIGHTS.values():
        if _matches(grads, _weighted_grads(given, config, state, micro, weight)):
            return advice
    return None
