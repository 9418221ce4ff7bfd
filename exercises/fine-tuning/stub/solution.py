"""Fine-tuning a pre-trained encoder for sentiment: the whole model, with a proper training loop.

In the pretrained-classifier exercise the encoder was frozen and only a linear head learned. Here the
WHOLE model learns: every encoder weight and the head, end to end (Devlin et al. 2019,
https://arxiv.org/abs/1810.04805, section 4; Howard & Ruder 2018, https://arxiv.org/abs/1801.06146, on why
the learning rate must warm up and decay when a pre-trained network is fine-tuned). The loop is the one that
``transformers.Trainer`` runs, written by hand:

    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)   # decoupled decay
    scheduler = linear warm-up from 0 to lr over warmup_steps, then linear decay to 0 at total_steps
    for each batch:
        loss = F.cross_entropy(model(**inputs), labels)        # mean over the batch
        optimizer.zero_grad()                                  # gradients do not accumulate across steps
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)   # global L2 norm
        optimizer.step()                                       # with the lr the scheduler set for THIS step
        scheduler.step()                                       # after optimizer.step(), once per step

THE SCHEDULE is ``transformers.get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)``: the
learning rate used at step s (s = 0, 1, ...; the first step is s = 0) is

    lr * s / max(1, warmup_steps)                                    while s < warmup_steps
    lr * max(0, (total_steps - s) / max(1, total_steps - warmup_steps))    afterwards

so with warm-up the FIRST step has learning rate 0, and the rate reaches 0 at s = total_steps. You may
call the library's function or write the LambdaLR yourself; the checks compare with the library.

WEIGHT DECAY: AdamW's decoupled decay (Loshchilov & Hutter 2019, https://arxiv.org/abs/1711.05101), not
Adam with an L2 term (``torch.optim.Adam(weight_decay=...)`` adds the decay to the gradient: different).
Decaying every parameter, or exempting biases and LayerNorm weights as transformers' Trainer does, are
both accepted. AdamW's other settings are torch's defaults: betas (0.9, 0.999), eps 1e-8.

EVALUATION runs in eval mode (``model.eval()``: dropout off, so the same text always gets the same logits)
and without gradients (``torch.no_grad()``); training runs in train mode (``model.train()``, dropout on).

SEED: ``seed`` makes training reproducible: seed the global RNG (``torch.manual_seed(seed)``: dropout draws
from it) at the start of ``train_classifier``, and draw the batches of ``fit`` with a
``torch.Generator().manual_seed(seed)``. The same seed gives the same losses and the same model.

THE MODEL (``SentimentFineTuner``) is the packaged encoder (asset ``encoder-small``: all-MiniLM-L6-v2, 6
layers, hidden size 384), loaded with ``AutoModel.from_pretrained(model_dir)`` and its own tokenizer, then:

    sentence vector = mean of the last hidden states over the REAL tokens (attention_mask 1)
    logits          = Linear(hidden_size, num_labels)(Dropout(0.1)(sentence vector))     the new head

(as in the pretrained-classifier exercise), all of it trained by ``train_classifier``. Full fine-tuning
wants a far smaller learning rate than a lone head (1e-2 there): ``lr=3e-4`` here, for a few dozen steps (a
rate of 1e-3 and more tends to wreck the pre-trained weights: the model then predicts one class only).

COST (2 CPU cores): one step of batch 16 at most 32 tokens takes about a second. The checks train for a
few dozen steps and then score your classifier on hidden sentences they generate, which your code never
sees, against the majority-class baseline; the mechanics of ``train_classifier`` are checked on a tiny
known model (``train_linear``, given below: do not change it) against AdamW's update worked out by hand.
Only plain data crosses the sandbox boundary: tensors, lists, dicts.
"""

from __future__ import annotations

import torch
from torch import nn


