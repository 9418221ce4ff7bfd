"""Hidden checks of custom-objectives: training steps, the frozen reference, seeding, and outcomes on hidden pairs.

Outcomes are measured on the trusted side: the student's trained weights come back and the reference's own
forward pass scores pairs cut from the wiki-sample TEST split (the student trains on the TRAIN split).
"""

from __future__ import annotations

import math

import pytest
import torch

from grader.testing import assert_tensor_close, curve, record

STEP_LR = {"dpo": 20.0, "reward": 0.5}  # plain SGD: large enough that one step moves log-probs by ~0.1-1


def _probe(reference, co, pairs):
    batch = reference.collate_pairs(pairs, co.PAD_ID)
    return batch["input_ids"], batch["attention_mask"], batch["completion_mask"]


def _expect_float(value, what):
    assert type(value) in (float, int), f"{what} should return the loss as a Python float, got {type(value).__name__}"
    assert math.isfinite(value), f"{what} returned {value}"
    return float(value)


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_dpo_steps_match_reference(student, reference, co, config, train_pairs, targets):
    """two plain SGD steps of DPOTrainer.step move the policy exactly as the reference's do; the reference stays"""
    beta = float(targets["beta"])
    weights = co.init_weights(config, "causal", seed=41)
    trainer = student.new("DPOTrainer", config, weights, beta=beta)
    trusted = reference.DPOTrainer(config, weights, beta=beta)
    probe = _probe(reference, co, train_pairs[:6])
    start = trusted.logprobs(*probe)["reference"]
    for step, pairs in enumerate((train_pairs[6:14], train_pairs[14:22]), start=1):
        got_loss = _expect_float(trainer.step(pairs, STEP_LR["dpo"]), "DPOTrainer.step")
        want_loss = trusted.step(pairs, STEP_LR["dpo"])
        got, want = trainer.logprobs(*probe), trusted.logprobs(*probe)
        assert isinstance(got, dict) and "policy" in got and "reference" in got, (
            "DPOTrainer.logprobs should return {'policy': ..., 'reference': ...}")
        ref = co.expect_vector(got["reference"], len(start), "logprobs()['reference']")
        if not torch.allclose(ref, start, **co.LOGP_TOL):
            raise AssertionError(
                f"after step {step} the REFERENCE model's log-probs changed: it must stay the frozen starting "
                "model (a separate deep copy, requires_grad_(False), not in the optimiser)")
        pol = co.expect_vector(got["policy"], len(start), "logprobs()['policy']")
        if step == 1:
            advice = ("the policy after one SGD step differs from the reference's: step() is ONE plain "
                      "gradient-descent step, p -= lr * grad, of the MEAN DPO loss over the given pairs")
        else:
            advice = ("the first step matched but the second did not: zero the gradients before each backward "
                      "pass (or use torch.autograd.grad), so a step never adds the previous step's gradient")
        assert abs(got_loss - want_loss) <= 1e-4 + 1e-4 * abs(want_loss), (
            f"step {step} returned the loss {got_loss:.6f}, expected {want_loss:.6f} (the mean DPO loss of the "
            "pairs, computed BEFORE the update)" + ("" if step == 1 else f"; {advice}"))
        assert_tensor_close(pol, want["policy"], name=f"policy log-probs after step {step}", advice=advice,
                            **co.LOGP_TOL)


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_reference_gets_no_gradient(student, co, config, train_pairs, targets):
    """after a step, no gradient reached the reference model and its weights are unchanged"""
    weights = co.init_weights(config, "causal", seed=43)
    trainer = student.new("DPOTrainer", config, weights, beta=float(targets["beta"]))
    trainer.step(train_pairs[:8], STEP_LR["dpo"])
    reference_model = co.attribute(trainer, "reference")
    policy_model = co.attribute(trainer, "policy")
    moved = 0
    for name, start in weights.items():
        param = reference_model.handle("get_parameter", name)
        grad = param.get("grad")
        if grad is not None and bool(torch.as_tensor(grad).abs().sum() > 0):
            raise AssertionError(
                f"the reference model's {name} has a gradient: compute the reference log-probs under "
                "torch.no_grad() and freeze the reference (requires_grad_(False)); it is a fixed anchor, "
                "gradients must only reach the policy")
        value = reference_model.call("get_parameter", name)
        assert isinstance(value, torch.Tensor) and torch.equal(value, start), (
            f"the reference model's {name} changed: the reference stays the starting model")
        moved += int(not torch.equal(policy_model.call("get_parameter", name), start))
    assert moved > 0, "step() changed none of the policy's weights: the policy should move"


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_dpo_fit_is_seeded(student, co, config, train_pairs, targets):
    """fit with one seed gives one trajectory, starting at ln 2 (policy == reference)"""
    weights = co.init_weights(config, "causal", seed=45)
    runs = []
    for _ in range(2):
        trainer = student.new("DPOTrainer", config, weights, beta=float(targets["beta"]))
        runs.append(co.expect_losses(trainer.fit(train_pairs, steps=3, lr=float(targets["dpo_lr"]), batch_size=8,
                                                 seed=7), 3, "DPOTrainer.fit(..., steps=3)"))
    assert abs(runs[0][0] - co.LN2) < 1e-5, (
        f"the first step's loss is {runs[0][0]:.6f}: with the policy equal to the reference it is ln 2 = "
        f"{co.LN2:.6f} (report each step's loss before its update)")
    assert max(abs(a - b) for a, b in zip(*runs, strict=True)) < 1e-5, (
        f"two fits with seed=7 gave different losses {runs[0]} and {runs[1]}: draw the mini-batches from a "
        "torch.Generator seeded with `seed`, not from the global random state")


