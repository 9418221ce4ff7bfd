"""A tiny Transformer language model and its training loop, every piece written by you.

What you build, in the order the checks test it (each piece is also what the next one uses):
  1. cross_entropy: the training loss, numerically stable for huge logits.
  2. clip_gradients: one norm over all gradients, scaled down when it exceeds a maximum.
  3. AdamW: Adam with decoupled weight decay (Loshchilov & Hutter 2019, https://arxiv.org/abs/1711.05101,
     Algorithm 2), as a torch.optim.Optimizer subclass.
  4. lr_cosine_schedule: linear warm-up, then a cosine decay to min_lr (Loshchilov & Hutter 2017, SGDR).
  5. get_batch: random windows of a token stream, the targets shifted by one.
  6. TinyLM: a decoder-only (GPT-style) Transformer (Radford et al. 2019), pre-norm.
  7. Trainer: the loop that ties them together, greedy generation, checkpoints.
Course notes this follows: Stanford CS336 assignment 1 ("Transformer LM from scratch"), and Karpathy's nanoGPT.
Do not call torch.optim.AdamW, F.cross_entropy, torch.nn.utils.clip_grad_norm_, nn.TransformerEncoderLayer,
nn.MultiheadAttention or F.scaled_dot_product_attention: the checks compare your pieces with them. nn.Linear,
nn.Embedding, nn.LayerNorm, F.gelu and tensor operations are yours to use.

The toy task: the held-out check trains your Trainer on a token stream drawn from a small probabilistic grammar
("some happy cats chase a dog and the birds ."), 28 word types, and measures the loss of your model's logits
on sentences it never saw, recomputed by the grader. The grammar's exact next-word probabilities are known to the
grader: the held-out loss must come near the text's entropy floor within the step budget, and a loss BELOW the
floor means the answers leaked into the inputs (targets not shifted, attention to the future) and fails too.

How the checks drive your code (only plain data crosses the sandbox boundary; objects stay in the sandbox):
    loss = cross_entropy(logits, targets);  grads = clip_gradients(grads, 1.0);  lr = lr_cosine_schedule(...)
    w, b = adamw_trajectory(...)              # already written for you: it runs YOUR AdamW
    x, y = get_batch(data, 32, 16, "cpu")
    model = TinyLM(28, 8, 16, 2, 2, 32);  model.load_torch_weights(state);  model.eval();  model.forward(ids)
    trainer = Trainer(config, seed);  trainer.train(data, 150);  trainer.train_step(x, y);  trainer.logits(ids)
    trainer.generate([0, 5], 20);  trainer.save_checkpoint("run.ckpt");  Trainer(config, 1).load_checkpoint(...)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The mean negative log-likelihood of the targets: what F.cross_entropy(logits, targets) returns.

    loss = mean over rows i of ( logsumexp(logits[i]) - logits[i, targets[i]] ),
    logsumexp(z) = m + log(sum(exp(z - m))) with m = max(z): without subtracting m, exp overflows float32 for
    logits above ~88 (the checks use logits x 1000 and + 10^4). The result must stay differentiable (the
    Trainer backpropagates through it).

    Args:
        logits: (N, V) float32 or float64, unnormalised scores.
        targets: (N,) int64 class indices in [0, V).

    Returns:
        A 0-dimensional tensor in the logits' dtype.
    """
    raise NotImplementedError


def clip_gradients(grads: Sequence[torch.Tensor | None], max_norm: float) -> list[torch.Tensor | None]:
    """Clip gradients by their TOTAL L2 norm, as torch.nn.utils.clip_grad_norm_ does.

    total = sqrt(sum over every gradient g of sum(g ** 2)) (one norm for all of them together). When
    total > max_norm, every gradient is multiplied by max_norm / (total + 1e-6); otherwise all are left as they
    are. None (a frozen parameter's gradient) stays None and does not count.

    Returns:
        A list as long as ``grads``: new tensors (same shapes) or None.
    """
    raise NotImplementedError


