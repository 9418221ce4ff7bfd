"""Hidden checks of seq2seq-translation: invariances, decoding across calls, training mechanics, BLEU.

BLEU is measured in this process: the student's trained weights are loaded into the reference model and
decoded greedily on numbers that occur nowhere in the asset (drawn from the grading seed), then scored
with sacrebleu (13a tokenisation, exponential smoothing) on the detokenised Spanish text.
"""

import pytest
import torch

from grader.testing import StudentCodeError, assert_tensor_close, record

HIDDEN_SENTENCES = 300


@pytest.mark.points(1)
def test_padding_changes_nothing(student, s2s, targets):
    """extra source padding, and a sentence's batch-mates, change none of its logits"""
    model = s2s.student_model(student, s2s.random_state(11))
    g = torch.Generator().manual_seed(12)
    src = s2s.random_ids([6, 3, 5], s2s.SMALL["src_vocab_size"], g)
    dec = s2s.decoder_input([5, 2, 4], s2s.SMALL["tgt_vocab_size"], g)
    base = s2s.expect_logits(model.forward(src, dec), (3, 5, s2s.SMALL["tgt_vocab_size"]), "forward(src, dec)")
    wider = torch.cat([src, torch.zeros(3, 4, dtype=torch.long)], dim=1)
    advice = ("padding reached real positions: give padding_mask(src) to the encoder (src_key_padding_mask) AND to "
              "the decoder's cross-attention (memory_key_padding_mask)")
    s2s.assert_logits(model.forward(wider, dec), base, dec != s2s.PAD, what="forward with 4 more PAD columns",
                      targets=targets, advice=advice)
    alone = model.forward(src[1:2, :3], dec[1:2, :2])
    s2s.assert_logits(alone, base[1:2, :2], torch.ones(1, 2, dtype=torch.bool), targets=targets, advice=advice,
                      what="the second sentence on its own")


@pytest.mark.points(1)
def test_decoder_is_causal(student, s2s, targets):
    """changing later decoder tokens leaves the logits of earlier positions unchanged"""
    model = s2s.student_model(student, s2s.random_state(13))
    g = torch.Generator().manual_seed(14)
    src = s2s.random_ids([4, 7], s2s.SMALL["src_vocab_size"], g)
    dec = s2s.decoder_input([6, 6], s2s.SMALL["tgt_vocab_size"], g)
    base = s2s.expect_logits(model.forward(src, dec), (2, 6, s2s.SMALL["tgt_vocab_size"]), "forward(src, dec)")
    for cut in (1, 3, 5):
        changed = dec.clone()
        changed[:, cut:] = s2s.random_ids([6 - cut, 6 - cut], s2s.SMALL["tgt_vocab_size"], g)
        got = model.forward(src, changed)
        keep = torch.zeros(2, 6, dtype=torch.bool)
        keep[:, :cut] = True
        s2s.assert_logits(got, base, keep, what=f"forward with decoder tokens {cut}.. changed", targets=targets,
                          advice=f"the logits of positions < {cut} changed when only tokens {cut}.. changed: the "
                                 "decoder self-attention needs causal_mask(T) (True above the diagonal)")


@pytest.mark.points(1)
def test_greedy_batches_and_repeats(student, reference, s2s):
    """greedy_decode: a batch equals each sentence alone, repeated calls agree, and dropout is off"""
    _, state, src, max_len = s2s.greedy_case(reference, seed=15, batch=6)
    model = s2s.student_model(student, state)
    batch = s2s.expect_ids(model.greedy_decode(src, max_len), 6, "greedy_decode(batch)")
    for i in range(6):
        length = int((src[i] != s2s.PAD).sum())
        alone = s2s.expect_ids(model.greedy_decode(src[i:i + 1, :length], max_len), 1, "greedy_decode(one sentence)")
        assert alone[0] == batch[i], (
            f"sentence {i} decodes to {alone[0]} alone but {batch[i]} in its batch: each sequence finishes on its "
            "own EOS, and the source padding mask keeps batch-mates apart")
    other = torch.Generator().manual_seed(16)
    model.greedy_decode(s2s.random_ids([3, 5, 2], s2s.SMALL["src_vocab_size"], other), max_len + 3)
    lengths = (src != s2s.PAD).sum(1).tolist()
    model.greedy_decode(s2s.random_ids(lengths, s2s.SMALL["src_vocab_size"], other), max_len)  # same shape
    again = s2s.expect_ids(model.greedy_decode(src, max_len), 6, "greedy_decode(batch) again")
    assert again == batch, ("the same batch decoded differently after decoding another batch: greedy_decode must "
                            "not keep state (cached masks, memory or lengths) from one call to the next")
    model.handle("train")
    in_train = s2s.expect_ids(model.greedy_decode(src, max_len), 6, "greedy_decode in train mode")
    assert in_train == batch, ("greedy_decode called while the model was in train mode gave other tokens: decode "
                               "in eval mode (self.eval()): dropout must be off")


