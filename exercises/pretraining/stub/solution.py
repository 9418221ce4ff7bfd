"""Pretraining a small Transformer language model from scratch on real text, and measuring it by perplexity.

The pipeline every pretraining run has, scaled down to minutes of CPU:
  1. a byte-level BPE tokenizer (Hugging Face ``tokenizers``), trained on the TRAINING split only;
  2. a decoder-only (GPT-style) Transformer;
  3. a training loop that reports its progress while it runs;
  4. evaluation by perplexity on held-out text.
Follows: Radford et al. 2019 (GPT-2: byte-level BPE, pre-norm blocks, tied embeddings); Karpathy's nanoGPT;
the Hugging Face guide "Perplexity of fixed-length models" (https://huggingface.co/docs/transformers/perplexity).
Here you may use any torch module (nn.TransformerEncoderLayer, F.scaled_dot_product_attention, torch.optim.AdamW):
the from-scratch pieces were the tiny-transformer exercise; this one grades the pipeline and its numbers.

DATA: ``splits`` is a dict of UTF-8 text files in the WikiText layout, {"train": path, "valid": path,
"test": path} (106 Wikipedia articles offline; WikiText-103 where the course provides it). Read at most
config["max_train_chars"] characters of splits["train"], for the tokenizer and the model alike. NEVER read
the valid or test splits for training, neither the tokenizer nor the model: held-out text must stay unseen,
or its perplexity measures memory, not modelling. (The grader hides made-up words in the held-out splits
and looks for them in your vocabulary and in your model.)

PERPLEXITY = exp( sum of -log p(target) over every REAL target / number of real targets ), natural log, the
mean taken over tokens (not over sentences, chunks or batches); targets equal to pad_id are left out. It
depends on the tokenizer: compare two perplexities only under one tokenizer (the grader compares your model
at initialisation with your model after training, both with your tokenizer, and sets the target for the
prescribed one). perplexity(text) cuts encode(text) into chunks that start every context_length tokens and hold
context_length + 1 tokens (consecutive chunks share one token, so every token but the first is predicted once);
the last chunk is right-padded with pad_id to context_length + 1; inputs = chunk[:-1], targets = chunk[1:];
chunks go through the model batch_size at a time (the last batch may be smaller). The grader recomputes it
from your encode() and logits() and compares.

PROGRESS: train() appends one JSON line per report to ``progress_file`` and flushes it at once (f.flush():
a file keeps a few kB in its buffer, and the grader reads the file while train() runs):
    {"step": 50, "loss": 6.21, "elapsed_s": 12.3}           step = optimiser steps done so far
a first one as soon as train() is called ({"step": 0, "loss": null, "elapsed_s": 0.0}), then at least every
config["log_every"] steps AND at least every 10 s by the clock (every 5 s is safe), and one after the last step
(step == max_steps). Preparation counts: encode the training split beforehand (in train_tokenizer, say), or
report while encoding; and build the optimiser in __init__, not in train(): the first torch.optim optimiser
of a process imports torch._dynamo, seconds of silence on a busy machine. Print the lines too if you like.
The grader watches the file from its own thread while train() runs, and times the lines with its own clock.

RECIPE (what the targets were calibrated with; follow it): the model of ``config`` with pre-norm blocks, GELU,
learned positions, tied input/output embeddings, normal(0, 0.02) initialisation; AdamW (betas 0.9, 0.95,
weight decay 0.1 on matrices only) with config["lr"], a linear warm-up over config["warmup_steps"] steps then a
cosine decay to lr/10 at max_steps; gradients clipped to norm 1.0; batches of config["batch_size"] random
windows of context_length + 1 tokens of the encoded training split, targets shifted by one.

``config`` keys: vocab_size, context_length, d_model, num_layers, num_heads, d_ff, batch_size, lr, warmup_steps,
log_every, max_train_chars, device ("cpu" or "cuda").

WHAT THE CHECKS MEASURE. Public, on a 1-layer d=32 model and a 400 kB slice of the training split: the
tokenizer (size, lossless round trip, no held-out words learnt), perplexity_from_logits and perplexity(text)
against the grader's recomputation, causal logits, and a 60-step run (progress lines, one float loss per
step, held-out perplexity lower, the NEXT token predicted rather than the current one copied). Hidden, one
run of the profile's model for max_steps steps (cpu: 300 steps of 16 x 64 tokens on the first 1 MB of the
Wikipedia sample, about 10 s of one core): progress timed while it runs, the training loss falling by more
than a nat, held-out perplexity (the first held_out_chars characters of the valid split, recomputed from
your logits) lower than at initialisation by min_perplexity_factor and at most max_perplexity, and a
sentence found only in the held-out splits not learnt by heart (exercise.toml lists the targets).

SPEED. Graders run several jobs side by side on a few cores; torch's worker threads then wait on each other
and a small model runs many times slower. ``torch.set_num_threads(1)`` at import avoids that (the reference
does).

How the checks drive it (only plain data crosses the sandbox boundary; the object stays in the sandbox):
    p = Pretrainer(config, seed);  p.train_tokenizer(splits);  p.vocab_size();  p.pad_id
    p.encode("text") -> [ids];  p.decode(ids) -> "text";  p.logits(ids)  (B, T) -> (B, T, vocab_size)
    p.perplexity(text);  p.train(splits, max_steps, progress_file) -> [loss per step]
"""

