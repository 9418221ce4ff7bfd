"""Hidden checks: the training step against torch, other schedules, get_batch's edges, seeding, and the
held-out loss of a model trained on the toy grammar within the step budget."""

import math

import pytest
import torch
import torch.nn.functional as F

from grader.testing import StudentCodeError, curve, expect_close, expect_tensor, expect_type, record


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_train_step_matches_torch(student, tt):
    """four train_step calls equal torch's AdamW + clip_grad_norm_ + cross-entropy + the schedule, step by step"""
    oracle = tt.hidden_module("oracle")
    config = tt.SMALL
    start = tt.torch_lm(config, seed=11)
    batches = []
    for _ in range(4):
        ids = tt.random_ids(config, config["batch_size"], config["context_length"] + 1)
        batches.append((ids[:, :-1], ids[:, 1:]))
    runs = [oracle.train_steps(start, config, batches, decay_after=after) for after in (False, True)]
    assert min(runs[0][1]) > config["max_grad_norm"], "check bug: the gradients should need clipping"
    trainer = student.new("Trainer", config, 0)
    trainer.load_torch_weights(tt.state_of(start))
    got = tt.expect_losses([trainer.train_step(x, y) for x, y in batches], 4, "train_step(x, y)")
    probe = tt.random_ids(config, 3)
    logits = expect_tensor(trainer.logits(probe), shape=(3, config["context_length"], config["vocab_size"]),
                           what="logits(ids)")

    def named(_actual, _expected):
        for mistake, message in oracle.MISTAKES.items():
            losses, _, model = oracle.train_steps(start, config, batches, mistake=mistake)
            if torch.allclose(logits, tt.oracle_logits(model, probe), rtol=1e-3, atol=1e-4) and torch.allclose(
                    torch.tensor(got), torch.tensor(losses), rtol=1e-4, atol=1e-5):
                return message
        return None

    # lr = 0.05 makes Adam's near-sign updates amplify rounding (about 1e-4 in the logits between correct
    # implementations); every mistake below moves them by 0.07 or more, the order of the decay by 0.02
    loss_tol, logit_tol = {"rtol": 0.0, "atol": 1e-4}, {"rtol": 1e-3, "atol": 2e-3}
    for want_losses, _, trained in runs:  # either order of the decoupled decay
        if torch.allclose(torch.tensor(got), torch.tensor(want_losses), **loss_tol) and torch.allclose(
                logits, tt.oracle_logits(trained, probe), **logit_tol):
            return
    want_losses, _, trained = runs[0]
    advice = ("each step: lr = lr_cosine_schedule(step) on every param group; logits = model(x); loss = "
              "cross_entropy over all B*T positions; zero_grad; backward; clip the total gradient norm to "
              "max_grad_norm; optimizer.step(); step += 1 (AdamW with weight decay on parameters of 2 or more "
              "dimensions only)")
    expect_close(torch.tensor(got), torch.tensor(want_losses), **loss_tol, what="the four losses",
                 advice=advice, diagnose=named)
    expect_close(logits, tt.oracle_logits(trained, probe), **logit_tol, what="logits after four steps",
                 advice=advice, diagnose=named)


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_schedule_other_settings(student, tt):
    """lr_cosine_schedule for other settings: no warm-up, long warm-up, flat, far past the cycle"""
    schedule = tt.hidden_module("oracle").lr_cosine_schedule
    for args in ((3e-3, 3e-4, 0, 10), (0.5, 0.0, 9, 12), (2.0, 2.0, 3, 8), (1e-2, 1e-3, 1, 40)):
        for it in (0, 1, 2, 5, 9, 10, 11, 12, 30, 39, 40, 41, 1000):
            got = student.lr_cosine_schedule(it, *args)
            want = schedule(it, *args)
            assert type(got) in (float, int) and abs(float(got) - want) <= 1e-9 + 1e-6 * abs(want), (
                f"lr_cosine_schedule({it}, max_lr={args[0]}, min_lr={args[1]}, warmup_iters={args[2]}, "
                f"cosine_cycle_iters={args[3]}) returned {got!r}: with warmup_iters=0 there is no warm-up (and no "
                "division by zero); past the cycle the rate stays at min_lr")


@pytest.mark.points(1)
def test_get_batch_edges(student):
    """get_batch on data of exactly context_length + 1 tokens, and ValueError on data too short or not 1-D"""
    data = torch.arange(10, 19)
    result = student.get_batch(data, 5, 8, "cpu")
    expect_type(result, (tuple, list), "get_batch(...)")
    x = expect_tensor(result[0], shape=(5, 8), dtype=torch.int64, what="x")
    y = expect_tensor(result[1], shape=(5, 8), dtype=torch.int64, what="y")
    assert torch.equal(x, data[:8].expand(5, 8)) and torch.equal(y, data[1:].expand(5, 8)), (
        "with len(data) = context_length + 1 the only window starts at 0: x = data[:-1], y = data[1:]")
    for bad, why in ((torch.arange(8), "8 tokens cannot give a window of 8 plus its next token"),
                     (torch.arange(40).view(4, 10), "2-D data")):
        with pytest.raises(StudentCodeError) as err:
            student.get_batch(bad, 2, 8, "cpu")
            pytest.fail(f"get_batch accepted {why}: raise ValueError")
        assert err.value.exc_type == "ValueError", f"get_batch raised {err.value.exc_type} for {why}: raise ValueError"
    with pytest.raises(StudentCodeError):
        student.get_batch(torch.arange(50), 2, 8, "cuda:99")
        pytest.fail("get_batch(..., device='cuda:99') returned: put x and y on the device asked for (x.to(device))")
    with pytest.raises(StudentCodeError) as err:
        student.new("TinyLM", 28, 8, 10, 1, 3, 16)
        pytest.fail("TinyLM(d_model=10, num_heads=3) was accepted: raise ValueError when num_heads does not "
                    "divide d_model")
    assert err.value.exc_type == "ValueError", f"TinyLM raised {err.value.exc_type}: raise ValueError"


