"""Tokenize text into words and subwords.

A model reads numbers, not text.  A *tokenizer* cuts text into tokens and maps each token to an
integer id from a fixed vocabulary; decoding maps ids back to text.  Two families:

Word level (part 1, plain Python)
    Split text into words and punctuation marks and give every distinct word an id.  Simple and
    readable, but the vocabulary grows with every new word form ("run", "runs", "running", ...) and
    any word missing from it collapses to one ``[UNK]`` token: its information is lost.

Subword level (part 2, HF ``tokenizers``)
    Keep frequent words whole and split rare words into frequent pieces ("tokenizers" ->
    "token" + "izers").  A vocabulary of a few thousand pieces covers any word made of known
    characters, and sequences stay much shorter than character sequences.

    * BPE, byte pair encoding (Sennrich, Haddow & Birch, "Neural Machine Translation of Rare Words
      with Subword Units", ACL 2016): start from single characters; count every adjacent pair of
      symbols in the training words; merge the most frequent pair into a new symbol; repeat until
      the vocabulary has the size you asked for.  Encoding replays the learned merges in order.
    * WordPiece (Schuster & Nakajima 2012; used by BERT): the same bottom-up merging, but a merge
      is chosen by likelihood, count(ab) / (count(a) * count(b)), not by raw count; pieces inside a
      word carry a ``##`` prefix and encoding takes the longest matching piece first.

The HF ``tokenizers`` pipeline (``tokenizers.Tokenizer``) runs, in order:
    1. normalizer      cleans the text (Unicode NFC, maybe lower-casing; we must NOT lower-case)
    2. pre-tokenizer   splits it into "words"; merges never cross these boundaries
    3. model           BPE / WordPiece / ...: maps each word to tokens and ids
    4. post-processor  adds special tokens such as [CLS] ... [SEP]
    and a *decoder* turns tokens back into text.  A *trainer* (``trainers.BpeTrainer``) learns the
    model's vocabulary and merges from a corpus.  ``Tokenizer.encode`` returns an ``Encoding`` whose
    ``ids``, ``tokens`` and ``offsets`` line up; offsets are (start, end) character positions in the
    ORIGINAL string (end exclusive), even after normalization.

Special tokens, shared by both parts (fixed ids):
    [PAD] = 0   fills the empty places of a padded batch
    [UNK] = 1   stands for anything the vocabulary does not contain
    [CLS] = 2   starts a sequence when ``add_special_tokens=True``
    [SEP] = 3   ends a sequence when ``add_special_tokens=True``

The grader calls your functions from another process: every function and method here must return
plain Python data (str, int, list, tuple, dict, None), never a ``tokenizers`` object.
"""

from __future__ import annotations

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers  # noqa: F401

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 1, 2, 3


# -- part 1: word level, plain Python --------------------------------------------------------------
def pre_tokenize(text: str) -> list[tuple[str, int, int]]:
    """Split ``text`` into words and punctuation, with character offsets into ``text``.

    A token is either a maximal run of word characters (letters of any script, digits, ``_``: what
    ``str.isalnum()`` accepts, plus underscore) or ONE character that is neither a word character
    nor whitespace (punctuation, symbols, emoji: each is a token of its own).  Whitespace
    (``str.isspace()``) separates tokens and belongs to none.  This is exactly the regular
    expression ``\\w+|[^\\w\\s]`` of Python's ``re`` module on a ``str``.

    Return a list of ``(token, start, end)`` in text order, where ``text[start:end] == token``
    (end exclusive, like a slice).  Keep case and accents: the token is the original text.

        pre_tokenize("Hi, Zoë!")  ->  [("Hi", 0, 2), (",", 2, 3), ("Zoë", 4, 7), ("!", 7, 8)]
        pre_tokenize("")          ->  []
    """
    raise NotImplementedError


def build_vocab(corpus: list[str], min_freq: int = 1, max_size: int | None = None) -> dict[str, int]:
    """Build a word-level vocabulary ``{token: id}`` from ``corpus`` (a list of lines).

    * ids 0..3 are the special tokens ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, in that order;
    * then every token of ``pre_tokenize(line)`` over all lines that occurs at least ``min_freq``
      times (case-sensitive: "The" and "the" are different words), ordered by count, highest
      first, ties broken by the token string in Python's ordinary ``<`` order; ids continue 4, 5, ...;
    * ``max_size`` (if not None) caps the whole vocabulary, special tokens included: keep the
      first ``max_size - 4`` words of that order.

    Raise ``ValueError`` if ``min_freq < 1`` or if ``max_size`` is smaller than 4.

        build_vocab(["b a c", "c a b", "d"])  ->  {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3,
                                                   "a": 4, "b": 5, "c": 6, "d": 7}
    """
    raise NotImplementedError


