"""Part 2, hidden: the BPE tokenizer on held-out text, unseen characters and min_frequency."""

import pytest

from grader.testing import expect_type, record

UNSEEN = [
    "I ❤️ tokenizers 😀 so much.",
    "Straße in 中国",
    "ΩMEGA and ∑",
]

# (what a student may be told about it, the text): every character of these occurs in the corpus
HELD_OUT = [
    ("a sentence with new words and accents",
     "Zoë and Xavier rode their bicycles to the harbour at 7:05, then ate crêpes."),
    ("a sentence with repeated, leading and trailing spaces",
     "  Two spaces before, three   in the middle, and one after "),
    ("the empty string", ""),
    ("a sentence with numbers and punctuation",
     "Unbelievable! The grasshopper's orchestra played 1,234 songs; nobody slept."),
    ("a sentence full of accented words", "The naïve façade of São Paulo's hôtel — 99% résumé?"),
]
# Unicode compatibility characters (a ligature, a fraction, full-width letters, a superscript): NFC keeps them as
# they are (unknown to the corpus, so [UNK]); NFKC would fold them into ordinary letters and digits
COMPATIBILITY = "The ﬁnal ½ of the Ｆｏｘ story²."
COMPATIBLE_CHARS = "ﬁ½Ｆｏｘ²"
COMPOSED = "Café au lait in Zürich, crème brûlée in Málaga."
DECOMPOSED = "Cafe\u0301 au lait in Zu\u0308rich, cre\u0300me bru\u0302le\u0301e in Ma\u0301laga."


@pytest.mark.points(1)
def test_subword_unseen_characters_map_to_unk(subword, alphabet, as_encoding):
    """characters never seen in training become [UNK] (id 1), nothing is dropped"""
    for text in UNSEEN:
        where = f"encode({text!r})"
        ids, tokens, offsets = as_encoding(subword.encode(text, add_special_tokens=False), where)
        for i, token, (start, end) in zip(ids, tokens, offsets, strict=True):
            if token == "[UNK]":
                assert i == 1, f"{where}: [UNK] has id {i}, it must be 1: give the trainer the special tokens in order"
                span = text[start:end]
                assert span and all(c not in alphabet for c in span), (
                    f"{where}: [UNK] at ({start}, {end}) covers {span!r}, which the corpus contains: only "
                    "characters never seen in training should be unknown"
                )
        for pos, char in enumerate(text):
            if char in alphabet:
                continue
            unk = [t for t, (s, e) in zip(tokens, offsets, strict=True) if s <= pos < e and t == "[UNK]"]
            assert unk, (
                f"{where}: {char!r} never occurs in the training corpus, so it should be encoded as [UNK] "
                "(id 1) with offsets covering it: create the model as models.BPE(unk_token='[UNK]')"
            )
        dropped = [c for pos, c in enumerate(text)
                   if not c.isspace() and not any(s <= pos < e for s, e in offsets)]
        assert not dropped, (
            f"{where}: no token covers {dropped[:3]}: characters were dropped; without unk_token='[UNK]' the "
            "BPE model silently drops what it does not know"
        )
        assert 1 in ids, f"{where} contains no [UNK] (id 1) although the text has characters the corpus lacks"


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_subword_held_out_text(subword, alphabet, as_encoding):
    """held-out text: exact round trip, exact offsets, NFC normalization"""
    for label, text in HELD_OUT:
        if not set(text) <= alphabet:
            raise RuntimeError(f"held-out text uses characters outside the corpus: {set(text) - alphabet}")
        ids, tokens, offsets = as_encoding(subword.encode(text, add_special_tokens=True), f"encode({label})")
        got = subword.decode(ids, skip_special_tokens=True)
        expect_type(got, str, "decode(ids)")
        assert got == text, (
            f"decode(encode(text)) did not give back {label}: keep case and every space "
            "(Metaspace pre-tokenizer and decoder, prepend_scheme='never') and skip [CLS]/[SEP] when decoding"
        )
        for token, (start, end) in zip(tokens[1:-1], offsets[1:-1], strict=True):
            assert 0 <= start <= end <= len(text) and text[start:end] == token.replace("▁", " "), (
                f"on {label}, a token's offsets do not point at its own characters in the original text: "
                "return Encoding.offsets unchanged, and do not prepend '▁' to the first word"
            )
    composed, _, _ = as_encoding(subword.encode(COMPOSED, add_special_tokens=False), "encode(composed text)")
    decomposed, _, _ = as_encoding(subword.encode(DECOMPOSED, add_special_tokens=False),
                                   "encode(decomposed text)")
    assert decomposed == composed, (
        "accented letters written as a base letter plus a combining accent (Unicode NFD) should give the same "
        "ids as the precomposed letters: set normalizers.NFC() as the normalizer"
    )
    _, tokens, offsets = as_encoding(subword.encode(COMPATIBILITY, add_special_tokens=False),
                                     "encode(text with compatibility characters)")
    for pos, char in enumerate(COMPATIBILITY):
        if char not in COMPATIBLE_CHARS:
            continue
        covering = [t for t, (s, e) in zip(tokens, offsets, strict=True) if s <= pos < e]
        assert covering == ["[UNK]"], (
            "Unicode compatibility characters (the ligature 'ﬁ', '½', full-width letters, a superscript '²') "
            "must stay themselves, so, unseen in training, each becomes [UNK]: normalize with NFC only; NFKC (or "
            f"NFKD) folds them into other characters ('ﬁ' -> 'fi', 'Ｆ' -> 'F'); {char!r} was encoded as {covering}"
        )


@pytest.mark.points(1)
def test_subword_min_frequency_limits_merges(student, corpus, as_encoding):
    """min_frequency stops merges of rare pairs"""
    sizes = {}
    for min_frequency in (2, 40, 10**6):
        tok = student.new("SubwordTokenizer", list(corpus), vocab_size=400, min_frequency=min_frequency)
        sizes[min_frequency] = tok.get_vocab_size()
        expect_type(sizes[min_frequency], int, "get_vocab_size()")
        if min_frequency == 10**6:
            for text in corpus[::7]:
                _, tokens, offsets = as_encoding(tok.encode(text, add_special_tokens=False), f"encode({text!r})")
                long = [t for t, (s, e) in zip(tokens, offsets, strict=True) if e - s != 1]
                assert not long, (
                    f"with min_frequency=10**6 no pair is frequent enough to merge, so every token should be one "
                    f"character, but encode({text!r}) has {long[:3]}: pass min_frequency to the BpeTrainer"
                )
    record("vocab_size_by_min_frequency", {str(k): v for k, v in sizes.items()})
    assert sizes[10**6] < sizes[40] < sizes[2] == 400, (
        f"vocabulary sizes for min_frequency 2, 40, 10**6 are {sizes[2]}, {sizes[40]}, {sizes[10**6]}: a higher "
        "min_frequency should allow fewer merges and so a smaller vocabulary; pass it to the BpeTrainer"
    )
