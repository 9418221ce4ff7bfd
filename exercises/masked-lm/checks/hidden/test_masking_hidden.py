"""Hidden checks of the masked-lm exercise: rates under other arguments, random-token spread, no mutation
across epochs, and MLM fine-tuning measured on hidden sentences."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from grader.testing import curve, expect_tensor, record

HIDDEN_TEXT = Path(__file__).parent / "data" / "hidden_text.txt"


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_rates_follow_arguments(student, model_dir, mlm, seed):
    """the four rates follow mlm_probability, mask_replace_prob and random_replace_prob given together"""
    ids = mlm.stat_batch(seed + 20)
    for k, (p_select, p_mask, p_random) in enumerate(((0.3, 0.5, 0.3), (0.1, 0.6, 0.4))):
        masker = student.new("MLMMasker", model_dir, mlm_probability=p_select, mask_replace_prob=p_mask,
                             random_replace_prob=p_random)
        masked, labels = mlm.mask_call(masker, ids, seed + 21 + k)
        c = mlm.counts(ids, masked, labels)
        record(f"counts_{p_select}_{p_mask}_{p_random}", c)
        mlm.expect_rates(c, p_select, p_mask, p_random, f"MLMMasker(mlm_probability={p_select}, mask_replace_prob="
                         f"{p_mask}, random_replace_prob={p_random})")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_random_tokens_spread_over_vocabulary(student, model_dir, mlm, seed):
    """random replacements are drawn uniformly over the vocabulary: almost never a special token, rarely repeated"""
    masker = student.new("MLMMasker", model_dir, mlm_probability=0.5, mask_replace_prob=0.0, random_replace_prob=1.0)
    ids = mlm.stat_batch(seed + 30)
    masked, labels = mlm.mask_call(masker, ids, seed + 30)
    selected = labels != -100
    as_mask = int((selected & (masked == mlm.vocab.mask_id)).sum())
    assert as_mask <= 0.01 * int(selected.sum()), (
        f"{as_mask} of {int(selected.sum())} selected tokens became [MASK] with mask_replace_prob=0.0 and "
        "random_replace_prob=1.0: use the masker's arguments, not fixed 0.8 / 0.1")
    drawn = masked[selected & (masked != ids)]
    n = int(drawn.numel())
    assert n > 10_000, (
        f"only {n} tokens were replaced with mlm_probability=0.5, random_replace_prob=1.0: every selected token "
        "should get a random id")
    special = int(torch.isin(drawn, torch.tensor(mlm.vocab.special)).sum())
    # uniform over the whole vocabulary (transformers' collator) gives n * 5 / 30522 ~ 6 specials in expectation
    expected = n * len(mlm.vocab.special) / mlm.vocab.size
    bound = expected + mlm.SIGMA * math.sqrt(expected) + 3
    distinct = int(torch.unique(drawn).numel())
    # n draws from ~30517 ids leave about V(1 - exp(-n/V)) distinct ids; a narrower pool leaves far fewer
    want_distinct = mlm.vocab.size * (1 - math.exp(-n / mlm.vocab.size))
    record("random_draws", {"n": n, "special": special, "distinct": distinct})
    assert special <= bound, (
        f"{special} of {n} random replacements are special tokens ([CLS], [SEP], [PAD]...), expected at most "
        f"{bound:.0f}: draw random ids uniformly from the vocabulary's non-special ids, not from the batch's tokens")
    assert distinct >= 0.9 * want_distinct, (
        f"the {n} random replacements use only {distinct} different ids (uniform draws would give about "
        f"{want_distinct:.0f}): draw each id uniformly over the whole (non-special) vocabulary")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_inputs_not_mutated(masker_factory, mlm, seed):
    """masking the same batch for several epochs: every epoch starts from the original tokens"""
    masker = masker_factory()
    ids = mlm.stat_batch(seed + 40)[:96]
    seeds = [seed + 41, seed + 42, seed + 43]
    epochs = masker.mask_epochs(ids, seeds)
    assert isinstance(epochs, (list, tuple)) and len(epochs) == 3, (
        "mask_epochs(input_ids, seeds) should return a list with one mask() result per seed")
    for k, (result, s) in enumerate(zip(epochs, seeds, strict=True)):
        masked, labels = mlm.unpack(result, ids, f"mask_epochs(...)[{k}]")
        selected = labels != -100
        stale = int((selected & (labels != ids)).sum() + (~selected & (masked != ids)).sum())
        assert stale == 0, (
            f"epoch {k + 1} of mask_epochs does not start from the original tokens ({stale} positions keep an "
            "earlier epoch's [MASK] or random token): mask() modified its input_ids in place. Work on a copy "
            "(input_ids.clone()) and leave the caller's tensor unchanged")
        lone = mlm.mask_call(masker_factory(), ids, s)
        assert torch.equal(masked, lone[0]) and torch.equal(labels, lone[1]), (
            f"mask_epochs(...)[{k}] differs from a lone mask(input_ids, seed={s}): each epoch is mask() on the "
            "original batch with that epoch's seed")


@pytest.fixture
def masker_factory(student, model_dir):
    return lambda: student.new("MLMMasker", model_dir)


@pytest.fixture(scope="session")
def ref_lm(reference, model_dir):
    return reference.MaskedLM(model_dir)


def _hidden_loss(lm, batch, maskings, mlm):
    """The grader's MLM loss on the hidden sentences: cross-entropy of predict_masked's logits at the labels."""
    total, count = 0.0, 0
    for masked in maskings:
        positions = masked["labels"] != -100
        n = int(positions.sum())
        logits = expect_tensor(lm.predict_masked(masked["input_ids"], batch["attention_mask"], positions),
                               (n, None), torch.float32, f"predict_masked(..., positions with {n} True)")
        assert logits.shape[1] == mlm.vocab.size and torch.isfinite(logits).all(), (
            "predict_masked should return finite (n, vocab_size) logits, one row per True position")
        total += float(F.cross_entropy(logits.double(), masked["labels"][positions], reduction="sum"))
        count += n
    return total / count


@pytest.mark.points(4)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(600)
def test_mlm_fine_tuning_lowers_hidden_loss(student, model_dir, ref_lm, assets, mlm, targets, seed, reference_curve):
    """MLM fine-tuning within the step budget lowers the masked-token loss on hidden sentences by the target"""
    lm = student.new("MaskedLM", model_dir)
    hidden = [line for line in HIDDEN_TEXT.read_text(encoding="utf-8").splitlines() if line.strip()]
    mlm.expect_pretrained(lm, ref_lm, hidden[:4], "before training: ")
    batch = ref_lm.tokenize(hidden)
    maskings = [ref_lm.masker.mask(batch["input_ids"], seed=7919 * (seed + 1) + k) for k in range(4)]
    before = _hidden_loss(lm, batch, maskings, mlm)
    texts = mlm.sentences(Path(assets["wiki-sample"]) / "train.txt", 2000)
    steps = int(targets["max_steps"])
    losses = lm.fit(texts, steps, seed=seed)
    assert isinstance(losses, (list, tuple)) and len(losses) == steps, (
        f"fit(texts, {steps}) should return a list of {steps} losses, one per optimiser step")
    assert all(type(v) in (float, int) and math.isfinite(v) for v in losses), "fit should return finite Python floats"
    loss_curve = [float(v) for v in losses]
    curve("training loss", loss_curve, reference=reference_curve("loss", loss_curve))
    after = _hidden_loss(lm, batch, maskings, mlm)
    record("hidden_loss", {"before": before, "after": after, "steps": steps})
    drop, ceiling = float(targets["min_loss_drop"]), float(targets["max_hidden_loss"])
    assert after <= before - drop and after <= ceiling, (
        f"after {steps} steps the MLM loss on hidden sentences went from {before:.2f} to {after:.2f} nats; it should "
        f"fall by at least {drop:.1f} and end below {ceiling:.1f}. Train the whole model (encoder and head) with "
        "AdamW on mlm_loss at the labelled positions, zero the gradients every step, lr about 2e-4")
    probe = ref_lm.tokenize(hidden[:4])
    moved = lm.hidden_states(probe["input_ids"], probe["attention_mask"])
    pretrained = ref_lm.hidden_states(probe["input_ids"], probe["attention_mask"])
    expect_tensor(moved, tuple(pretrained.shape), torch.float32, "hidden_states() after fit")
    assert float((moved - pretrained).abs().max()) > 1e-3, (
        "after fit the encoder's hidden states are still the packaged encoder's: MLM fine-tuning trains the WHOLE "
        "model; give the optimiser every parameter (model.parameters()) and do not freeze the encoder")
