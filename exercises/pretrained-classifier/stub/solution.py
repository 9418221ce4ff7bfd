"""Understanding pre-trained models: classify sentences with a pre-trained Transformer encoder.

A pre-trained encoder (here a BERT: Devlin et al. 2019, https://arxiv.org/abs/1810.04805; the grader's
offline default is all-MiniLM-L6-v2, a 6-layer BERT trained to produce sentence embeddings, Reimers &
Gurevych 2019, https://arxiv.org/abs/1908.10084) turns text into one vector per token. A classifier on
top of it needs three more pieces: the tokenizer THAT BELONGS TO THE MODEL, a pooling step that turns the
token vectors into one sentence vector, and a small trainable head.

You get the model as a folder (``model_dir``): config.json, model.safetensors and the tokenizer files.
Load both halves from that same folder with Hugging Face ``transformers``, offline:

    from transformers import AutoModel, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    encoder = AutoModel.from_pretrained(model_dir)          # the pre-trained weights, NOT from_config

There is no network in the grader: never pass a hub id such as "bert-base-uncased".

THE ENCODER IS FROZEN: put it in eval mode (``encoder.eval()``: dropout off, so the same text always gives
the same vectors) and do not train it (``encoder.requires_grad_(False)``, run it under ``torch.no_grad()``).
Only the head learns. Because the encoder never changes, each training sentence needs to go through it
only once: embed the training set once, then train the head on those vectors.

TOKENIZATION: ``tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")``
adds the model's special tokens ([CLS] ... [SEP] for BERT), pads a batch to its longest text and returns
``input_ids`` and ``attention_mask`` (1 = real token, 0 = padding), both int64.

MEAN POOLING (what all-MiniLM-L6-v2 was trained with): the sentence vector is the average of the token
vectors of the REAL tokens only:

    sentence[b] = sum_t hidden[b, t] * mask[b, t] / sum_t mask[b, t]

Padding must not change a sentence's vector: a sentence alone and the same sentence padded in a batch
embed the same. Return the mean itself: do NOT L2-normalise it (the model's card adds a Normalize step for
similarity search; here the checks compare the plain mean).

HEAD: ``nn.Linear(hidden_size, num_labels)`` on the pooled vector gives the logits (no softmax: the loss,
F.cross_entropy, applies log-softmax itself). hidden_size is ``encoder.config.hidden_size`` (384 for
MiniLM; another model may differ: never hard-code it).

TRAINING BUDGET: ``fit`` takes exactly ``steps`` optimiser steps (one mini-batch of ``batch_size`` each, not
an epoch) and returns the loss of each step, computed before that step's update. Use
``torch.optim.AdamW(head.parameters(), lr=lr)``, made anew in each fit (its other defaults unchanged), zero
the gradients before every backward pass, and draw the mini-batches with a ``torch.Generator`` seeded with
``seed``: the same seed gives the same losses, another seed other batches. The checks replay a few AdamW steps on a head
they load, so the training loop itself is graded, not only the accuracy it reaches.

The checks compare with a reference built on the same model folder: hidden states within 1e-4, pooled
vectors and logits within 1e-4; token ids exactly. Only plain data crosses the sandbox boundary: return
tensors, lists of floats/ints and dicts of tensors; the classifier itself stays in the sandbox.
"""

from __future__ import annotations

import torch


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average the hidden states of the real tokens.

    Args:
        hidden: (batch, seq, hidden_size) float token vectors.
        attention_mask: (batch, seq) int64 or bool, 1/True for real tokens, 0/False for padding.

    Returns:
        (batch, hidden_size) in hidden's dtype.
    """
    raise NotImplementedError


class SentenceClassifier:
    """A frozen pre-trained encoder, mean pooling and a trainable linear head.

    The checks call it like this:
        clf = SentenceClassifier(model_dir, num_labels=2)
        clf.tokenize(texts); clf.encode(texts); clf.embed(texts)
        clf.load_head({"weight": w, "bias": b}); clf.logits(texts)
        losses = clf.fit(texts, labels, steps=60, seed=0); clf.predict(texts)
    """

    def __init__(self, model_dir: str, num_labels: int = 2, max_length: int = 128) -> None:
        """Load the tokenizer and the pre-trained encoder from ``model_dir`` (eval mode, frozen); create the head."""
        raise NotImplementedError

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """{"input_ids": (batch, seq) int64, "attention_mask": (batch, seq) int64}, padded, truncated at max_length."""
        raise NotImplementedError

    def encode(self, texts: list[str]) -> torch.Tensor:
        """The encoder's last hidden states for the tokenized texts: (batch, seq, hidden_size), float32."""
        raise NotImplementedError

    def embed(self, texts: list[str]) -> torch.Tensor:
        """One mean-pooled vector per text: (len(texts), hidden_size). Process long lists in batches."""
        raise NotImplementedError

    def load_head(self, weights: dict[str, torch.Tensor]) -> None:
        """Set the head's parameters: {"weight": (num_labels, hidden_size), "bias": (num_labels,)}."""
        raise NotImplementedError

    def logits(self, texts: list[str]) -> torch.Tensor:
        """The head's output on the pooled vectors: (len(texts), num_labels), no softmax."""
        raise NotImplementedError

    def fit(self, texts: list[str], labels: list[int], steps: int, batch_size: int = 16, lr: float = 1e-2,
            seed: int = 0) -> list[float]:
        """Train the head only, for exactly ``steps`` steps; return each step's cross-entropy loss (floats)."""
        raise NotImplementedError

    def predict(self, texts: list[str]) -> list[int]:
        """The predicted label of each text (the index of its largest logit), as Python ints."""
        raise NotImplementedError
