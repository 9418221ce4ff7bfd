"""Part 2: the BPE subword tokenizer built with HF tokenizers (SubwordTokenizer, kept in the sandbox)."""

import json

import pytest

from grader.testing import expect_type, record

SPECIALS = {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3}
TEXTS = [
    "Hello, world! How are you?",
    "The crow opened her beak to sing, and the cheese fell to the ground.",
    "Miss Müller came from Zürich; the café served crème brûlée at 8:00.",
    "the  fox   and the crow",
    " one leading space and one trailing space ",
]
HELD_OUT = (
    "The farmer's daughter walked to the market with 3 baskets of fresh plums. "
    "She sold them all before noon, bought a new hat, and sang the whole way home."
)


def _check_span(text, token, start, end, where):
    assert 0 <= start <= end <= len(text), (
        f"{where}: token {token!r} has offsets ({start}, {end}) outside the text (length {len(text)}); return "
        "Encoding.offsets, which index the original string"
    )
    piece = text[start:end]
    assert piece == token.replace("▁", " "), (
        f"{where}: token {token!r} has offsets ({start}, {end}) but text[{start}:{end}] is {piece!r}; with "
        "Metaspace(prepend_scheme='never') every token is its slice of the text with spaces shown as '▁' "
        "(a '▁' prepended to the first word, a lower-casing or other lossy normalizer breaks this)"
    )


@pytest.mark.points(1)
def test_subword_special_tokens(subword, as_encoding):
    """[PAD] [UNK] [CLS] [SEP] have ids 0-3 and add_special_tokens wraps with [CLS] ... [SEP]"""
    for token, want in SPECIALS.items():
        got = subword.token_to_id(token)
        assert got == want, (
            f"token_to_id({token!r}) is {got!r}, expected {want}: pass special_tokens=['[PAD]', '[UNK]', '[CLS]', "
            "'[SEP]'] (in this order) to the BpeTrainer so they get ids 0-3"
        )
    for text in [TEXTS[0], ""]:
        plain, _, _ = as_encoding(subword.encode(text, add_special_tokens=False), f"encode({text!r})")
        ids, tokens, _ = as_encoding(subword.encode(text, add_special_tokens=True),
                                           f"encode({text!r}, add_special_tokens=True)")
        assert ids == [2, *plain, 3] and tokens[:1] == ["[CLS]"] and tokens[-1:] == ["[SEP]"], (
            f"encode({text!r}, add_special_tokens=True) gave ids {ids}: it should be [CLS] (2), the ids of "
            f"encode(text) ({plain}), then [SEP] (3); set a TemplateProcessing post-processor "
            "single='[CLS] $A [SEP]'"
        )
    config = subword.to_str()
    expect_type(config, str, "to_str()")
    try:
        data = json.loads(config)
    except ValueError:
        raise AssertionError("to_str() should return the tokenizer's JSON (Tokenizer.to_str()), which is not "
                             "valid JSON here") from None
    expect_type(data, dict, "the JSON of to_str()")
    model = data.get("model")
    assert isinstance(model, dict) and model.get("type") == "BPE", (
        "to_str() does not describe a BPE model: build the tokenizer as Tokenizer(models.BPE(unk_token='[UNK]'))"
    )
    assert model.get("unk_token") == "[UNK]", (
        f"the BPE model's unk_token is {model.get('unk_token')!r}: use models.BPE(unk_token='[UNK]')"
    )
    added_tokens = data.get("added_tokens")
    expect_type(added_tokens, list, "the 'added_tokens' of to_str()")
    added = {t.get("content"): t for t in added_tokens if isinstance(t, dict)}
    for token, want in SPECIALS.items():
        entry = added.get(token)
        assert entry is not None and entry.get("id") == want and entry.get("special") is True, (
            f"{token} should be a special added token with id {want} (got {entry!r}): give the four special "
            "tokens to the trainer"
        )