@pytest.mark.points(1)
def test_trainer_seeded_init(student, tt):
    """Trainer(config, seed): one seed gives one initial model, another seed another"""
    probe = tt.random_ids(tt.SMALL, 2)
    got = [expect_tensor(student.new("Trainer", tt.SMALL, s).logits(probe), shape=(2, 8, 28), what="logits")
           for s in (5, 5, 6)]
    assert torch.equal(got[0], got[1]), (
        "two Trainers built with the same seed start from different weights: call torch.manual_seed(seed) before "
        "building the model")
    assert not torch.allclose(got[0], got[2]), "Trainers built with seeds 5 and 6 start from the same weights"


def _causal_probe(trainer, context, vocab):
    ids = torch.randint(0, vocab, (2, context))
    base = expect_tensor(trainer.logits(ids), shape=(2, context, vocab), what="logits(ids)")
    changed = ids.clone()
    changed[:, context // 2:] = (ids[:, context // 2:] + 1) % vocab
    out = expect_tensor(trainer.logits(changed), shape=(2, context, vocab), what="logits(ids)")
    leak = float((out[:, : context // 2] - base[:, : context // 2]).abs().max())
    assert leak <= 1e-4, (
        f"the trained model's logits at positions < {context // 2} changed when later tokens changed (by {leak:.3g}): "
        "it sees the future, so its held-out loss cannot be trusted; mask keys j > i")


@pytest.mark.points(3)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(180)
def test_held_out_loss(student, tt, targets, seed, reference, reference_curve):
    """trained within the step budget on the toy grammar, the held-out loss (recomputed here) nears its floor"""
    grammar = tt.hidden_module("grammar")
    steps, context = int(targets["train_steps"]), int(targets["context_length"])
    train_ids, train_logp = grammar.stream(int(targets["train_tokens"]), seed + 1)
    held_ids, held_logp = grammar.stream(int(targets["held_out_tokens"]) + 1, seed + 2)
    config = {**tt.SMALL, "vocab_size": len(grammar.VOCAB), "context_length": context, "warmup_iters": steps // 10,
              "cosine_cycle_iters": steps, "weight_decay": 0.1, "max_grad_norm": 1.0, "eps": 1e-8,
              **{k: targets[k] for k in ("d_model", "num_layers", "num_heads", "d_ff", "batch_size", "max_lr",
                                         "min_lr", "device")}}
    record("config", config)
    trainer = student.new("Trainer", config, seed)
    losses = tt.expect_losses(trainer.train(torch.tensor(train_ids), steps), steps, f"train(data, {steps})")
    _causal_probe(trainer, context, len(grammar.VOCAB))

    windows = (len(held_ids) - 1) // context
    held = torch.tensor(held_ids)
    inputs = held[: windows * context].view(windows, context)
    nexts = held[1: windows * context + 1].view(windows, context)
    logits = expect_tensor(trainer.logits(inputs), shape=(windows, context, len(grammar.VOCAB)),
                           what="logits(held-out windows)")
    assert bool(torch.isfinite(logits).all()), "logits(held-out windows) has NaN or Inf"
    loss = float(F.cross_entropy(logits.double().reshape(-1, logits.shape[-1]), nexts.reshape(-1)))
    floor = -sum(held_logp[1: windows * context + 1]) / (windows * context)
    train_floor = -sum(train_logp[1:]) / (len(train_logp) - 1)
    tail = sum(losses[-20:]) / len(losses[-20:])
    baselines = grammar.ngram_losses(train_ids, held_ids)
    sample = trainer.generate([grammar.ID["."]], 24)
    record("held_out_loss", round(loss, 4))
    record("entropy_floor", round(floor, 4))
    record("baselines", {k: round(v, 4) for k, v in baselines.items()})
    record("greedy_sample", grammar.words(sample) if isinstance(sample, list) else repr(sample)[:200])
    honest, excess = float(targets["honest_margin"]), float(targets["max_excess_loss"])
    # drawn in the report: the training loss beside the reference trainer's (same config, data, seed, steps)
    curve("training loss", losses, target=floor + excess, target_label="held-out target",
          reference=reference_curve("loss", losses, lambda: reference.Trainer(config, seed).train(
              torch.tensor(train_ids), steps)))
    assert tail >= train_floor - honest, (
        f"your training loss ({tail:.3f} over the last steps) is below the entropy of the training text "
        f"({train_floor:.3f}): too low to be honest, the targets leak into the inputs: y must be the NEXT tokens "
        "(x shifted by one), each batch drawn afresh, and the attention must not see the future")
    assert loss >= floor - honest, (
        f"the held-out loss {loss:.3f} is below the entropy floor {floor:.3f} of the held-out text: impossible "
        "without seeing the answers; does the model see the future?")
    assert math.isfinite(loss) and loss <= floor + excess, (
        f"after {steps} steps the held-out loss is {loss:.3f} nats/token; the target is {floor + excess:.3f} "
        f"(the text's entropy floor {floor:.3f} + {excess}; a bigram model scores {baselines['bigram']:.3f}, a "
        f"unigram model {baselines['unigram']:.3f}, uniform guessing {math.log(len(grammar.VOCAB)):.3f}): check "
        "the training loop: targets shifted by one, the schedule's learning rate set every step, zero_grad, "
        "clipping, optimizer.step()")