def _implicit_accuracy(reference, co, config, start, trained, pairs):
    probe = _probe(reference, co, pairs)
    new = reference.DPOTrainer(config, trained).logprobs(*probe)["policy"]
    old = reference.DPOTrainer(config, start).logprobs(*probe)["policy"]
    delta, n = new - old, len(pairs)
    return float((delta[:n] > delta[n:]).double().mean())


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(300)
def test_dpo_training_prefers_chosen(student, reference, co, config, train_pairs, hidden_pairs, targets, seed,
                                    reference_curve):
    """after fit on the training pairs, the policy ranks chosen above rejected on hidden pairs (implicit reward)"""
    weights = co.init_weights(config, "causal", seed=seed)
    trainer = student.new("DPOTrainer", config, weights, beta=float(targets["beta"]))
    steps = int(targets["dpo_steps"])
    losses = co.expect_losses(trainer.fit(train_pairs, steps=steps, lr=float(targets["dpo_lr"]), batch_size=16,
                                          seed=seed), steps, f"DPOTrainer.fit(..., steps={steps})")
    dpo_loss_curve = losses
    curve("dpo loss", dpo_loss_curve, reference=reference_curve("dpo_loss", dpo_loss_curve))
    trained = co.expect_weights(trainer.policy_weights(), weights, "DPOTrainer.policy_weights()")
    accuracy = _implicit_accuracy(reference, co, config, weights, trained, hidden_pairs)
    record("hidden_pair_accuracy", accuracy)
    target = float(targets["min_dpo_accuracy"])
    assert accuracy >= target, (
        f"on hidden pairs the policy's implicit reward beta*((pi_c - ref_c) - (pi_r - ref_r)) ranks chosen first "
        f"for {accuracy:.0%} of pairs, below the target {target:.0%} (chance is 50%): check that the loss "
        "pushes the CHOSEN log-ratio up (-logsigmoid(chosen - rejected)) and that fit steps the policy")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_reward_model_steps_match_reference(student, reference, co, config, train_pairs):
    """two plain SGD steps of RewardModel.step on the Bradley-Terry loss move the rewards as the reference's do"""
    weights = co.init_weights(config, "reward", seed=47)
    rm = student.new("RewardModel", config, weights)
    trusted = reference.RewardModel(config, weights)
    ids, mask, _ = _probe(reference, co, train_pairs[:6])
    for step, pairs in enumerate((train_pairs[6:14], train_pairs[14:22]), start=1):
        got_loss = _expect_float(rm.step(pairs, STEP_LR["reward"]), "RewardModel.step")
        want_loss = trusted.step(pairs, STEP_LR["reward"])
        advice = ("one plain SGD step p -= lr * grad of the MEAN Bradley-Terry loss -logsigmoid(r_c - r_r) over "
                  "the pairs" + ("" if step == 1 else "; the first step matched: zero the gradients each step"))
        assert abs(got_loss - want_loss) <= 1e-4 + 1e-4 * abs(want_loss), (
            f"step {step} returned the loss {got_loss:.6f}, expected {want_loss:.6f}: {advice}")
        got = co.expect_vector(rm.rewards(ids, mask), len(ids), "RewardModel.rewards")
        assert_tensor_close(got, trusted.rewards(ids, mask), rtol=1e-4, atol=1e-4,
                            name=f"rewards after step {step}", advice=advice)


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(300)
def test_reward_model_training(student, reference, co, config, train_pairs, hidden_pairs, targets, seed,
                               reference_curve):
    """after fit, the reward model scores chosen above rejected on hidden pairs more often than the target"""
    weights = co.init_weights(config, "reward", seed=seed + 2)
    rm = student.new("RewardModel", config, weights)
    steps = int(targets["reward_steps"])
    losses = co.expect_losses(rm.fit(train_pairs, steps=steps, lr=float(targets["reward_lr"]), batch_size=16,
                                     seed=seed), steps, f"RewardModel.fit(..., steps={steps})")
    reward_loss_curve = losses
    curve("reward loss", reward_loss_curve, reference=reference_curve("reward_loss", reward_loss_curve))
    trained = co.expect_weights(rm.weights(), weights, "RewardModel.weights()")
    ids, mask, _ = _probe(reference, co, hidden_pairs)
    rewards = reference.RewardModel(config, trained).rewards(ids, mask)
    n = len(hidden_pairs)
    accuracy = float((rewards[:n] > rewards[n:]).double().mean())
    record("hidden_pair_accuracy", accuracy)
    target = float(targets["min_reward_accuracy"])
    assert accuracy >= target, (
        f"on hidden pairs the trained reward model scores chosen above rejected for {accuracy:.0%} of pairs, "
        f"below the target {target:.0%} (chance is 50%): train on -logsigmoid(r_chosen - r_rejected) with the "
        "reward read at each row's last real token")
