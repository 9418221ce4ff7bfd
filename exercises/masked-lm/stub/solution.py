"""Masked language modelling (MLM): BERT's masking step, then MLM fine-tuning of a pre-trained encoder.

BERT (Devlin et al. 2019, https://arxiv.org/abs/1810.04805, section 3.1 "Task #1: Masked LM" and appendix
A.1) learns by filling in blanks. For every batch it SELECTS 15 % of the tokens at random and asks the model
to predict the original token at each selected position. A selected token is then:

    replaced by [MASK]          with probability 0.8   (mask_replace_prob)
    replaced by a random token  with probability 0.1   (random_replace_prob)
    left unchanged              with probability 0.1   (the rest)

so that the model cannot learn that "only [MASK] positions matter": over all eligible tokens that is 12 %
[MASK], 1.5 % random, 1.5 % unchanged-but-predicted. RoBERTa (Liu et al. 2019, https://arxiv.org/abs/1907.11692,
section 4.1) draws a NEW mask every time a sequence is used ("dynamic masking"); so does this exercise.

THE MASKING STEP (``MLMMasker.mask``), for a batch ``input_ids`` of shape (batch, seq), int64:

* ELIGIBLE tokens: every id that is NOT one of the tokenizer's special tokens (``tokenizer.all_special_ids``:
  [PAD], [UNK], [CLS], [SEP] and [MASK] for this model). Padding is [PAD], so it is never selected; nor are
  [UNK] or a [MASK] already present in the input. Special tokens are never selected and never changed.
* SELECTION: each eligible token independently with probability ``mlm_probability`` (a Bernoulli draw per
  token, as BERT and transformers do).
* REPLACEMENT of the selected tokens as above. If you draw it in two steps (first [MASK] with probability
  mask_replace_prob; then "random" among the selected tokens that did NOT get [MASK]), the second probability
  is random_replace_prob / (1 - mask_replace_prob) = 0.1 / 0.2 = 0.5, NOT 0.1. Using 0.1 there gives 2 %
  random replacements instead of 10 %: that bug shipped in the TensorFlow path of transformers' collator.
* RANDOM tokens: drawn uniformly from the NON-SPECIAL ids (BERT's recipe). transformers'
  ``DataCollatorForLanguageModeling`` draws uniformly from the whole vocabulary ``range(len(tokenizer))``;
  that is accepted too (over this 30,522-id vocabulary the two differ in 5 draws of 30,522). Tokens taken
  from the batch itself are not uniform (they are full of [CLS], [SEP], [PAD]).
* LABELS (int64, the batch's shape): the ORIGINAL id at every selected position, -100 everywhere else
  (-100 is ``F.cross_entropy``'s default ``ignore_index``: only selected positions count in the loss).
* The masked ids are a NEW tensor. Never modify ``input_ids`` in place: a training loop masks the same
  batch again at the next epoch (``mask_epochs``), and every epoch must start from the original text.
* SEED: the result depends only on ``(input_ids, seed)``. Draw from ``torch.Generator().manual_seed(seed)``
  created for the call (never the global RNG, never a generator kept between calls): the same seed gives the
  same masks, another seed other masks.

You may write it with tensor operations, or wrap ``transformers.DataCollatorForLanguageModeling`` (its
``mlm_probability``, ``mask_replace_prob``, ``random_replace_prob`` and ``seed`` arguments; build it per call
or give it a fresh generator, and do not hand it your ``input_ids`` to modify).

THE MODEL. The packaged encoder (asset ``encoder-small``: all-MiniLM-L6-v2, a 6-layer BERT with hidden size
384) was trained as a sentence encoder: its checkpoint has NO trained MLM head. You build one:
``transformers.AutoModelForMaskedLM.from_pretrained(model_dir)`` gives a ``BertForMaskedLM`` whose
``model.bert`` gets the packaged encoder's weights and whose head ``model.cls`` is

    transform: Linear(384, 384) -> GELU -> LayerNorm        NEWLY initialised (transformers lists it MISSING)
    decoder:   Linear(384, vocab_size), its weight TIED to the input word embeddings, plus a zero bias

so the output layer starts from the pre-trained token embeddings and only the small transform is random.
(You may build the same head yourself on ``AutoModel``.) MLM fine-tuning then trains the WHOLE model,
encoder and head, on ``mlm_loss``. Before training the loss on masked text is about ln(30522) ~ 10.3 or
more; a few steps bring it down quickly because the encoder already knows the language.

COST (2 CPU cores): a forward and backward pass of batch 8 x 32 tokens takes about a second. Apply the
decoder only at the labelled positions (``model.cls(hidden[labels != -100])``): a 30,522-wide output at
every position costs more than the encoder itself. Sequences are at most ``max_length`` = 32 tokens.

What the checks measure: the selection rate and the three replacement rates on more than 10^5 eligible
tokens, each within 5 standard deviations of its binomial expectation (so a correct masker fails less often
than once in 10^5 gradings); special tokens never selected; labels; no mutation; seeds; that the rates follow
the arguments; and the MLM loss on hidden text (computed by the grader from ``predict_masked``) before and
after ``fit`` within the step budget. Only plain data crosses the sandbox boundary: tensors, lists, dicts.
"""

