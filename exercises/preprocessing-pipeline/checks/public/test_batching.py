"""Public checks of tokenize, collate, batches and pack (course tokenizer: [CLS] = 101, [SEP] = 102, [PAD] = 0)."""

import pytest
import torch

from grader.testing import StudentCodeError, expect_type

TEXTS = ["Hello world!", "", "A somewhat longer sentence, with punctuation; and more words in it."]


@pytest.mark.points(1)
def test_tokenize_truncates_with_special_tokens(student, reference, tok_dir, pp):
    """ids of the model's tokenizer with [CLS]/[SEP]; truncation keeps [SEP] and the length <= max_length"""
    want = reference.tokenize(TEXTS, tok_dir)
    got = pp.expect_id_lists(student.tokenize(TEXTS, tok_dir), len(TEXTS), "tokenize(texts, tokenizer_dir)")
    assert got == want, (
        "tokenize should give the ids of the tokenizer in tokenizer_dir, with its special tokens ([CLS] ... [SEP]) "
        f"and nothing cut when max_length is None\ngot {got}\nexpected {want}")
    got = pp.expect_id_lists(student.tokenize(TEXTS, tok_dir, max_length=6), len(TEXTS), "tokenize(..., max_length=6)")
    want = reference.tokenize(TEXTS, tok_dir, max_length=6)
    if any(len(g) > 6 for g in got):
        raise AssertionError(f"tokenize(..., max_length=6) returned sequences of {[len(g) for g in got]} ids: truncate "
                             "so that each has at most max_length ids, special tokens included")
    assert got == want, (
        "with max_length, let the tokenizer truncate (truncation=True, max_length=...): the sequence keeps its "
        f"final [SEP] (102); cutting the id list afterwards drops it\ngot {got}\nexpected {want}")
    got = pp.expect_id_lists(student.tokenize(TEXTS, tok_dir, max_length=6, add_special_tokens=False), len(TEXTS),
                             "tokenize(..., add_special_tokens=False)")
    want = reference.tokenize(TEXTS, tok_dir, max_length=6, add_special_tokens=False)
    assert got == want, (f"add_special_tokens=False: no [CLS]/[SEP], still at most max_length ids\ngot {got}\n"
                         f"expected {want}")
    assert student.tokenize([], tok_dir) == [], "tokenize([], ...) should return []"


FEATURES = [
    {"input_ids": [101, 7, 8, 102], "labels": [5, 6]},
    {"input_ids": [101, 9, 102], "labels": [4, 3, 2, 1, 1]},
    {"input_ids": [101, 102], "labels": [7]},
]


@pytest.mark.points(1)
def test_collate_pads_and_masks(student, reference, pp):
    """right padding to the longest / max_length, rounded up to a multiple; mask from lengths; labels padded -100"""
    plain = [{"input_ids": f["input_ids"]} for f in FEATURES]
    cases = [
        ("collate(features, pad_token_id=0)", plain, {}),
        ("collate(features with labels, pad_token_id=0)", FEATURES, {}),
        ("collate(..., pad_to_multiple_of=4)", FEATURES, {"pad_to_multiple_of": 4}),
        ("collate(..., max_length=6)", FEATURES, {"max_length": 6}),
        ("collate(..., max_length=6, pad_to_multiple_of=4) (width 8: max_length rounded up)", FEATURES,
         {"max_length": 6, "pad_to_multiple_of": 4}),
    ]
    for what, features, options in cases:
        want = reference.collate(features, 0, **options)
        pp.expect_batch(student.collate(features, 0, **options), want, what)


@pytest.mark.points(1)
def test_collate_raises(student):
    """ValueError for no features, a feature longer than max_length, labels on only some features, batch_size < 1"""
    bad = [
        ("collate([], 0)", "collate", ([], 0), {}, "there is nothing to collate"),
        ("collate(features, 0, max_length=3) with a 4-id input", "collate", (FEATURES, 0), {"max_length": 3},
         "an input is longer than max_length (truncate when tokenizing instead)"),
        ("collate(features, 0, max_length=4) with 5 labels", "collate", (FEATURES, 0), {"max_length": 4},
         "the labels of a feature are longer than max_length"),
        ("collate with labels on only some features", "collate",
         ([FEATURES[0], {"input_ids": [101, 102]}], 0), {}, "some features have labels and others do not"),
        ("batches(features, batch_size=0, pad_token_id=0)", "batches", (FEATURES, 0, 0), {},
         "a batch_size below 1 makes no batches"),
    ]
    for what, fn, args, kwargs, reason in bad:
        with pytest.raises(StudentCodeError) as err:
            getattr(student, fn)(*args, **kwargs)
            pytest.fail(f"{what} should raise ValueError: {reason}")
        assert err.value.exc_type == "ValueError", (
            f"{what} raised {err.value.exc_type}, expected ValueError ({reason})")


@pytest.mark.points(1)
def test_pack_blocks(student, reference, pp):
    """concatenate with a separator after each document, cut into blocks; the remainder dropped or padded"""
    docs = [[11, 12, 13], [], [21, 22], [31, 32, 33, 34, 35, 36, 37], [41]]
    for drop in (True, False):
        what = f"pack(docs, block_size=4, eos_token_id=2, drop_remainder={drop}, pad_token_id=0)"
        want = reference.pack(docs, 4, 2, drop_remainder=drop, pad_token_id=0)
        got = student.pack(docs, 4, 2, drop_remainder=drop, pad_token_id=0)
        expect_type(got, dict, what)
        ids = got.get("input_ids")
        if isinstance(ids, torch.Tensor) and ids.shape != want["input_ids"].shape:
            raise AssertionError(
                f"{what} made {tuple(ids.shape)} blocks, expected {tuple(want['input_ids'].shape)}: the stream is "
                "every document followed by eos (empty documents skipped), 18 tokens -> 4 full blocks and a "
                "remainder of 2; documents are not cut one by one")
        pp.expect_batch(got, want, what, advice=pp.PACK_ADVICE)
    empty = student.pack([[], []], 4, 2)
    expect_type(empty, dict, "pack of empty documents")
    expect_type(empty.get("input_ids"), torch.Tensor, "pack(...)['input_ids'] of empty documents")
    assert tuple(empty["input_ids"].shape) == (0, 4), (
        f"pack of documents without tokens should give shape (0, block_size), got {tuple(empty['input_ids'].shape)}")
    with pytest.raises(StudentCodeError) as err:
        student.pack(docs, 0, 2)
        pytest.fail("pack(docs, block_size=0, ...) should raise ValueError")
    assert err.value.exc_type == "ValueError", f"pack with block_size=0 raised {err.value.exc_type}, not ValueError"