class AdamW(torch.optim.Optimizer):
    """AdamW, decoupled weight decay; param groups may override any hyperparameter (e.g. weight_decay=0).

    For each parameter p with gradient g, keeping m, v (zeros at first) and its own step count t (1 at the
    first update) in ``self.state[p]``:
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr * weight_decay * p                                   (decoupled: never added to g)
        p = p - lr * (m / (1 - beta1 ** t)) / (sqrt(v / (1 - beta2 ** t)) + eps)
    Parameters whose .grad is None are skipped. Read lr and the rest from each param group at every step
    (the Trainer changes lr before each step). Subclassing torch.optim.Optimizer gives you zero_grad(),
    param_groups and state_dict()/load_state_dict() (checkpoints) for free.
    """

    def __init__(self, params: Iterable[Any], lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.01) -> None:
        raise NotImplementedError

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        raise NotImplementedError


def adamw_trajectory(weight: torch.Tensor, bias: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor,
                     steps: int, lr: float, betas: tuple[float, float], eps: float,
                     weight_decay: float) -> list[torch.Tensor]:
    """Given (keep it as it is): trains nn.Linear on the mean squared error with YOUR AdamW; [weight, bias]."""
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


def lr_cosine_schedule(it: int, max_lr: float, min_lr: float, warmup_iters: int, cosine_cycle_iters: int) -> float:
    """The learning rate at iteration ``it`` (0, 1, 2, ...), a Python float.

        it < warmup_iters:                     max_lr * it / warmup_iters        (so 0 at it = 0)
        warmup_iters <= it <= cosine_cycle_iters:
            min_lr + 0.5 * (1 + cos(pi * (it - warmup_iters) / (cosine_cycle_iters - warmup_iters))) * (max_lr - min_lr)
        it > cosine_cycle_iters:               min_lr
    warmup_iters may be 0 (no warm-up); cosine_cycle_iters > warmup_iters.
    """
    raise NotImplementedError


