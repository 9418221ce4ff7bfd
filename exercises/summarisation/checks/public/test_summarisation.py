"""Public checks of the summarisation exercise: the prefix, ROUGE against rouge-score, the batch the model
sees (inputs, -100 labels, decoder inputs), the loss and greedy generation on the packaged weights."""

import random

import pytest
import torch

from grader.testing import StudentCodeError, assert_tensor_close, expect_tensor, expect_type, record


def _ascii_documents(pairs, n, seed):
    rows = [r for r in pairs["train"] if r["document"].isascii() and r["summary"].isascii()]
    return random.Random(seed).sample(rows, n)


@pytest.mark.points(1)
def test_task_prefix(student):
    """T5-family models get the "summarize: " prefix; BART and the others get none"""
    for model_type, want in (("t5", "summarize: "), ("mt5", "summarize: "), ("bart", ""), ("pegasus", "")):
        got = student.task_prefix(model_type)
        expect_type(got, str, f"task_prefix({model_type!r})")
        assert got == want, (
            f"task_prefix({model_type!r}) is {got!r}, expected {want!r}: T5 was pre-trained on many tasks told apart "
            "by a text prefix ('summarize: ' with the space), BART on none, so only the T5 family gets one")


def _rouge_pairs(pairs, seed):
    targets = ["testing one two", "testing one two", "testing one two", "The cats were running quickly home",
               "the the the cat sat", "w1 w2 w3 w4 w5"]
    predictions = ["testing", "testing one", "testing two", "a cat runs home quick", "the cat the dog the",
                   "w1 w2 w6 w7 w8 w1 w3 w8 w9 w5"]
    rng = random.Random(seed)
    for row in _ascii_documents(pairs, 6, seed):
        words = row["document"].split()[:30]
        predictions.append(" ".join(rng.sample(words, rng.randint(3, len(words) // 2))) + ".")
        targets.append(" ".join(words))
    return targets, predictions


@pytest.mark.points(3)
def test_rouge_matches_rouge_score(student, summ, pairs, seed):
    """rouge_scores(targets, predictions) equals rouge-score's stemmed ROUGE-1/2/L P, R and F on English text"""
    targets, predictions = _rouge_pairs(pairs, seed)
    got = summ.expect_scores(student.rouge_scores(targets, predictions), len(targets),
                             "rouge_scores(targets, predictions)")
    want = summ.oracle_rouge(targets, predictions)
    record("rouge_pairs", len(targets))
    problem = summ.rouge_problem(got, want, targets, predictions)
    assert problem is None, (
        f"{problem}\nROUGE-n counts clipped n-gram matches, ROUGE-L uses the longest common subsequence; tokens "
        "are lower-cased, Porter-stemmed when longer than 3 characters (rouge-score's use_stemmer=True)")


def _batch_texts(pairs, seed):
    rows = _ascii_documents(pairs, 4, seed + 1)
    documents = [rows[0]["document"], " ".join(rows[1]["document"].split()[:6]), rows[2]["document"][:80],
                 " ".join(rows[3]["document"].split()[:25])]
    long_summary = " ".join(rows[0]["document"].split()[:30])  # far longer than max_target_length tokens
    summaries = [rows[1]["summary"], long_summary, rows[2]["summary"], rows[3]["summary"]]
    return documents, summaries


def _rows(ids, keep):
    return [ids[i][keep[i].bool()].tolist() for i in range(ids.shape[0])]


@pytest.mark.points(2)
def test_tokenize_inputs_and_labels(student, summ, trusted, pairs, model_dir, targets, seed):
    """tokenize: prefixed, truncated inputs with their mask; labels are the summary ids, -100 at padding"""
    documents, summaries = _batch_texts(pairs, seed)
    model = summ.new(student, model_dir, targets)
    batch = model.tokenize(documents, summaries)
    expect_type(batch, dict, "tokenize(documents, summaries)")
    for key in ("input_ids", "attention_mask", "labels"):
        assert key in batch, f"tokenize(documents, summaries) should return input_ids, attention_mask and labels, " \
                             f"got keys {sorted(batch)}"
    ids = expect_tensor(batch["input_ids"], (4, None), torch.int64, "input_ids")
    mask = expect_tensor(batch["attention_mask"], tuple(ids.shape), None, "attention_mask")
    labels = expect_tensor(batch["labels"], (4, None), torch.int64, "labels")
    want = trusted.inputs(documents)
    want_rows, got_rows = _rows(want["input_ids"], want["attention_mask"]), _rows(ids, mask)
    for i, (g, w) in enumerate(zip(got_rows, want_rows, strict=True)):
        if g == w:
            continue
        if len(g) > len(w) and i == 0:
            raise AssertionError(
                f"document 0 has {len(g)} tokens, expected at most max_source_length={trusted.source_length}: "
                "truncate the inputs (tokenizer(..., max_length=max_source_length, truncation=True))")
        prefixed = trusted.tokenizer("summarize: " + documents[i], max_length=trusted.source_length,
                                     truncation=True)["input_ids"]
        if g == prefixed and not trusted.prefix:
            raise AssertionError("the inputs start with 'summarize: ': this model is a BART, which takes no task "
                                 "prefix (use task_prefix(model.config.model_type))")
        raise AssertionError(f"the real (attention_mask 1) input ids of document {i} are not the tokenizer's: "
                             f"{g[:12]}..., expected {w[:12]}... Encode prefix + document with the model's tokenizer "
                             "(its <s> ... </s> template), truncated to max_source_length")
    pad = trusted.config.pad_token_id
    assert bool((ids[~mask.bool()] == pad).all()), "padding positions of input_ids should hold the pad token id"
    want_labels = trusted.labels(summaries)
    real = want_labels != -100
    lens = real.sum(1).tolist()
    for i, n in enumerate(lens):
        row = labels[i].tolist()
        got_real = [t for t in row if t != -100]
        assert len(got_real) <= trusted.target_length or i != 1, (
            f"the long summary has {len(got_real)} label tokens, expected at most max_target_length="
            f"{trusted.target_length}: truncate the targets too (max_length=max_target_length, truncation=True)")
        if row[:n] != want_labels[i, :n].tolist():
            raise AssertionError(f"labels of summary {i} are {row[:10]}..., expected the summary's token ids "
                                 f"{want_labels[i, :n].tolist()[:10]}... (tokenizer(text_target=summaries), not the "
                                 "documents)")
        tail = row[n:]
        if any(t != -100 for t in tail):
            which = " (the pad id)" if all(t in (-100, pad) for t in tail) else ""
            raise AssertionError(
                f"labels of summary {i} hold {tail[:4]}{which} after its last token: pad the labels with -100 "
                "(the loss's ignore_index), or the model is trained to predict padding and the loss counts it")


@pytest.mark.points(2)
def test_decoder_inputs_shift_right(student, summ, trusted, pairs, model_dir, targets, seed):
    """decoder_inputs(labels): labels shifted right, the decoder start token first, -100 replaced by the pad id"""
    from transformers.models.bart.modeling_bart import shift_tokens_right

    _, summaries = _batch_texts(pairs, seed)
    labels = trusted.labels(summaries)
    model = summ.new(student, model_dir, targets)
    got = expect_tensor(model.decoder_inputs(labels), tuple(labels.shape), torch.int64, "decoder_inputs(labels)")
    start, pad = trusted.config.decoder_start_token_id, trusted.config.pad_token_id
    want = shift_tokens_right(labels, pad, start)
    if torch.equal(got, want):
        return
    if torch.equal(got[:, 1:], labels[:, 1:].masked_fill(labels[:, 1:] == -100, pad)) or torch.equal(got, labels):
        raise AssertionError("the decoder inputs are not shifted: position t must hold label t-1 (teacher forcing), "
                             "or the decoder sees the token it is asked to predict")
    first = got[:, 0].tolist()
    if first != want[:, 0].tolist():
        names = {trusted.config.bos_token_id: "bos", trusted.config.eos_token_id: "eos", pad: "pad"}
        raise AssertionError(
            f"the decoder inputs start with {first[0]} ({names.get(first[0], 'not a special token')}), expected the "
            f"decoder start token {start} (model.config.decoder_start_token_id; BART's is </s>, not <s>, and "
            "T5's is the pad token)")
    if bool((got == -100).any()):
        raise AssertionError("the decoder inputs still hold -100: replace -100 by the pad token id after shifting "
                             "(an embedding lookup cannot take -100)")
    assert_tensor_close(got, want, rtol=0, atol=0, name="decoder_inputs(labels)",
                        advice="shift the labels one position right, put decoder_start_token_id first, and replace "
                               "-100 by pad_token_id (transformers' shift_tokens_right)")


@pytest.mark.points(2)
def test_loss_on_fixed_weights(student, summ, trusted, pairs, model_dir, targets, seed):
    """loss(documents, summaries) on the packaged weights equals the model's own cross-entropy over real tokens"""
    documents, summaries = _batch_texts(pairs, seed)
    model = summ.new(student, model_dir, targets)
    got = expect_tensor(model.loss(documents, summaries), (), torch.float32, "loss(documents, summaries)")
    want = trusted.loss(documents, summaries)
    record("loss", {"student": float(got), "reference": want})
    assert abs(float(got) - want) <= 1e-4 * max(1.0, abs(want)), (
        f"loss on the packaged weights is {float(got):.5f}, expected {want:.5f}: load the pre-trained model "
        "(AutoModelForSeq2SeqLM.from_pretrained, not from_config), evaluate in eval mode (dropout off), and "
        "average the cross-entropy over the real summary tokens only (labels -100 at padding, decoder inputs "
        "from decoder_inputs(labels))")


@pytest.mark.points(2)
def test_greedy_summaries_on_pretrained_weights(student, summ, trusted, pairs, model_dir, targets, seed):
    """summarise() is greedy decoding of at most max_new_tokens new tokens, without special tokens"""
    rows = _ascii_documents(pairs, 5, seed + 2)
    documents = [r["document"] for r in rows]
    model = summ.new(student, model_dir, targets)
    for limit in (5, 24):
        got = summ.expect_texts(model.summarise(documents, max_new_tokens=limit), len(documents),
                                f"summarise(documents, max_new_tokens={limit})")
        want = trusted.greedy(documents, limit)
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            if g == w or g == trusted.greedy([documents[i]], limit)[0]:
                continue
            special = [t for t in trusted.tokenizer.all_special_tokens if t in g]
            if special:
                raise AssertionError(f"summary {i} contains {special}: decode with skip_special_tokens=True")
            n_got = len(trusted.tokenizer(g, add_special_tokens=False)["input_ids"])
            raise AssertionError(
                f"summarise(..., max_new_tokens={limit}) gave {g[:80]!r} for document {i} ({n_got} tokens), greedy "
                f"decoding of the packaged model gives {w[:80]!r}: call model.generate(..., max_new_tokens="
                "max_new_tokens, num_beams=1, do_sample=False) in eval mode (max_length counts the start token, "
                "and generation's default limit is not yours)")


@pytest.mark.points(1)
def test_bad_arguments_raise(student, summ, model_dir, targets):
    """ValueError for mismatched targets and predictions, documents and summaries, and max_new_tokens < 1"""
    model = summ.new(student, model_dir, targets)
    calls = (("rouge_scores(['a b', 'c'], ['a'])", lambda: student.rouge_scores(["a b", "c"], ["a"])),
             ("tokenize(['a', 'b'], ['x'])", lambda: model.tokenize(["a", "b"], ["x"])),
             ("summarise(['a b c'], max_new_tokens=0)", lambda: model.summarise(["a b c"], max_new_tokens=0)))
    for text, call in calls:
        with pytest.raises(StudentCodeError) as caught:
            call()
            pytest.fail(f"{text} should raise ValueError: refuse lists of different lengths (zip would silently "
                        "drop pairs) and a generation limit below one token")
        assert caught.value.exc_type == "ValueError", f"{text} raised {caught.value.exc_type}, expected ValueError"
