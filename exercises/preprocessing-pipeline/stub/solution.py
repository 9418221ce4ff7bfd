"""A preprocessing pipeline for language-model training: clean, tokenize, batch, pack, stream.

Raw text scraped from the web is full of things a language model should never learn from: HTML tags
and entities (``<p>``, ``&amp;``), invisible characters (zero-width spaces, byte-order marks, stray
control bytes), a dozen kinds of spaces and line breaks, and "compatibility" characters that look like
ordinary letters but are different code points (the ligature "ﬁ", full-width "Ｈｅｌｌｏ", "½").
Left in, they split one word into many token sequences and waste the vocabulary. This exercise builds
the pipeline that turns such text into training batches, in five parts:

1. ``clean_text``: normalise one text (the exact rules are below; the checks compare character by
   character with a reference on a few hundred random texts made from the grading seed).
2. ``tokenize``: token ids with the model's own tokenizer (a folder: load it with
   ``transformers.AutoTokenizer.from_pretrained(tokenizer_dir)``, offline), truncated to ``max_length``.
3. ``collate`` and ``batches``: pad examples of different lengths into rectangular tensors with an
   attention mask, and labels padded with -100 (what ``transformers.DataCollatorForSeq2Seq`` does).
4. ``pack``: concatenate documents, each followed by an end-of-text separator, and cut the stream into
   blocks of ``block_size`` tokens for causal-LM training (``group_texts`` in the transformers
   example ``run_clm.py``): no padding is wasted and no token is lost or repeated.
5. ``stream_blocks``: the same packing for a file too big for memory, lazily, one line at a time.

Background: the Hugging Face course, "Processing the data" and "Training a causal language model from
scratch" (https://huggingface.co/learn/nlp-course/chapter7/6); the ``tokenizers`` normalizers
(https://huggingface.co/docs/tokenizers/api/normalizers); Unicode Standard Annex #15, "Unicode
Normalization Forms" (https://unicode.org/reports/tr15/).

The grader calls these functions from another process: return plain data (str, int, lists, dicts
of torch tensors), never a tokenizer or an Encoding. Loading a tokenizer takes a moment: cache it
(``functools.lru_cache`` on a small loader function), the checks call ``tokenize`` many times.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def clean_text(text: str) -> str:
    """Clean one text for LM training; the result must not change when cleaned again.

    One PASS applies these five steps, in this order:

    1. Unicode normalisation form **NFKC** (``unicodedata.normalize("NFKC", text)``), not NFC. NFC
       only composes (e + U+0301 -> é); NFKC also replaces compatibility characters by their plain
       equivalents: "ﬁ" -> "fi", "Ｈｅｌｌｏ" -> "Hello", "½" -> "1⁄2" (with U+2044 FRACTION SLASH),
       "²" -> "2", "＜" -> "<", and the no-break space U+00A0 -> " ".
    2. HTML tags: every match of the regular expression ``<[A-Za-z/!?][^<>]*>`` (a "<" followed by a
       letter, "/", "!" or "?", up to the next ">") is replaced by ONE SPACE, so "<p>a</p><p>b</p>"
       gives words "a" and "b", not "ab". Text between tags is kept (also inside <script>). A "<" that
       starts no tag ("x < y", "1<2") stays, and so does an unclosed tag at the end ('<a href="x').
       Use the regex, not an HTML parser: parsers treat broken markup differently.
    3. HTML entities: ``html.unescape`` (Python's, with the HTML5 rules: "&amp;" -> "&", "&nbsp;" ->
       U+00A0, "&#x1F600;" -> "😀", "&amp" without ";" decoded too).
    4. Invisible characters: delete every character whose ``unicodedata.category`` is "Cc" (control),
       "Cf" (format: zero-width space U+200B, byte-order mark U+FEFF, soft hyphen, direction marks...) or
       "Co" (private use), EXCEPT whitespace (``c.isspace()``: tab, line breaks... are step 5's) and
       except U+200C ZERO WIDTH NON-JOINER and U+200D ZERO WIDTH JOINER, which are kept because they
       change how Persian and Indic words and emoji sequences such as "👩‍💻" are written.
    5. Whitespace: split into lines with ``str.splitlines()`` (which also breaks at "\\r", "\\x85",
       U+2028...); inside each line, every run of whitespace becomes one space and the line is stripped
       (``" ".join(line.split())``); runs of several empty lines become ONE empty line (a paragraph
       break); empty lines at the start and the end are dropped; lines are joined with "\\n".

    IDEMPOTENCE: one pass is not enough. "&lt;b&gt;" becomes the tag "<b>" only in step 3, after tags
    were removed; "&#xFB01;" becomes the ligature "ﬁ" after the NFKC step; "<\\u200bb>" becomes a tag
    when step 4 deletes the zero-width space. So repeat the whole pass until the text stops changing.
    Then ``clean_text(clean_text(x)) == clean_text(x)`` for every x, which the checks test.

    Args:
        text: any str (may be empty, may be 10,000 characters on one line).

    Returns:
        The cleaned str ("" for a text with nothing visible left).
    """
    raise NotImplementedError


def tokenize(texts: list[str], tokenizer_dir: str, max_length: int | None = None,
             add_special_tokens: bool = True) -> list[list[int]]:
    """Token ids of each text with the tokenizer saved in ``tokenizer_dir``; no padding.

    ``tokenizer(texts, add_special_tokens=..., truncation=..., max_length=...)``. With
    ``add_special_tokens`` each sequence gets the model's own special tokens ([CLS] ... [SEP] for the
    course's BERT tokenizer). With ``max_length``, a sequence is truncated so that it is at most
    ``max_length`` ids INCLUDING the special tokens, and still ends with [SEP] (let the tokenizer
    truncate: cutting the list of ids afterwards loses the [SEP]). Without ``max_length`` nothing is cut.
    This function does not clean: it tokenizes the texts it is given (an empty text gives [CLS] [SEP]).
    If you use the ``tokenizers`` library directly (``Tokenizer.from_file(tokenizer_dir + "/tokenizer.json")``),
    know that the file carries saved settings (this one pads and truncates every sequence to 128): switch
    them off (``no_padding()``, ``no_truncation()``) and set truncation for each call, since a cached
    tokenizer keeps what an earlier call switched on.

    Returns:
        One list of Python ints per text ([] for no texts).
    """
    raise NotImplementedError


def collate(features: list[dict[str, list[int]]], pad_token_id: int, max_length: int | None = None,
            pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Pad a list of examples into one batch (right padding), like DataCollatorForSeq2Seq.

    Each feature is ``{"input_ids": [ids...]}``, optionally with ``"labels": [ids...]`` (labels may be
    longer or shorter than the inputs: the target of a seq2seq example, or a copy of the inputs for a
    causal LM).

    Width of the batch: the longest ``input_ids`` in the batch, or ``max_length`` when it is given;
    then, with ``pad_to_multiple_of``, rounded UP to a multiple of it (tensor cores like multiples of
    8). The labels get their own width by the same rule (their longest, or ``max_length``; rounded up).

    Returns a dict of int64 tensors:
        "input_ids": (batch, width), padded with ``pad_token_id``;
        "attention_mask": (batch, width), 1 on the example's own positions and 0 on padding. Build it
        from the LENGTHS, never by comparing ids with ``pad_token_id``: GPT-2 style tokenizers pad
        with their end-of-text id, which also occurs inside real examples;
        "labels": (batch, label_width), padded with -100 (the ``ignore_index`` of
        ``F.cross_entropy``, so padding adds nothing to the loss), only when the features have labels.

    Never change the features you are given (do not pad their lists in place): a data set is
    collated again in every epoch, with other partners (see ``batches``).

    Raises:
        ValueError: no features; a feature's input_ids or labels longer than ``max_length`` (truncate
            when tokenizing instead); some features have "labels" and others do not.
    """
    raise NotImplementedError


def batches(features: list[dict[str, list[int]]], batch_size: int, pad_token_id: int, epochs: int = 1,
            seed: int = 0, max_length: int | None = None,
            pad_to_multiple_of: int | None = None) -> list[dict[str, torch.Tensor]]:
    """The batches of ``epochs`` shuffled passes over ``features`` (a DataLoader with a collate_fn).

    Epoch e visits the features in the order
    ``torch.randperm(len(features), generator=torch.Generator().manual_seed(seed + e)).tolist()``,
    cut into consecutive batches of ``batch_size`` (the last one of an epoch may be smaller), each one
    collated with ``collate(...)`` and the given options. Returns every batch of every epoch, in order.

    Raises:
        ValueError: ``batch_size`` < 1.
    """
    raise NotImplementedError


def pack(docs: list[list[int]], block_size: int, eos_token_id: int, drop_remainder: bool = True,
         pad_token_id: int = 0) -> dict[str, torch.Tensor]:
    """Pack tokenized documents into blocks of ``block_size`` tokens for causal-LM training.

    Concatenate the documents in order, each one FOLLOWED by ``eos_token_id`` (the separator tells the
    model where a text ends); an empty document is skipped (no separator for it). Cut the stream into
    consecutive blocks of ``block_size``. Nothing is lost or repeated: no overlap, no stride, documents
    are not cut one by one (a short document shares a block with its neighbours, it is not dropped).

    The remainder (the last ``len(stream) % block_size`` tokens): with ``drop_remainder`` (the default,
    as in run_clm.py) it is dropped; otherwise it becomes one more block, padded on the right with
    ``pad_token_id``, attention_mask 0 and labels -100 on the padding.

    Returns a dict of int64 tensors of shape (n_blocks, block_size):
        "input_ids"; "attention_mask" (1 on tokens, 0 on padding); "labels": a copy of input_ids, -100 on
        padding. Labels are NOT shifted: the model shifts them when it computes the loss.
        With no tokens at all, each has shape (0, block_size).

    Raises:
        ValueError: ``block_size`` < 1.
    """
    raise NotImplementedError


def stream_blocks(path: str, tokenizer_dir: str, block_size: int) -> Iterator[list[int]]:
    """Yield the blocks of a text file lazily, as ``pack`` with ``drop_remainder=True`` would make them.

    The file is UTF-8 with ONE DOCUMENT PER LINE (lines as Python's text-mode file iteration gives
    them). For each line: ``clean_text``; tokenize WITHOUT special tokens; skip the line when it gives no
    ids (an empty line, or one the tokenizer drops entirely, as ``pack`` skips empty documents); append
    the separator, which is the tokenizer's ``eos_token_id``, or its ``sep_token_id`` ([SEP])
    when it has no end-of-sequence token (the course's BERT tokenizer has none). Yield each complete
    block of ``block_size`` ids (a list of Python ints) as soon as it is complete; drop the incomplete
    last block.

    The file may be far bigger than memory: write a generator (``yield``) that reads one line at a
    time (``for line in f``), never ``f.read()``, ``f.readlines()`` or ``list(f)``, and that keeps only
    the ids not yielded yet. The checks hand you a PIPE that is written while you read it (so no
    ``seek``, no file size, no ``mmap``) and measure how far ahead of the blocks you have read.

    Raises:
        ValueError: ``block_size`` < 1 (may be raised when the first block is asked for).
    """
    raise NotImplementedError
