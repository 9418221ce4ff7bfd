# wrong: the subword tokenizer has no NFC normalizer: decomposed accents become unknown characters
# loses: test_subword_held_out_text
"""Without NFC, 'e' + U+0301 is not the 'é' the tokenizer was trained on."""

from __future__ import annotations

import re
from collections import Counter

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]")
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 1, 2, 3

_TOKEN = re.compile(r"\w+|[^\w\s]")


# -- part 1: word level --------------------------------------------------------------------------
def pre_tokenize(text: str) -> list[tuple[str, int, int]]:
    return [(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def build_vocab(corpus: list[str], min_freq: int = 1, max_size: int | None = None) -> dict[str, int]:
    if min_freq < 1:
        raise ValueError(f"min_freq must be at least 1, got {min_freq}")
    if max_size is not None and max_size < len(SPECIAL_TOKENS):
        raise ValueError(f"max_size must leave room for the {len(SPECIAL_TOKENS)} special tokens, got {max_size}")
    counts = Counter(token for line in corpus for token, _, _ in pre_tokenize(line))
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max_size - len(SPECIAL_TOKENS)]
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for word in words:
        vocab[word] = len(vocab)
    return vocab


def encode_words(text: str, vocab: dict[str, int], add_special_tokens: bool = False) -> list[int]:
    ids = [vocab.get(token, UNK_ID) for token, _, _ in pre_tokenize(text)]
    return [CLS_ID, *ids, SEP_ID] if add_special_tokens else ids


def decode_words(ids: list[int], vocab: dict[str, int], skip_special_tokens: bool = True) -> str:
    inverse = {i: tok for tok, i in vocab.items()}
    tokens = []
    for i in ids:
        if i not in inverse:
            raise ValueError(f"id {i} is not in the vocabulary")
        if skip_special_tokens and i in (PAD_ID, CLS_ID, SEP_ID):
            continue
        tokens.append(inverse[i])
    return " ".join(tokens)


# -- part 2: subword (BPE) with HF tokenizers ----------------------------------------------------
class SubwordTokenizer:
    def __init__(self, corpus: list[str], vocab_size: int = 400, min_frequency: int = 2) -> None:
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="never", split=True)
        tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="never", split=True)
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            show_progress=False,
        )
        tok.train_from_iterator(corpus, trainer=trainer)
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", CLS_ID), ("[SEP]", SEP_ID)],
        )
        self.tokenizer = tok

    def encode(self, text: str, add_special_tokens: bool = False) -> dict:
        enc = self.tokenizer.encode(text, add_special_tokens=add_special_tokens)
        return {"ids": list(enc.ids), "tokens": list(enc.tokens), "offsets": [tuple(o) for o in enc.offsets]}

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self.tokenizer.token_to_id(token)

    def get_vocab_size(self) -> int:
        return self.tokenizer.get_vocab_size()

    def to_str(self) -> str:
        return self.tokenizer.to_str()