@pytest.mark.points(1)
def test_subword_round_trip(subword, corpus, as_encoding):
    """decode(encode(text)) gives back exactly the text"""
    for text in [*corpus[::3], *TEXTS, HELD_OUT, ""]:
        ids, tokens, _ = as_encoding(subword.encode(text, add_special_tokens=True), f"encode({text!r})")
        got = subword.decode(ids, skip_special_tokens=True)
        expect_type(got, str, "decode(ids)")
        assert got == text, (
            f"decode(encode({text!r})) gave {got!r}: the round trip must give back the text exactly "
            "(same case, same spaces, no [CLS]/[SEP]); set decoders.Metaspace(prepend_scheme='never') as the "
            "decoder, keep case (no Lowercase normalizer) and drop special tokens when skip_special_tokens=True"
            f"\ntokens: {tokens}"
        )


@pytest.mark.points(1)
def test_subword_offsets_cover_the_original_text(subword, corpus, as_encoding):
    """offsets map every token back to its exact slice of the original text"""
    for text in [*corpus[1::4], *TEXTS, HELD_OUT]:
        where = f"encode({text!r})"
        _, tokens, offsets = as_encoding(subword.encode(text, add_special_tokens=False), where)
        for token, (start, end) in zip(tokens, offsets, strict=True):
            assert "▁" not in token[1:], (
                f"{where}: token {token!r} crosses a word boundary; use the Metaspace pre-tokenizer with "
                "split=True so merges never join two words"
            )
            _check_span(text, token, start, end, where)
        pieces = "".join(text[s:e] for s, e in offsets)
        assert pieces == text, (
            f"{where}: the token slices text[start:end], read in order, give {pieces!r}: together the tokens "
            "should cover every character of the text once, spaces included"
        )


@pytest.mark.points(1)
def test_subword_vocab_size_and_compression(student, subword, corpus, as_encoding):
    """vocab_size is respected, and more merges give fewer tokens than characters"""
    size = subword.get_vocab_size()
    assert size == 400, (
        f"SubwordTokenizer(corpus, vocab_size=400) has a vocabulary of {size}: pass vocab_size to the "
        "BpeTrainer (the corpus has enough pairs to fill 400 entries)"
    )
    small = student.new("SubwordTokenizer", list(corpus), vocab_size=150, min_frequency=2)
    size = small.get_vocab_size()
    assert size == 150, f"SubwordTokenizer(corpus, vocab_size=150) has a vocabulary of {size}, expected 150"
    n_small = n_large = 0
    for text in corpus[::2]:
        ids, _, _ = as_encoding(small.encode(text, add_special_tokens=False), f"encode({text!r})")
        assert all(0 <= i < 150 for i in ids), (
            f"encode({text!r}) with vocab_size=150 returned ids {ids}, some outside 0..149"
        )
        n_small += len(ids)
        ids, _, _ = as_encoding(subword.encode(text, add_special_tokens=False), f"encode({text!r})")
        n_large += len(ids)
    chars = sum(len(t) for t in corpus[::2])
    record("tokens_per_char", {"vocab_150": round(n_small / chars, 4), "vocab_400": round(n_large / chars, 4)})
    assert n_large < n_small < chars, (
        f"on the corpus, vocab_size=150 gives {n_small} tokens and vocab_size=400 gives {n_large}, for {chars} "
        "characters: a trained BPE tokenizer should need fewer tokens than characters, and fewer still with "
        "a larger vocabulary"
    )
    ids, _, _ = as_encoding(subword.encode(HELD_OUT, add_special_tokens=False), "encode(held-out text)")
    assert len(ids) <= 0.6 * len(HELD_OUT), (
        f"a held-out paragraph of {len(HELD_OUT)} characters took {len(ids)} tokens; a BPE tokenizer with 400 "
        "entries should need well under 0.6 tokens per character: are the merges learned and applied?"
    )
