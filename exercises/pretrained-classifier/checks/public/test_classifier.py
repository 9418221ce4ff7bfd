"""Public checks of the pretrained-classifier exercise, on the real pre-trained encoder."""

import pytest
import torch

from grader.testing import assert_tensor_close, expect_type, record

POOL = ("mean over the REAL tokens only: (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True) "
        "(padding must not count, and not only the first token)")


@pytest.mark.points(1)
def test_mean_pool(student, reference):
    """mean_pool averages the hidden states of the real tokens, ignoring padding"""
    torch.manual_seed(0)
    hidden = torch.randn(3, 6, 8)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    assert_tensor_close(student.mean_pool(hidden, mask), reference.mean_pool(hidden, mask), rtol=1e-5, atol=1e-6,
                        name="mean_pool(hidden, attention_mask)", advice=POOL)
    assert_tensor_close(student.mean_pool(hidden.double(), mask.bool()), reference.mean_pool(hidden.double(), mask),
                        rtol=1e-9, atol=1e-12, name="mean_pool in float64 with a bool mask",
                        advice=f"keep hidden's dtype and accept a bool mask too; {POOL}")


@pytest.mark.points(1)
def test_tokenizer_matches_model(clf, ref_clf, cls):
    """tokenize uses the model's own tokenizer: the same ids, special tokens, padding and truncation"""
    got = clf.tokenize(cls.PROBES)
    want = ref_clf.tokenize(cls.PROBES)
    expect_type(got, dict, "tokenize(texts)")
    for key in ("input_ids", "attention_mask"):
        assert key in got, f"tokenize(texts) should return a dict with 'input_ids' and 'attention_mask': {list(got)}"
        expect_type(got[key], torch.Tensor, f"tokenize(texts)[{key!r}]")
    ids = got["input_ids"]
    if tuple(ids.shape) == tuple(want["input_ids"].shape) and not torch.equal(ids[:, 0], want["input_ids"][:, 0]):
        raise AssertionError("the first token of each text should be the model's [CLS] token: call the tokenizer "
                             "with its special tokens (the default add_special_tokens=True)")
    assert_tensor_close(ids, want["input_ids"], rtol=0, atol=0, name="input_ids", advice=(
        "the token ids differ from the model's tokenizer: load it with AutoTokenizer.from_pretrained(model_dir) "
        "(the vocabulary and lower-casing of THIS model), padding=True, truncation=True, max_length=128"))
    assert_tensor_close(got["attention_mask"], want["attention_mask"], rtol=0, atol=0, name="attention_mask",
                        advice="attention_mask is 1 for real tokens and 0 for padding, as the tokenizer returns it")


@pytest.mark.points(2)
def test_encoder_is_pretrained(clf, ref_clf, cls):
    """encode returns the pre-trained encoder's hidden states (real weights loaded, eval mode)"""
    cls.expect_pretrained(clf, ref_clf, cls.PROBES)


@pytest.mark.points(1)
def test_embed_and_logits(clf, ref_clf, cls):
    """embed mean-pools over real tokens; logits apply the given head (no softmax)"""
    texts = ["short", "a rather longer sentence that needs several word pieces", "okay then"]
    pooled = cls.expect_pooled(clf, ref_clf, texts)
    alone = clf.embed(texts[:1])
    assert_tensor_close(alone, pooled[:1], name="embed of a text alone", **cls.TOL,
                        advice="a text alone and the same text padded in a batch must give the same vector: "
                               "exclude padding from the mean")
    head = cls.random_head(pooled.shape[1], seed=3)
    clf.load_head(head)
    want = pooled @ head["weight"].T + head["bias"]
    assert_tensor_close(clf.logits(texts), want, name="logits(texts)", **cls.TOL,
                        advice="logits = head(embed(texts)) with the loaded weight and bias: no softmax, no "
                               "normalisation of the pooled vector")


@pytest.mark.points(1)
def test_fit_trains_head_only(clf, ref_clf, cls, train_split):
    """fit takes exactly `steps` steps, its loss falls, and the encoder stays the pre-trained one"""
    cls.expect_pretrained(clf, ref_clf, cls.PROBES[:2], why="fit needs the pre-trained encoder first (see "
                          "test_encoder_is_pretrained): ")
    texts, labels = train_split
    few_texts, few_labels = texts[:24] + texts[-24:], labels[:24] + labels[-24:]
    losses = cls.expect_losses(clf.fit(few_texts, few_labels, steps=30, seed=1), 30)
    record("series/loss", losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (
        f"the loss did not fall (first 5 steps {first:.3f}, last 5 {last:.3f}): step the optimiser on the head's "
        "parameters every step (zero_grad, backward, step)")
    cls.expect_pretrained(clf, ref_clf, cls.PROBES[:2], why="after fit, the encoder changed: freeze it "
                          "(requires_grad_(False)) and train only the head. ")