def encode_words(text: str, vocab: dict[str, int], add_special_tokens: bool = False) -> list[int]:
    """Return the ids of the tokens of ``pre_tokenize(text)``.

    A token missing from ``vocab`` becomes ``[UNK]`` (id 1): it is never dropped, so there is one
    id per token.  With ``add_special_tokens=True`` the ids are wrapped as
    ``[CLS_ID, *ids, SEP_ID]`` (so ``encode_words("", vocab, True) == [2, 3]``).
    """
    raise NotImplementedError


def decode_words(ids: list[int], vocab: dict[str, int], skip_special_tokens: bool = True) -> str:
    """Map ids back to tokens and join them with single spaces.

    With ``skip_special_tokens=True`` leave out ``[PAD]``, ``[CLS]`` and ``[SEP]``; ``[UNK]`` stands
    for a word and is always written out as ``"[UNK]"``.  Raise ``ValueError`` for an id that is not
    in ``vocab``.  Word-level tokenization forgets the spacing, so for text whose words are all in
    the vocabulary the round trip gives the tokens joined by single spaces:

        decode_words(encode_words("Hello, world!", v, True), v)  ->  "Hello , world !"
    """
    raise NotImplementedError


# -- part 2: subword level with HF tokenizers -------------------------------------------------------
class SubwordTokenizer:
    """A BPE tokenizer trained with HF ``tokenizers``; the grader keeps it in its sandbox and calls
    its methods, which return plain data.

    Build it exactly like this (a SentencePiece-style BPE, lossless for text made of known characters):

    * model:          ``models.BPE(unk_token="[UNK]")``
    * normalizer:     ``normalizers.NFC()`` (composes "e" + combining accent into "é"; no lower-casing)
    * pre-tokenizer:  ``pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)``:
      each space becomes "▁" and starts a new word, so "the  fox" -> "the", "▁", "▁fox";
      "never" means no "▁" is added in front of the first word
    * decoder:        ``decoders.Metaspace(replacement="▁", prepend_scheme="never", split=True)``
    * trainer:        ``trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
      special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False)``, then
      ``tokenizer.train_from_iterator(corpus, trainer=trainer)``; special tokens get ids 0..3
    * post-processor: ``processors.TemplateProcessing(single="[CLS] $A [SEP]",
      pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])``

    Then for text made of characters seen in training, ``decode(encode(text)["ids"]) == text``
    exactly, and each token is its slice of the text with spaces shown as "▁":
    ``text[start:end] == token.replace("▁", " ")``.  A character never seen in training becomes
    ``[UNK]`` (id 1).  ``min_frequency`` is the least number of times a pair must occur to be merged.
    """

    def __init__(self, corpus: list[str], vocab_size: int = 400, min_frequency: int = 2) -> None:
        """Train on ``corpus`` (a list of lines) so the vocabulary has at most ``vocab_size`` entries."""
        raise NotImplementedError

    def encode(self, text: str, add_special_tokens: bool = False) -> dict:
        """Return ``{"ids": list[int], "tokens": list[str], "offsets": list[tuple[int, int]]}``.

        Pass ``add_special_tokens`` on to ``Tokenizer.encode``; with True the result is wrapped in
        [CLS] ... [SEP] (their offsets are (0, 0)).  Convert the Encoding's fields to lists.
        """
        raise NotImplementedError

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Return the text for ``ids`` (``Tokenizer.decode``), leaving out special tokens if asked."""
        raise NotImplementedError

    def token_to_id(self, token: str) -> int | None:
        """Return the id of ``token``, or None if it is not in the vocabulary."""
        raise NotImplementedError

    def get_vocab_size(self) -> int:
        """Return the number of entries in the vocabulary, special tokens included."""
        raise NotImplementedError

    def to_str(self) -> str:
        """Return the trained tokenizer as JSON (``Tokenizer.to_str()``); the grader reads it as data."""
        raise NotImplementedError