from __future__ import annotations

from typing import Any

import torch

#: the tokenizer's special tokens, in this order (ids 0 and 1 with BpeTrainer)
SPECIAL_TOKENS = ["<|endoftext|>", "<pad>"]


def perplexity_from_logits(logits: torch.Tensor, targets: torch.Tensor, pad_id: int) -> float:
    """exp of the mean NLL of the real targets.

    Args:
        logits: (B, T, V) float, unnormalised: log p = log_softmax over the last axis.
        targets: (B, T) int64; positions whose target is pad_id do not count (neither in the sum nor the count).
        pad_id: the padding id.

    Returns:
        The perplexity, a Python float.
    """
    raise NotImplementedError


class Pretrainer:
    """Tokenizer, model and training loop for one pretraining run."""

    def __init__(self, config: dict[str, Any], seed: int = 0) -> None:
        """Keep the config; torch.manual_seed(seed); build the model (vocab_size rows of embedding) on device, and
        its AdamW optimiser (see RECIPE; here, so that train() can report at once, see PROGRESS).

        ``self.pad_id`` is None until the tokenizer is trained.
        """
        raise NotImplementedError

    def train_tokenizer(self, splits: dict[str, str]) -> None:
        """Train a byte-level BPE on splits["train"] (its first max_train_chars characters) ONLY.

        tokenizers.Tokenizer(models.BPE()), pre_tokenizers.ByteLevel(add_prefix_space=False),
        decoders.ByteLevel(), trainers.BpeTrainer(vocab_size=config["vocab_size"],
        special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()); then
        ``self.pad_id`` = the id of "<pad>". The vocabulary has exactly vocab_size entries, and
        decode(encode(text)) == text for any text.
        """
        raise NotImplementedError

    def vocab_size(self) -> int:
        """The tokenizer's vocabulary size, special tokens included."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added; "" gives []).

        Raises:
            RuntimeError: before train_tokenizer.
        """
        raise NotImplementedError

    def decode(self, ids: list[int]) -> str:
        raise NotImplementedError

    def train(self, splits: dict[str, str], max_steps: int, progress_file: str) -> list[float]:
        """Train the model for exactly ``max_steps`` optimiser steps on splits["train"] (see RECIPE), reporting
        progress to ``progress_file`` (see PROGRESS); returns the training loss of every step, as Python floats
        (float(loss), one per optimiser step)."""
        raise NotImplementedError

    def logits(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T) int64 -> (B, T, vocab_size) float32 logits on the CPU, eval mode, no gradients; T <= context."""
        raise NotImplementedError

    def perplexity(self, text: str) -> float:
        """Perplexity of ``text`` under the model, chunked and padded as described above."""
        raise NotImplementedError
