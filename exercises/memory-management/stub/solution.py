"""Memory management for training: gradient accumulation, bf16 mixed precision, activation checkpointing.

Three ways to train a model whose batch does not fit in memory, on a small causal language model that is
GIVEN below (``TinyLM``: do not change it; the grader builds the same model on its side).

1. GRADIENT ACCUMULATION: split one optimiser step's batch (a "window") into k micro-batches, run
   forward + backward on each (``.grad`` adds up across backward calls), and step the optimiser once per
   window. Done right, the gradient equals the one big batch's gradient to rounding error, and training
   with k micro-batches gives the same weights as training with the big batches.

   THE PITFALL (shipped in popular libraries: transformers issues #24725 / #34191, the HF blog post "Fixing
   gradient accumulation", torchtune #1875). A language-model loss is a mean over TARGET TOKENS. With
   micro-batches of different lengths, the mean of per-micro-batch means is not the window's mean:
   (s1/n1 + s2/n2) / 2 != (s1 + s2) / (n1 + n2). The right loss for micro-batch i of a window is
       loss_i = sum of token cross-entropies in micro-batch i / N_window
   where N_window counts the target tokens (labels != IGNORE_INDEX) of ALL micro-batches of the window
   (transformers calls it ``num_items_in_batch``). Count it before the first backward of the window.

   The optimiser and the learning-rate scheduler step once per window: N times for N windows, never
   N * k. ``zero_grad`` once per window, before its first micro-batch. When the micro-batches run out in
   the middle of a window, that last, partial window is still a step of its own, normalised by its own
   token count (do not drop it, do not divide by k).

2. MIXED PRECISION (https://pytorch.org/docs/stable/amp.html): under
   ``torch.autocast("cpu", dtype=torch.bfloat16)`` matmuls and linear layers run in bfloat16, while the
   PARAMETERS STAY FLOAT32 (the optimiser updates fp32 master weights; never ``model.to(torch.bfloat16)``
   or ``model.half()``). CPU autocast is bf16 only; float16 and GradScaler are GPU tools. Run the forward
   pass (model and loss) inside the autocast region and ``backward()`` outside it. The logits come out
   in bf16: compute the cross-entropy in float32 (``logits.float()``).

3. ACTIVATION CHECKPOINTING (https://pytorch.org/docs/stable/checkpoint.html, Chen et al. 2016,
   https://arxiv.org/abs/1604.06174): instead of keeping every block's activations for backward, keep
   only each block's input and recompute the block during backward:
       x = model.embed(input_ids)
       for block in model.blocks: x = torch.utils.checkpoint.checkpoint(block, x, use_reentrant=False)
       logits = model.head(x)
   Checkpoint EACH block (the checks count block forwards: with checkpointing every block runs twice per
   micro-batch, once forward and once recomputed in backward). The gradients are the same.

DATA. A micro-batch is a dict of int64 tensors of one shape (b, t): ``input_ids``, ``labels`` and
``attention_mask`` (1 for real tokens, 0 for padding). Sequences are right-padded; ``labels[i, j]`` is
the target of position j (already shifted: compare ``logits[i, j]`` with ``labels[i, j]``) and is
IGNORE_INDEX (-100) at padding and at prompt tokens that must not be learnt. So count target tokens
with ``labels != IGNORE_INDEX``, not with ``attention_mask``. Micro-batches of one window have different
b and t. A model is given as ``config`` (a dict: vocab_size, d_model, n_heads, n_layers, max_len) and
``state_dict`` (name -> fp32 tensor): build it with ``build_model(config, state_dict)``. Only plain data
crosses to the grader: floats, ints, lists and dicts of tensors (``.detach().clone()`` them).

Peak memory: CPU has no allocator counter such as ``torch.cuda.max_memory_allocated``; on a GPU (the
grader's ``gpu`` profile) ``loss_and_grads`` also reports the peak CUDA memory of its work.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

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


# -- YOUR WORK ------------------------------------------------------------------------------------------------
def token_loss_sum(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The SUM of token cross-entropies over target tokens, and how many target tokens there are.

    Args:
        logits: (b, t, vocab) float32 or bfloat16 (compute in float32).
        labels: (b, t) int64; IGNORE_INDEX marks positions that are not targets.

    Returns:
        (a 0-dim float32 tensor that keeps its graph for backward, an int). With no target token at all,
        (0.0, 0): never NaN.

    Raises:
        ValueError: when logits is not 3-D or labels' shape is not logits.shape[:2].
    """
    raise NotImplementedError