from __future__ import annotations

import torch


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The MLM loss: mean cross-entropy over the positions whose label is not -100.

    Args:
        logits: (..., vocab_size) float, e.g. (batch, seq, vocab_size) or (n, vocab_size).
        labels: logits.shape[:-1], int64: the original id at selected positions, -100 elsewhere.

    Returns:
        A 0-dim tensor: the sum of -log softmax(logits)[label] over the labelled positions divided by their
        number (every labelled token weighs the same, whichever sequence it is in; -100 positions count in
        neither the sum nor the number). ``F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1))`` does it.
    """
    raise NotImplementedError


class MLMMasker:
    """BERT's dynamic masking for the tokenizer in ``model_dir``.

    The checks call it like this:
        masker = MLMMasker(model_dir)                      # or with other probabilities
        out = masker.mask(input_ids, seed=3)               # {"input_ids": ..., "labels": ...}
        outs = masker.mask_epochs(input_ids, [1, 2, 3])    # one such dict per seed
    """

    def __init__(self, model_dir: str, mlm_probability: float = 0.15, mask_replace_prob: float = 0.8,
                 random_replace_prob: float = 0.1) -> None:
        """Load the tokenizer of ``model_dir`` (``AutoTokenizer.from_pretrained``) for its [MASK] id, its
        special ids and its vocabulary size.

        Raises:
            ValueError: when a probability lies outside [0, 1], or mask_replace_prob + random_replace_prob > 1.
        """
        raise NotImplementedError

    def mask(self, input_ids: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
        """Mask one batch (see the module docstring).

        Args:
            input_ids: (batch, seq) int64 token ids, with the tokenizer's special tokens and padding. Not modified.
            seed: seeds the generator of this call.

        Returns:
            {"input_ids": (batch, seq) int64, the masked copy; "labels": (batch, seq) int64, the original id at
            selected positions and -100 elsewhere}.
        """
        raise NotImplementedError

    def mask_epochs(self, input_ids: torch.Tensor, seeds: list[int]) -> list[dict[str, torch.Tensor]]:
        """Dynamic masking: the SAME batch masked once per seed, as successive epochs see it.

        Call ``self.mask(input_ids, seed)`` on this same ``input_ids`` tensor for each seed, in order, and return
        the list of results: each must equal what a lone ``mask(input_ids, seed)`` call gives.
        """
        raise NotImplementedError


class MaskedLM:
    """The packaged encoder with an MLM head, fine-tuned with masked language modelling.

    The checks call it like this:
        lm = MaskedLM(model_dir)
        lm.tokenize(texts)                                     # {"input_ids", "attention_mask"}
        lm.hidden_states(input_ids, attention_mask)            # (batch, seq, hidden_size)
        lm.predict_masked(input_ids, attention_mask, positions)    # (positions.sum(), vocab_size)
        losses = lm.fit(texts, steps=8, seed=0)
    """

    def __init__(self, model_dir: str, max_length: int = 32, mlm_probability: float = 0.15) -> None:
        """Load the tokenizer and the pre-trained encoder with an MLM head (see the module docstring), and an
        ``MLMMasker(model_dir, mlm_probability)`` for ``fit``."""
        raise NotImplementedError

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        """{"input_ids", "attention_mask"}: (batch, seq) int64, with special tokens, padded to the longest text,
        truncated at max_length (``tokenizer(texts, padding=True, truncation=True, max_length=...)``)."""
        raise NotImplementedError

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The encoder's last hidden states (batch, seq, hidden_size), float32, in eval mode without gradients.

        Before ``fit`` these are the packaged encoder's own: the checks compare them with it before training.
        """
        raise NotImplementedError

    def predict_masked(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                       positions: torch.Tensor) -> torch.Tensor:
        """The MLM head's logits at the chosen positions, in eval mode without gradients.

        Args:
            input_ids, attention_mask: (batch, seq) int64, already masked by the caller.
            positions: (batch, seq) bool, True where a prediction is wanted.

        Returns:
            (int(positions.sum()), vocab_size) float32 logits (no softmax), rows in the order
            ``logits[positions]`` gives (row-major over batch, then sequence).
        """
        raise NotImplementedError

    def fit(self, texts: list[str], steps: int, batch_size: int = 8, lr: float = 2e-4, seed: int = 0
            ) -> list[float]:
        """MLM fine-tuning of the WHOLE model (encoder and head) for exactly ``steps`` optimiser steps.

        Tokenize the texts once. Each step: draw ``batch_size`` texts with a generator seeded from ``seed``, mask
        them afresh with this object's masker (a new seed each step), compute ``mlm_loss`` on the labelled
        positions, and take one AdamW step (lr=2e-4 works: the new head needs a larger rate than the usual
        2e-5) after zeroing the gradients. Training mode while training; eval mode when done.

        Returns:
            The loss of each step, as Python floats (``steps`` of them).
        """
        raise NotImplementedError
