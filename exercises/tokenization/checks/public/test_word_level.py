"""Part 1: the word-level tokenizer in plain Python (pre_tokenize, build_vocab, encode_words, decode_words)."""

import pytest

from grader.testing import StudentCodeError

TEXTS = [
    "Hello, world! How are you?",
    '"Good morning, Mistress Crow," said the fox.',
    "The café served crème brûlée at 8:00 (closed on Mondays).",
    "It's late; the children's books aren't here...",
    "A kilo of apples costs 2.50 -- not 3.20!",
    "Miss Müller came from Zürich.",
    "  two leading spaces, and two trailing  ",
    "tabs\tand\nnew lines",
    "",
]


def _hint(text, got, want):
    """Name the most likely cause of a pre_tokenize mismatch."""
    got_tokens = [t for t, _, _ in got]
    want_tokens = [t for t, _, _ in want]
    if [t.lower() for t in got_tokens] == [t.lower() for t in want_tokens] and got_tokens != want_tokens:
        return "the tokens lost their case: keep the original text, do not lower-case it"
    if any(len(t) > 1 and any(not (c.isalnum() or c == "_") for c in t) for t in got_tokens):
        return ("a token holds punctuation together with other characters: every character that is neither a "
                "word character nor whitespace is a token of its own (regex \\w+|[^\\w\\s])")
    if got_tokens == want_tokens:
        return "the tokens are right but the offsets are not: (start, end) with text[start:end] == token"
    return "tokens are maximal runs of word characters (\\w+) or single other non-space characters"


@pytest.mark.points(2)
def test_pre_tokenize_matches_reference(student, reference, as_word_tokens, diff):
    """pre_tokenize splits words and punctuation exactly as specified"""
    for text in TEXTS:
        got = as_word_tokens(student.pre_tokenize(text), f"pre_tokenize({text!r})")
        want = reference.pre_tokenize(text)
        assert got == want, (
            f"pre_tokenize({text!r}) is wrong: {_hint(text, got, want)}\n"
            f"first difference {diff(got, want)}\ngot:      {got}\nexpected: {want}"
        )


@pytest.mark.points(1)
def test_pre_tokenize_offsets_index_the_original_text(student, as_word_tokens):
    """pre_tokenize offsets are (start, end) into the original text"""
    for text in TEXTS:
        got = as_word_tokens(student.pre_tokenize(text), f"pre_tokenize({text!r})")
        previous_end = 0
        for token, start, end in got:
            assert 0 <= start < end <= len(text), (
                f"pre_tokenize({text!r}): token {token!r} has offsets ({start}, {end}); offsets must satisfy "
                f"0 <= start < end <= len(text) = {len(text)} (end is exclusive, like a slice)"
            )
            assert text[start:end] == token, (
                f"pre_tokenize({text!r}): text[{start}:{end}] is {text[start:end]!r} but the token is {token!r}; "
                "offsets index the ORIGINAL text (end exclusive) and the token must be exactly that slice "
                "(no lower-casing, no stripped or added characters)"
            )
            assert start >= previous_end, (
                f"pre_tokenize({text!r}): token {token!r} at ({start}, {end}) overlaps or comes before the "
                "previous token; return tokens left to right"
            )
            assert not any(c.isspace() for c in token), (
                f"pre_tokenize({text!r}): token {token!r} contains whitespace; whitespace separates tokens "
                "and belongs to none of them"
            )
            previous_end = end
        covered = "".join(token for token, _, _ in got)
        assert covered == "".join(text.split()), (
            f"pre_tokenize({text!r}) drops characters: every non-whitespace character must belong to a token "
            f"(kept {covered!r})"
        )


@pytest.mark.points(1)
def test_build_vocab_matches_reference(student, reference, corpus, as_vocab, diff, upstream):
    """build_vocab: special tokens at ids 0-3, then words by frequency, min_freq applied"""
    got = as_vocab(student.build_vocab(list(corpus), min_freq=2), "build_vocab(corpus, min_freq=2)")
    want = reference.build_vocab(list(corpus), min_freq=2)
    head = list(got.items())[:4]
    assert head == list(want.items())[:4], (
        f"build_vocab must start with the special tokens [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3; got {head}"
    )
    assert sorted(got.values()) == list(range(len(got))), (
        "build_vocab ids must be 0, 1, 2, ... without gaps or repeats"
    )
    if got != want:
        problem = upstream(student, corpus, "build_vocab")
        assert problem is None, f"{problem}\nbuild_vocab(corpus, min_freq=2): {len(got)} entries, expected {len(want)}"
    assert len(got) == len(want), (
        f"build_vocab(corpus, min_freq=2) has {len(got)} entries, expected {len(want)}: keep every word seen "
        "at least min_freq times in the pre-tokenized corpus (case-sensitive, punctuation counts as words)"
    )
    got_order = sorted(got, key=got.get)
    want_order = sorted(want, key=want.get)
    assert got_order == want_order, (
        "build_vocab orders words wrongly: after the 4 special tokens, sort by count (highest first) and "
        f"break ties by the word itself (Python string order); first difference {diff(got_order, want_order)}"
    )


