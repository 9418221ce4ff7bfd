"""Part 1, hidden: the word-level tokenizer on held-out text, and build_vocab's limits."""

import pytest

from grader.testing import StudentCodeError

HELD_OUT = [
    "",
    "   ",
    "Ça va? Très bien, merci!",
    "Naïve Zoë ate 3½ crêpes 🍰 at 10:45 — wow!!!",
    "I ❤️ tokenizers 😀👍 so much.",
    "snake_case and CamelCase, under_score_ids_42",
    "multiple   spaces\t\tand\n\nnew lines\r\n",
    "e-mail: someone@example.com, cost: $5.99 (50% off)",
    "ÜNÏCÖDÉ capitals: ÀÉÎÕÜ and Straße",
    "日本語のテキスト, and Ελληνικά too.",
    "The fox said: «Bonjour, Madame Crow!»",
    "The quick brown fox jumps over the lazy dog's back.",
]


@pytest.mark.points(2)
def test_word_level_matches_reference_on_held_out_texts(student, reference, corpus, as_word_tokens, as_ids):
    """word level: pre_tokenize, encode_words and decode_words on held-out Unicode text"""
    vocab = reference.build_vocab(list(corpus))
    for text in HELD_OUT:
        got = as_word_tokens(student.pre_tokenize(text), f"pre_tokenize({text!r})")
        want = reference.pre_tokenize(text)
        assert got == want, (
            f"pre_tokenize({text!r}) differs from the specification: keep case and accents, give offsets into "
            f"the original text, and split with \\w+|[^\\w\\s]\ngot:      {got}\nexpected: {want}"
        )
        for add in (False, True):
            got_ids = as_ids(student.encode_words(text, vocab, add_special_tokens=add),
                             f"encode_words({text!r}, add_special_tokens={add})")
            want_ids = reference.encode_words(text, vocab, add_special_tokens=add)
            assert got_ids == want_ids, (
                f"encode_words({text!r}, add_special_tokens={add}) gave {got_ids}, expected {want_ids}: "
                "unknown words are [UNK] (1), [CLS] (2) and [SEP] (3) wrap the sequence"
            )
        ids = reference.encode_words(text, vocab, add_special_tokens=True)
        got_text = student.decode_words(ids, vocab)
        want_text = reference.decode_words(ids, vocab)
        assert got_text == want_text, (
            f"decode_words(encode_words({text!r})) gave {got_text!r}, expected {want_text!r}"
        )


@pytest.mark.points(1)
def test_build_vocab_min_freq_and_max_size(student, reference, corpus, as_vocab, diff, upstream):
    """build_vocab honours min_freq and max_size and rejects impossible limits"""
    cases = [
        ({"min_freq": 3}, list(corpus)),
        ({"max_size": 50}, list(corpus)),
        ({"min_freq": 2, "max_size": 4}, list(corpus)),
        ({"min_freq": 1}, ["b a c", "c a b", "d", "B"]),
        ({"min_freq": 2, "max_size": 6}, ["b a c", "c a b", "d d", "B"]),
    ]
    for kwargs, lines in cases:
        what = f"build_vocab({'corpus' if lines == corpus else lines}, {kwargs})"
        got = as_vocab(student.build_vocab(lines, **kwargs), what)
        want = reference.build_vocab(lines, **kwargs)
        if got != want:
            problem = upstream(student, lines, "build_vocab")
            assert problem is None, f"{problem}\n{what} has {len(got)} entries, expected {len(want)}"
        if "max_size" in kwargs:
            assert len(got) <= kwargs["max_size"], (
                f"{what} has {len(got)} entries: max_size caps the whole vocabulary, special tokens included"
            )
        assert len(got) == len(want), (
            f"{what} gave {len(got)} entries, expected {len(want)}: keep words seen at least min_freq times "
            "and cut the list so the vocabulary (4 special tokens included) has at most max_size entries"
        )
        got_order, want_order = sorted(got, key=got.get), sorted(want, key=want.get)
        assert got_order == want_order and got == want, (
            f"{what} has the right size but the wrong ids, first difference {diff(got_order, want_order)}: "
            "special tokens take ids 0-3, then words by count (highest first), ties by the word, ids 4, 5, ..."
        )
    for kwargs in ({"max_size": 3}, {"min_freq": 0}):
        with pytest.raises(StudentCodeError) as e:
            student.build_vocab(list(corpus), **kwargs)
            pytest.fail(f"build_vocab(corpus, {kwargs}) returned normally: raise ValueError when min_freq < 1 "
                        "or when max_size leaves no room for the 4 special tokens")
        assert e.value.exc_type == "ValueError", (
            f"build_vocab(corpus, {kwargs}) should raise ValueError, it raised {e.value.exc_type}"
        )