def get_batch(data: torch.Tensor, batch_size: int, context_length: int,
              device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` training windows from a 1-D token stream.

    Each row draws its own start s uniformly from 0 .. len(data) - context_length - 1 (both ends included;
    torch.randint(0, len(data) - context_length, ...), which uses torch's global generator, seeded by the
    grader): x = data[s : s + context_length], y = data[s + 1 : s + 1 + context_length] (the NEXT tokens).

    Args:
        data: (n,) int64 token ids.
        device: where x and y go ("cpu", "cuda", "cuda:0"...): an unknown device raises whatever torch raises.

    Returns:
        (x, y), both (batch_size, context_length) int64 on ``device``.

    Raises:
        ValueError: when data is not 1-D, or has context_length tokens or fewer.
    """
    raise NotImplementedError


class TinyLM(nn.Module):
    """A GPT-style decoder-only Transformer, pre-norm, no dropout; (batch, T) ids -> (batch, T, V) logits.

        h = tok_emb(ids) + pos_emb(arange(T))        nn.Embedding(V, d), learned positions nn.Embedding(C, d)
        for each of num_layers blocks:
            h = h + Attn(norm1(h))                   causal multi-head self-attention, num_heads heads
            h = h + linear2(gelu(linear1(norm2(h)))) linear1: d -> d_ff, exact (erf) GELU, linear2: d_ff -> d
        logits = lm_head(norm(h))                    nn.Linear(d, V, bias=False), no softmax
    Attn(z): q, k, v = the three d-row chunks of z @ in_proj_weight.T + in_proj_bias; heads split as
    view(B, T, h, d/h).transpose(1, 2); scores = q k^T / sqrt(d/h) with keys j > i set to -inf (causal: a
    position never sees the future); softmax over the keys; merge the heads; out_proj. LayerNorms: eps 1e-5.
    T may be anything up to context_length.

    WEIGHTS: ``load_torch_weights`` receives a state dict in torch's layout (the block is exactly a
    nn.TransformerEncoderLayer(d, h, d_ff, dropout=0, activation="gelu", norm_first=True, batch_first=True)):
        tok_emb.weight (V, d), pos_emb.weight (C, d), norm.weight, norm.bias (d,), lm_head.weight (V, d), and
        per block i: layers.{i}.self_attn.in_proj_weight (3d, d), layers.{i}.self_attn.in_proj_bias (3d,),
        layers.{i}.self_attn.out_proj.weight (d, d), .bias (d,), layers.{i}.linear1.weight (d_ff, d), .bias,
        layers.{i}.linear2.weight (d, d_ff), .bias, layers.{i}.norm1.weight, .bias, layers.{i}.norm2.weight, .bias
    Initialise the weights yourself (e.g. normal(0, 0.02) for embeddings and linear weights, zero biases).

    Raises:
        ValueError: when num_heads does not divide d_model.
    """

    def __init__(self, vocab_size: int, context_length: int, d_model: int, num_layers: int, num_heads: int,
                 d_ff: int) -> None:
        super().__init__()
        raise NotImplementedError

    def load_torch_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Copy a state dict in the layout above into this model."""
        raise NotImplementedError

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Trainer:
    """The model, its optimiser and the training loop.

    ``config`` (a dict) holds: vocab_size, context_length, d_model, num_layers, num_heads, d_ff (the TinyLM),
    batch_size, max_lr, min_lr, warmup_iters, cosine_cycle_iters (the schedule), weight_decay, betas (two
    floats), eps (AdamW), max_grad_norm (clipping), device ("cpu" or "cuda").

    __init__: torch.manual_seed(seed), then build the TinyLM on ``device`` (one seed, one initial model) and
    AdamW over two param groups: parameters with 2 or more dimensions (embeddings, linear weights) with
    weight_decay, the others (biases, LayerNorm) with weight_decay 0. ``self.step = 0``.
    """

    def __init__(self, config: dict[str, Any], seed: int = 0) -> None:
        raise NotImplementedError

    def load_torch_weights(self, state: dict[str, torch.Tensor]) -> None:
        """Load TinyLM weights (the layout of TinyLM.load_torch_weights) into the trainer's model."""
        raise NotImplementedError

    def train_step(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """One optimisation step on the batch (x, y), both (B, T) int64; returns the loss BEFORE the update.

        In this order: lr = lr_cosine_schedule(self.step, ...) set on every param group; model.train();
        logits = model(x); loss = cross_entropy over all B*T positions (reshape to (B*T, V) and (B*T,));
        zero the gradients; backward; clip_gradients over all parameters' .grad to max_grad_norm (write the
        clipped ones back); optimizer.step(); self.step += 1.
        """
        raise NotImplementedError

    def train(self, data: torch.Tensor, num_steps: int) -> list[float]:
        """``num_steps`` steps, each on a fresh get_batch(data, batch_size, context_length, device); the losses."""
        raise NotImplementedError

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """The model's logits (B, T, V) float32 for ids (B, T), in eval mode, without gradients, on the CPU."""
        raise NotImplementedError

    def generate(self, prompt: list[int], max_new_tokens: int) -> list[int]:
        """Greedy decoding: the prompt followed by max_new_tokens tokens, each the argmax of the logits at the
        last position given the last context_length tokens so far (ids[-context_length:]); eval mode."""
        raise NotImplementedError

    def save_checkpoint(self, path: str) -> None:
        """Save the model, the optimiser (its state_dict) and the step to ``path`` (torch.save).

        The checks pass a relative path: it lands in the sandbox's scratch folder (the working directory).
        """
        raise NotImplementedError

    def load_checkpoint(self, path: str) -> int:
        """Restore the model, the optimiser and the step saved at ``path``; return the step (an int)."""
        raise NotImplementedError
