"""Summarisation: fine-tune a pre-trained encoder-decoder (BART or T5) with transformers, and score it with ROUGE.

An encoder-decoder summariser reads a document with its ENCODER and writes the summary token by token with
its DECODER, which attends to the encoder's output (BART: Lewis et al. 2019, https://arxiv.org/abs/1910.13461;
T5: Raffel et al. 2019, https://arxiv.org/abs/1910.10683). Fine-tuning is teacher forcing: the decoder is
fed the reference summary shifted one position right and is trained to predict the next token at every
position. transformers gives the model and its tokenizer:

    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir)      # pre-trained weights (never from_config)

THE BATCH (``Summariser.tokenize``):

* INPUTS: ``task_prefix(model.config.model_type) + document`` for every document, encoded by the tokenizer
  (its template adds the special tokens, for BART ``<s> ... </s>``), TRUNCATED to ``max_source_length``
  tokens (``max_length=..., truncation=True``: the tokenizer keeps the closing ``</s>``) and padded with the
  pad token to the longest row; ``attention_mask`` is 1 on real tokens, 0 on padding. T5 was pre-trained on
  many tasks told apart by a text prefix, so the T5 family (model types "t5", "mt5", "umt5") gets
  ``"summarize: "`` (with its space); BART and every other model get no prefix.
* LABELS: the summaries encoded the same way (``tokenizer(text_target=summaries, ...)``, truncated to
  ``max_target_length``), int64, with ``-100`` at every padding position. -100 is the ``ignore_index`` of
  the cross-entropy: a label padded with the pad id would teach the model to predict padding, and the mean
  loss would count those positions.
* DECODER INPUTS (``decoder_inputs``): the labels shifted ONE position right, with
  ``model.config.decoder_start_token_id`` in front (the last label drops off) and every -100 replaced by
  ``model.config.pad_token_id``. BART's start token is ``</s>`` (id 2 here), not ``<s>``; T5's is the pad
  token: read it from the config, never hard-code it. (transformers' ``shift_tokens_right`` does this; so
  does the model itself when you pass ``labels`` without ``decoder_input_ids``.) Without the shift the
  decoder sees the very token it must predict: the training loss collapses and nothing is learnt.

THE LOSS: the model's cross-entropy over the real summary tokens (``model(input_ids=..., attention_mask=...,
decoder_input_ids=..., labels=...).loss``), the mean over tokens whose label is not -100. ``loss()`` is the
value on the current weights in eval mode (dropout off), without gradients: a 0-dim float32 tensor.

FINE-TUNING (``fit``): ``steps`` optimiser steps of AdamW (lr as given) on every parameter, in train mode,
each on a batch of ``batch_size`` (document, summary) pairs drawn from the given lists with a generator
seeded by ``seed`` (all pairs when there are no more than ``batch_size``); zero the gradients every step.
Return the ``steps`` training losses as Python floats. ``device`` is "cpu", or "cuda" under the gpu profile.

GENERATION (``summarise``): greedy decoding (``model.generate(..., num_beams=1, do_sample=False)``) in eval
mode of at most ``max_new_tokens`` NEW tokens: pass ``max_new_tokens``, not ``max_length`` (which counts the
decoder start token), and never rely on generation's default limit. Decode with ``skip_special_tokens=True``
and strip the spaces around each summary. The inputs are built exactly as in ``tokenize`` (prefix, truncation).

ROUGE (Lin 2004, https://aclanthology.org/W04-1013/), ``rouge_scores(targets, predictions)``: for each pair,
ROUGE-1 and ROUGE-2 (clipped n-gram matches) and ROUGE-L (longest common subsequence), each as precision
(matches / PREDICTION length), recall (matches / TARGET length) and F1. Use rouge-score
(``from rouge_score import rouge_scorer``; ``RougeScorer(["rouge1", "rouge2", "rougeL"], ...)``); its argument
order is ``scorer.score(target, prediction)``: swap them and precision and recall swap too (F1 does not,
so a check of F1 alone would not notice). Its default tokenizer keeps only ``[a-z0-9]`` after lower-casing,
so "Zürich" becomes "z rich" and Greek, Cyrillic or Chinese text scores 0 against itself. Here tokens are:

    1. the text normalised with unicodedata.normalize("NFKC", text) (ligatures, full-width forms), then
       lower-cased with str.lower();
    2. split into maximal runs of characters for which str.isalnum() is true (letters and digits of any
       script; everything else, "_" included, separates tokens);
    3. each token longer than 3 characters Porter-stemmed (nltk's ``porter.PorterStemmer().stem``, the
       stemmer rouge-score's use_stemmer=True uses; shorter tokens unchanged).

On ASCII text this gives exactly rouge-score's ``RougeScorer(..., use_stemmer=True)``. RougeScorer accepts
``tokenizer=`` any object with a ``tokenize(text) -> list[str]`` method. You may also count n-grams and
the LCS yourself; the figures must agree to 1e-6.

ERRORS: ``ValueError`` when targets and predictions (or documents and summaries) differ in number, and when
``max_new_tokens < 1``.

THE DATA (asset ``summarisation-pairs``: ``train.jsonl`` and ``test.jsonl`` of {"document", "summary"}).
Offline a document is a paragraph of a Wikipedia article and its summary is the article's title; the
packaged model (asset ``seq2seq-small``) is a 1.3 M-parameter BART pre-trained here by text infilling.
Under the gpu profile the assets are a hub model (facebook/bart-base, t5-small) and XSum.

What the checks measure: the prefix; ROUGE against rouge-score on English, other scripts and edge cases;
tokenize's inputs and -100 labels; decoder inputs; the loss and greedy summaries on the packaged weights and
on a T5-layout model; a saved model that transformers reloads; and fine-tuning on the training paragraphs of a
few articles, whose loss must fall and whose ROUGE-L on their held-out paragraphs must beat the lead baseline
(the first words or the first sentence of each document) by a margin. Cost on 2 CPU cores: a training step of
16 documents of 64 tokens takes about 0.1-0.2 s on one thread. The packaged model is so small that a second
thread buys little, and on busy shared cores it can make every step several times slower: call
``torch.set_num_threads(1)`` when you work with it (a hub model on a GPU does not care).
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def task_prefix(model_type: str) -> str:
    """The text put before every document: "summarize: " for model types t5, mt5 and umt5, else ""."""
    raise NotImplementedError


def rouge_scores(targets: list[str], predictions: list[str]) -> list[dict[str, dict[str, float]]]:
    """One dict per pair: {"rouge1" | "rouge2" | "rougeL": {"precision", "recall", "fmeasure"} as floats}.

    Tokens as the module docstring says (NFKC, lower case, runs of str.isalnum(), Porter stem above 3
    characters). ValueError when the lists differ in length.
    """
    raise NotImplementedError


class Summariser:
    """A pre-trained encoder-decoder from ``model_dir`` with its tokenizer, fine-tuned for summarisation."""

    def __init__(self, model_dir: str, max_source_length: int = 64, max_target_length: int = 16) -> None:
        raise NotImplementedError

    def tokenize(self, documents: list[str], summaries: list[str] | None = None) -> dict[str, torch.Tensor]:
        """{"input_ids", "attention_mask"} of the prefixed, truncated documents, padded to the longest;
        with summaries also "labels" (int64, -100 at padding). ValueError when the lists differ in length."""
        raise NotImplementedError

    def decoder_inputs(self, labels: torch.Tensor) -> torch.Tensor:
        """labels (batch, length) shifted right: decoder_start_token_id first, -100 replaced by pad_token_id."""
        raise NotImplementedError

    def loss(self, documents: list[str], summaries: list[str]) -> torch.Tensor:
        """The mean cross-entropy over real summary tokens on the current weights (eval mode, no gradients)."""
        raise NotImplementedError

    def fit(self, documents: list[str], summaries: list[str], steps: int, batch_size: int = 16, lr: float = 1e-3,
            seed: int = 0, device: str = "cpu") -> list[float]:
        """``steps`` AdamW steps on seeded random batches; returns the training loss of each step."""
        raise NotImplementedError

    def summarise(self, documents: list[str], max_new_tokens: int = 16, num_beams: int = 1) -> list[str]:
        """Greedy (num_beams=1) summaries of at most max_new_tokens new tokens, special tokens removed."""
        raise NotImplementedError

    def save(self, path: str) -> None:
        """Write the model and its tokenizer to ``path`` so that from_pretrained(path) reloads both."""
        raise NotImplementedError