def lr_at(step: int, base_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate of step ``step`` (0-based) under linear warm-up and linear decay (see above).

    Equal to what ``get_linear_schedule_with_warmup(optimizer, warmup_steps, total_steps)`` gives an optimizer
    built with ``lr=base_lr`` at that step; 0.0 from ``total_steps`` on; ``warmup_steps`` may be 0.
    """
    raise NotImplementedError


def train_classifier(model: nn.Module, batches: list[dict[str, torch.Tensor]], *, lr: float, warmup_steps: int,
                     max_grad_norm: float, weight_decay: float = 0.01, seed: int = 0) -> dict[str, list[float]]:
    """Train ``model`` for exactly ``len(batches)`` steps, one step per batch, in order (see the loop above).

    Args:
        model: an nn.Module whose ``forward(**inputs)`` returns (batch, num_labels) logits, where ``inputs`` is
            the batch dict without its "labels" entry.
        batches: dicts of tensors, each with "labels" (batch,) int64 and the model's inputs.
        lr, warmup_steps: the schedule's peak rate and warm-up length; total_steps = len(batches).
        max_grad_norm: clip the global gradient L2 norm to this before each optimiser step.
        weight_decay: AdamW's decoupled weight decay.
        seed: ``torch.manual_seed(seed)`` first (dropout masks).

    Returns:
        {"losses": the loss of each step, "lrs": the learning rate each step USED (0.0 for the first step when
        warmup_steps > 0), "grad_norms": the global gradient norm of each step BEFORE clipping (what
        clip_grad_norm_ returns)}, each a list of ``len(batches)`` Python floats. The model is left in eval mode.
    """
    raise NotImplementedError


class _LinearProbe(nn.Module):
    """GIVEN (do not change): the checks' tiny known model, a dropout then a linear layer on feature vectors."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.linear = nn.Linear(weight.shape[1], weight.shape[0], dtype=weight.dtype)
        with torch.no_grad():
            self.linear.weight.copy_(weight)
            self.linear.bias.copy_(bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(self.dropout(features))


def train_linear(weight: torch.Tensor, bias: torch.Tensor, batches: list[dict[str, torch.Tensor]], *, lr: float,
                 warmup_steps: int, max_grad_norm: float, weight_decay: float = 0.01, dropout: float = 0.0,
                 seed: int = 0) -> dict[str, object]:
    """GIVEN (do not change): train the tiny model with YOUR train_classifier; the checks call this.

    batches: dicts {"features": (batch, in_features), "labels": (batch,) int64}. Returns the trained weight and
    bias with train_classifier's history.
    """
    model = _LinearProbe(weight, bias, dropout)
    history = train_classifier(model, batches, lr=lr, warmup_steps=warmup_steps, max_grad_norm=max_grad_norm,
                               weight_decay=weight_decay, seed=seed)
    return {"weight": model.linear.weight.detach().clone(), "bias": model.linear.bias.detach().clone(), **history}


class SentimentFineTuner:
    """The packaged encoder, mean pooling and a new linear head, all fine-tuned together.

    The checks call it like this:
        ft = SentimentFineTuner(model_dir, num_labels=2, seed=0)
        ft.embed(texts); ft.logits(texts); ft.predict(texts)
        history = ft.fit(texts, labels, steps=40, seed=0)       # {"losses", "lrs", "grad_norms"}

    Labels are those of the ``sentiment-sentences`` asset (``sentences.tsv``: ``label<TAB>text``): 0 negative,
    1 positive; the head's output k is the score of label k, so ``predict`` returns the label itself.
    """

    def __init__(self, model_dir: str, num_labels: int = 2, max_length: int = 32, seed: int = 0) -> None:
        """Load the tokenizer and the pre-trained encoder from ``model_dir``; create the head (random) under
        ``torch.manual_seed(seed)``, so that the same seed builds the same initial model."""
        raise NotImplementedError

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """{"input_ids", "attention_mask"}: (batch, seq) int64, padded, truncated at max_length."""
        raise NotImplementedError

    def embed(self, texts: list[str]) -> torch.Tensor:
        """The CURRENT encoder's mean-pooled sentence vectors, (len(texts), hidden_size) float32, eval mode, no
        gradients. Before ``fit`` these are the packaged encoder's; after ``fit`` they have moved."""
        raise NotImplementedError

    def logits(self, texts: list[str]) -> torch.Tensor:
        """(len(texts), num_labels) float32 logits, eval mode (deterministic), no gradients."""
        raise NotImplementedError

    def predict(self, texts: list[str]) -> list[int]:
        """The index of each text's largest logit, as Python ints."""
        raise NotImplementedError

    def fit(self, texts: list[str], labels: list[int], steps: int, batch_size: int = 16, lr: float = 3e-4,
            warmup_ratio: float = 0.1, max_grad_norm: float = 1.0, weight_decay: float = 0.01,
            seed: int = 0) -> dict[str, list[float]]:
        """Fine-tune the whole model for exactly ``steps`` steps; return train_classifier's history.

        Build ``steps`` batches of ``batch_size`` texts (tokenized, with their "labels"), drawn with a
        ``torch.Generator().manual_seed(seed)`` (shuffle, and reshuffle when the texts run out), then call
        ``train_classifier(model, batches, lr=lr, warmup_steps=math.ceil(warmup_ratio * steps), ...)`` with
        the same ``seed``. (``math.ceil`` is how transformers' Trainer turns a warm-up ratio into steps.)
        """
        raise NotImplementedError