def forward_logits(config: dict[str, int], state_dict: dict[str, torch.Tensor], input_ids: torch.Tensor, *,
                   autocast: bool = False, checkpointing: bool = False) -> torch.Tensor:
    """The model's logits for ``input_ids`` (b, t), under no_grad.

    autocast=True runs the forward under ``torch.autocast("cpu", dtype=torch.bfloat16)`` and returns the
    logits as autocast leaves them (bfloat16: do not cast them back); otherwise float32.
    checkpointing=True runs each block through ``torch.utils.checkpoint.checkpoint`` (same values).
    """
    raise NotImplementedError


def loss_and_grads(config: dict[str, int], state_dict: dict[str, torch.Tensor],
                   micro_batches: list[dict[str, torch.Tensor]], *, autocast: bool = False,
                   checkpointing: bool = False, device: str = "cpu") -> dict[str, Any]:
    """Accumulate ONE window's gradient over ``micro_batches``, as one optimiser step would see it.

    Builds the model fresh, runs forward + backward on each micro-batch in turn (never all at once: that
    is what accumulation saves), with loss_i = token_loss_sum_i / N_window. One micro-batch is the plain
    big-batch case. A micro-batch may have no target token at all: it then adds nothing.

    Args:
        autocast: forward passes under bf16 autocast (on ``device``'s type); parameters and grads stay fp32.
        checkpointing: every block checkpointed (see the module docstring).
        device: "cpu", or "cuda" under the grader's gpu profile (move the model and the batches there).

    Returns:
        {"loss": the window's mean token loss (float), "num_tokens": N_window (int),
         "grads": {parameter name: its .grad, fp32, on the CPU; zeros where a parameter got no gradient},
         "block_forwards": block_forwards(model) (int),
         "peak_memory_bytes": on CUDA, torch.cuda.max_memory_allocated() after
             torch.cuda.reset_peak_memory_stats() at the start, minus the memory allocated at the start
             (int); on the CPU None}

    Raises:
        ValueError: when ``micro_batches`` is empty.
    """
    raise NotImplementedError


class AccumulationTrainer:
    """Train a TinyLM with gradient accumulation: one AdamW step per window of ``accumulation_steps``.

    The optimiser is ``torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)`` (torch's
    defaults otherwise), and the scheduler ``torch.optim.lr_scheduler.LambdaLR`` with the factor
    ``min(1, (step + 1) / warmup_steps)`` (linear warm-up, then constant): optimiser step s (s = 0, 1, ...)
    uses lr * min(1, (s + 1) / warmup_steps). Both live as long as the trainer: a second ``train`` call
    continues the same optimiser state and schedule.

    Raises:
        ValueError: when accumulation_steps < 1 or warmup_steps < 1.
    """

    def __init__(self, config: dict[str, int], state_dict: dict[str, torch.Tensor], *, accumulation_steps: int,
                 lr: float = 1e-2, warmup_steps: int = 1, weight_decay: float = 0.0, autocast: bool = False,
                 checkpointing: bool = False) -> None:
        raise NotImplementedError

    def train(self, micro_batches: list[dict[str, torch.Tensor]]) -> dict[str, list[float]]:
        """Train on ``micro_batches``, in windows of accumulation_steps (the last one may be partial).

        Returns one entry per OPTIMISER STEP: {"losses": the window's mean token loss,
        "lrs": the learning rate that step used, "grad_norms": the L2 norm of the whole accumulated
        gradient (all parameters together) just before the step}.
        """
        raise NotImplementedError

    def optimizer_steps(self) -> int:
        """How many optimiser steps were taken since the trainer was built."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The model's current weights as a plain dict of fp32 copies (``model.state_dict()`` is an OrderedDict,
        which cannot cross to the grader: ``{k: v.detach().clone() for k, v in model.state_dict().items()}``)."""
        raise NotImplementedError