@pytest.mark.points(1)
def test_encode_unknown_words_and_special_tokens(student, reference, corpus, as_ids, upstream):
    """encode_words maps unknown words to [UNK] and wraps with [CLS] ... [SEP]"""
    vocab = reference.build_vocab(list(corpus))
    texts = [
        "The fox ate a sandwich in Reykjavik.",
        "The crow, the fox and the cheese.",
        "Quantum chromodynamics!",
        "",
    ]
    for text in texts:
        got = as_ids(student.encode_words(text, vocab, add_special_tokens=False), f"encode_words({text!r}, vocab)")
        want = reference.encode_words(text, vocab, add_special_tokens=False)
        if got != want:
            problem = upstream(student, [text], "encode_words")
            assert problem is None, f"{problem}\nencode_words({text!r}) gave {got}, expected {want}"
        assert len(got) == len(want), (
            f"encode_words({text!r}) returned {len(got)} ids, but pre_tokenize gives {len(want)} tokens: split "
            "with pre_tokenize and give every token an id; a token that is not in the vocabulary becomes "
            "[UNK] (id 1), it is never dropped"
        )
        assert got == want, (
            f"encode_words({text!r}) gave {got}, expected {want}: look each word up in vocab and use "
            "[UNK] = 1 for the words it does not contain"
        )
        wrapped = as_ids(student.encode_words(text, vocab, add_special_tokens=True),
                         f"encode_words({text!r}, vocab, add_special_tokens=True)")
        assert wrapped == [2, *want, 3], (
            f"encode_words({text!r}, add_special_tokens=True) gave {wrapped}: it should be [CLS] (id 2), the "
            "word ids, then [SEP] (id 3)"
        )


@pytest.mark.points(1)
def test_decode_round_trips_in_vocabulary_text(student, reference, corpus, as_ids, upstream):
    """decode_words(encode_words(text)) gives the tokens back, joined by single spaces"""
    vocab = reference.build_vocab(list(corpus))
    texts = [*corpus[:25], "The cat sat on the mat .", "The fox, the crow and the cheese!"]
    for text in texts:
        if 1 in reference.encode_words(text, vocab):
            continue  # only text whose words are all in the vocabulary round-trips
        ids = as_ids(student.encode_words(text, vocab, add_special_tokens=True), f"encode_words({text!r})")
        got = student.decode_words(ids, vocab)
        want = " ".join(token for token, _, _ in reference.pre_tokenize(text))
        if got == want:
            continue
        if isinstance(got, str) and any(t in got for t in ("[CLS]", "[SEP]", "[PAD]")):
            advice = "with skip_special_tokens=True leave out [PAD], [CLS] and [SEP]"
        elif problem := upstream(student, [text], "the round trip (encode_words, then decode_words)"):
            advice = problem
        else:
            advice = ("encode_words keeps every token as pre_tokenize gives it (case included), and decode_words "
                      "maps ids back to tokens and joins them with single spaces")
        assert got == want, (  # the advice first: the message is cut at its length limit
            f"{advice}\ndecode_words(encode_words({text!r}, add_special_tokens=True)) gave {got!r}, "
            f"expected {want!r}"
        )
    ids = [2, vocab["The"], vocab["fox"], 3, 0, 0]
    got = student.decode_words(ids, vocab, skip_special_tokens=False)
    assert got == "[CLS] The fox [SEP] [PAD] [PAD]", (
        f"decode_words({ids}, vocab, skip_special_tokens=False) gave {got!r}: with skip_special_tokens=False "
        "every id is written out, special tokens included"
    )
    got = student.decode_words([vocab["The"], 1, vocab["fox"]], vocab)
    assert got == "The [UNK] fox", (
        f"decode_words([The, [UNK], fox]) gave {got!r}, expected 'The [UNK] fox': [UNK] stands for a word "
        "and is always written out"
    )
    with pytest.raises(StudentCodeError) as e:
        student.decode_words([vocab["The"], len(vocab) + 7], vocab)
        pytest.fail("decode_words with an id that is not in the vocabulary returned normally: raise ValueError")
    assert e.value.exc_type == "ValueError", (
        f"decode_words with an id that is not in the vocabulary raised {e.value.exc_type}, expected ValueError"
    )
