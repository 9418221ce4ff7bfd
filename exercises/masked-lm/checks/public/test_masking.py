"""Public checks of the masked-lm exercise: the masking statistics and the loss, on the packaged tokenizer.

Rates are measured on more than 10^5 eligible tokens and compared with their binomial expectation within
5 standard deviations (a correct masker fails one comparison with probability 5.7e-7).
"""

import pytest
import torch

from grader.testing import StudentCodeError, assert_tensor_close, record


@pytest.fixture
def masker(student, model_dir):
    return student.new("MLMMasker", model_dir)


@pytest.mark.points(2)
def test_selection_rate(masker, mlm, seed):
    """15 % of the eligible (non-special) tokens are selected, within 5 binomial standard deviations"""
    ids = mlm.stat_batch(seed)
    masked, labels = mlm.mask_call(masker, ids, seed)
    c = mlm.counts(ids, masked, labels)
    record("counts", c)
    assert c["eligible"] >= 100_000, "grader bug: the statistics batch is too small"
    problem = mlm.rate_problem(c["selected"], c["eligible"], 0.15, "the selected share of eligible tokens")
    if problem:
        raise AssertionError(f"{mlm.diagnose_rates(c, 0.15, 0.8, 0.1)}\n{problem}")


@pytest.mark.points(3)
def test_replacement_rates(masker, mlm, seed):
    """of the selected tokens, 80 % become [MASK], 10 % a random token, 10 % stay unchanged (5 sigma bounds)"""
    ids = mlm.stat_batch(seed + 1)
    masked, labels = mlm.mask_call(masker, ids, seed + 1)
    c = mlm.counts(ids, masked, labels)
    record("counts", c)
    mlm.expect_rates(c, 0.15, 0.8, 0.1, "default probabilities 0.15 / 0.8 / 0.1")


@pytest.mark.points(2)
def test_special_tokens_never_selected(masker, mlm, seed):
    """[CLS], [SEP], [PAD], [UNK] and [MASK] in the input are never selected, never changed, labelled -100"""
    ids = mlm.stat_batch(seed + 2)
    masked, labels = mlm.mask_call(masker, ids, seed + 2)
    names = {mlm.vocab.cls: "[CLS]", mlm.vocab.sep: "[SEP]", mlm.vocab.pad: "[PAD]", mlm.vocab.unk: "[UNK]",
             mlm.vocab.mask_id: "[MASK]"}
    for token_id, name in names.items():
        at = ids == token_id
        chosen = int((labels[at] != -100).sum())
        changed = int((masked[at] != token_id).sum())
        assert chosen == 0 and changed == 0, (
            f"{chosen} of {int(at.sum())} {name} tokens were selected and {changed} changed: special tokens are "
            "never eligible. Exclude every id in tokenizer.all_special_ids ([PAD], [UNK], [CLS], [SEP], [MASK]), "
            "not only [CLS]/[SEP]/padding")


@pytest.mark.points(1)
def test_labels_are_original_ids(masker, mlm, seed):
    """labels hold the original id at selected positions and -100 elsewhere; unselected tokens are unchanged"""
    ids = mlm.stat_batch(seed + 3)
    masked, labels = mlm.mask_call(masker, ids, seed + 3)
    selected = labels != -100
    share = float(selected.float().mean())
    assert share < 0.5, (
        f"{100 * share:.0f} % of the positions have a label: labels must be -100 wherever the token was NOT "
        "selected (the loss counts only selected tokens)")
    assert int(selected.sum()) > 0, "no position has a label: labels are the original ids at selected positions"
    wrong = selected & (labels != ids)
    if bool(wrong.any()):
        masked_share = float((labels[wrong] == mlm.vocab.mask_id).float().mean())
        hint = (" (they hold [MASK]: take the labels from the input BEFORE replacing tokens)"
                if masked_share > 0.5 else " (they hold replacement tokens: copy the labels before replacing)")
        raise AssertionError(f"{int(wrong.sum())} labels differ from the original token at their position{hint}")
    outside = ~selected & (masked != ids)
    assert not bool(outside.any()), (
        f"{int(outside.sum())} tokens that were not selected (label -100) were changed anyway: only selected "
        "tokens are replaced, and every replaced token has its original id as label")


@pytest.mark.points(1)
def test_reproducible_under_seed(student, masker, model_dir, mlm, seed):
    """the same seed gives the same masks (also from a fresh masker); another seed gives other masks"""
    ids = mlm.stat_batch(seed + 4)[:64]
    first = mlm.mask_call(masker, ids, 11)
    again = mlm.mask_call(masker, ids, 11, "a second mask(input_ids, seed=11) on the same masker")
    fresh = mlm.mask_call(student.new("MLMMasker", model_dir), ids, 11, "mask(input_ids, seed=11) on a new masker")
    other = mlm.mask_call(masker, ids, 12)
    advice = ("the same (input_ids, seed) gave different results: draw from torch.Generator().manual_seed(seed) "
              "made inside mask(), not from the global RNG or a generator kept between calls")
    for got, what in ((again, "the same masker"), (fresh, "a new masker")):
        for a, b, name in zip(first, got, ("input_ids", "labels"), strict=True):
            assert_tensor_close(b, a, rtol=0, atol=0, name=f"{name} of seed 11 again, {what}", advice=advice)
    assert not torch.equal(first[0], other[0]), (
        "seeds 11 and 12 gave the same masked input_ids: the seed must drive the random draws")


@pytest.mark.points(1)
def test_mlm_loss(student, reference):
    """mlm_loss is the mean cross-entropy over labelled positions only (-100 ignored), every token weighted alike"""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 7, 11, generator=g) * 2
    labels = torch.randint(11, (3, 7), generator=g)
    labels[0, :6] = -100  # rows with 1, 4 and 7 labelled tokens: a mean of row means would differ
    labels[1, :3] = -100
    want = reference.mlm_loss(logits, labels)
    got = student.mlm_loss(logits, labels)
    assert_tensor_close(got, want, rtol=1e-5, atol=1e-6, name="mlm_loss(logits (3, 7, 11), labels (3, 7))", advice=(
        "mlm_loss should be F.cross_entropy over the flattened positions with ignore_index=-100: the sum over "
        "labelled tokens divided by their number (no per-sequence mean, no -100 positions counted)"))
    flat = student.mlm_loss(logits.reshape(-1, 11), labels.reshape(-1))
    assert_tensor_close(flat, want, rtol=1e-5, atol=1e-6, name="mlm_loss on (n, vocab) logits", advice=(
        "mlm_loss should accept (n, vocab_size) logits with (n,) labels too"))


@pytest.mark.points(1)
def test_bad_probabilities_raise(student, model_dir):
    """MLMMasker raises ValueError for a probability outside [0, 1] or mask + random above 1"""
    for kwargs in ({"mlm_probability": 1.5}, {"mlm_probability": -0.1}, {"mask_replace_prob": 0.8,
                                                                          "random_replace_prob": 0.3}):
        with pytest.raises(StudentCodeError) as caught:
            student.new("MLMMasker", model_dir, **kwargs)
            pytest.fail(f"MLMMasker(model_dir, {kwargs}) should raise ValueError: probabilities lie in [0, 1] and "
                        "mask_replace_prob + random_replace_prob must not exceed 1")
        assert caught.value.exc_type == "ValueError", (
            f"MLMMasker(model_dir, {kwargs}) raised {caught.value.exc_type}, expected ValueError")