def _raises_value_error(call, what):
    with pytest.raises(StudentCodeError) as err:
        call()
        pytest.fail(f"{what} should raise ValueError (see the stub), but returned normally")
    assert err.value.exc_type == "ValueError", f"{what} should raise ValueError, not {err.value.exc_type}"


@pytest.mark.points(1)
def test_bad_inputs_raise(student, s2s):
    """make_batch refuses empty or mismatched input and empty sources; greedy_decode refuses max_len < 1"""
    _raises_value_error(lambda: student.make_batch([], []), "make_batch([], [])")
    _raises_value_error(lambda: student.make_batch([[3], [4]], [[5]]), "make_batch with 2 sources and 1 target")
    _raises_value_error(lambda: student.make_batch([[3], []], [[5], [6]]), "make_batch with an empty source")
    model = s2s.student_model(student, s2s.random_state(17))
    src = torch.tensor([[4, 5, 6]])
    _raises_value_error(lambda: model.greedy_decode(src, 0), "greedy_decode(src, max_len=0)")


def _tiny_pairs(generator, n, src_vocab, tgt_vocab):
    src = [torch.randint(3, src_vocab, (int(k),), generator=generator).tolist()
           for k in torch.randint(1, 7, (n,), generator=generator)]
    tgt = [torch.randint(3, tgt_vocab, (int(k),), generator=generator).tolist()
           for k in torch.randint(0, 6, (n,), generator=generator)]
    return src, tgt


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_fit_steps_match_reference(student, reference, s2s, targets):
    """fit: Adam with the stub's settings, zero_grad every step: the losses and the final loss equal the reference's"""
    config = {**s2s.SMALL, "dropout": 0.0}
    ref, state = s2s.reference_model(reference, seed=18, config=config)
    src, tgt = _tiny_pairs(torch.Generator().manual_seed(19), 6, config["src_vocab_size"], config["tgt_vocab_size"])
    model = s2s.student_model(student, state, config)
    got = s2s.expect_losses(model.fit(src, tgt, steps=5, batch_size=8, lr=3e-2, seed=0), 5, "fit(steps=5)")
    want = ref.fit(src, tgt, steps=5, batch_size=8, lr=3e-2, seed=0)
    advice = ("fit's losses differ from the reference's (6 pairs, batch_size 8, so each step uses all of them): "
              "loss = self.loss(make_batch(...)), then zero_grad, backward and a step of Adam(lr, betas=(0.9, "
              "0.98), eps=1e-9), no schedule or clipping")
    assert_tensor_close(torch.tensor(got), torch.tensor(want), rtol=1e-3, atol=1e-5, name="fit's 5 losses",
                        advice=advice)
    trained = s2s.expect_state(model.weights(), state)
    after, _ = s2s.reference_model(reference, seed=18, config=config)
    after.load_weights(trained)
    src_ids, labels = reference.make_batch(src, tgt)
    with torch.no_grad():
        assert_tensor_close(after.loss(src_ids, labels), ref.loss(src_ids, labels), rtol=1e-3, atol=1e-5,
                            name="the loss of the weights fit leaves", advice=advice)


@pytest.mark.points(1)
def test_fit_is_seeded(student, s2s):
    """fit with the same seed repeats its run exactly; another seed gives another run"""
    state = s2s.random_state(20)
    src, tgt = _tiny_pairs(torch.Generator().manual_seed(21), 40, s2s.SMALL["src_vocab_size"],
                           s2s.SMALL["tgt_vocab_size"])
    runs = []
    for seed in (1, 1, 2):
        model = s2s.student_model(student, state)
        runs.append(s2s.expect_losses(model.fit(src, tgt, steps=4, batch_size=8, seed=seed), 4, "fit(steps=4)"))
    assert runs[0] == runs[1], (f"two fits with seed=1 from the same weights gave different losses ({runs[0]} and "
                                f"{runs[1]}): seed every random choice in fit (torch.manual_seed(seed) at its start)")
    assert runs[0] != runs[2], ("fit with seed=1 and seed=2 gave the same losses: the seed argument must decide the "
                                "batches and the dropout (torch.manual_seed(seed), a torch.Generator seeded with it)")


#: the one training run of a submission, shared by the two checks below: (losses, config, weights)
_RUN: dict[int, tuple[list[float], dict, dict]] = {}


def _train(student, s2s, corpus, targets, seed):
    """A student model of the profile's size, trained once per submission on the asset's pairs for max_steps."""
    if seed not in _RUN:
        steps = int(targets["max_steps"])
        config = s2s.model_config(targets, corpus)
        model = s2s.student_model(student, None, config)
        src_ids, tgt_ids = corpus.training_ids(config["max_len"], int(targets["max_train_pairs"]))
        losses = s2s.expect_losses(model.fit(src_ids, tgt_ids, steps=steps, batch_size=int(targets["batch_size"]),
                                             lr=float(targets["lr"]), seed=seed,
                                             device=str(targets.get("device", "cpu"))), steps, f"fit(steps={steps})")
        _RUN[seed] = (losses, config, s2s.expect_state(model.weights(), s2s.random_state(0, config)))
    losses, config, state = _RUN[seed]
    record("series/loss", losses)
    return losses, config, state


def _trusted(reference, config, state):
    model = reference.Seq2SeqTransformer(**config)
    model.load_weights({k: v.clone() for k, v in state.items()})
    return model.eval()


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(300)
def test_training_loss_is_honest(student, reference, s2s, corpus, targets, seed):
    """after training, the loss fit reports matches the true teacher-forced loss of the weights it leaves"""
    losses, config, state = _train(student, s2s, corpus, targets, seed)
    steps = len(losses)
    trained = _trusted(reference, config, state)
    src_ids, tgt_ids = corpus.training_ids(config["max_len"], 256)
    src, labels = reference.make_batch(src_ids, tgt_ids)
    with torch.no_grad():
        true_loss = float(trained.loss(src, labels))
    reported = sum(losses[-10:]) / 10
    record("reported_loss", reported)
    record("true_loss", true_loss)
    assert true_loss <= 1.5 * reported + 0.3, (
        f"fit reports a loss of {reported:.3f} but its weights score {true_loss:.3f} with teacher forcing done "
        "right: a suspiciously low training loss means the decoder sees the token it must predict; feed "
        "shift_right(labels) to the decoder and use the causal mask")
    first = sum(losses[:10]) / 10
    assert reported < 0.6 * first, (f"the training loss barely fell ({first:.3f} -> {reported:.3f} in {steps} "
                                    "steps): step Adam on all the model's parameters every step")


@pytest.mark.points(3)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(300)
def test_bleu_on_hidden_numbers(student, reference, s2s, corpus, targets, seed):
    """trained within the step budget, the model translates hidden numbers: BLEU beats copying and reaches the target"""
    import sacrebleu

    losses, config, state = _train(student, s2s, corpus, targets, seed)
    steps = len(losses)
    trained = _trusted(reference, config, state)
    pairs = corpus.hidden(seed, HIDDEN_SENTENCES)
    sources, refs = [s for s, _ in pairs], [t for _, t in pairs]
    src = corpus.encode_sources(sources, config["max_len"])
    max_len = int(targets["decode_max_len"])
    hypotheses = corpus.detokenise(trained.greedy_decode(src, max_len=max_len))
    bleu = sacrebleu.corpus_bleu(hypotheses, [refs]).score
    copy = sacrebleu.corpus_bleu(sources, [refs]).score
    record("bleu", round(bleu, 2))
    record("copy_baseline_bleu", round(copy, 2))
    record("examples", [{"source": s, "output": h, "reference": r} for s, h, r in
                        list(zip(sources, hypotheses, refs, strict=True))[:5]])
    target = float(targets["min_bleu"])
    assert bleu >= target and bleu >= copy + float(targets["min_margin_over_copy"]), (
        f"BLEU {bleu:.1f} on {len(refs)} hidden sentences after {steps} steps, below the target {target:.0f} "
        f"(copying the source scores {copy:.1f}): check the teacher forcing (shift_right, causal mask, loss over "
        "non-PAD labels) and train with fit's settings")
