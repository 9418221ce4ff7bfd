"""Public checks of custom-objectives: batching, sequence log-probs, the DPO and reward losses, the reward read."""

from __future__ import annotations

import importlib.util
import math

import pytest
import torch

from grader.testing import StudentCodeError, assert_tensor_close, expect_type, record

PAIRS = [
    {"prompt": [5, 6], "chosen": [7, 8, 9], "rejected": [10, 11]},
    {"prompt": [12, 13, 14], "chosen": [15], "rejected": [16, 17, 18, 19]},
    {"prompt": [20], "chosen": [21, 22], "rejected": [23]},
]
LAYOUT = ("rows 0..B-1 are prompt + chosen, rows B..2B-1 prompt + rejected (same pair order), right-padded "
          "with pad_id to the longest row")


def _batch(value, what):
    expect_type(value, dict, what)
    for key in ("input_ids", "attention_mask", "completion_mask"):
        assert key in value, (
            f"{what} should return a dict with input_ids, attention_mask and completion_mask, got {list(value)}")
        expect_type(value[key], torch.Tensor, f"{what}[{key!r}]")
    return value


def _layout_advice(got, want):
    if tuple(got["input_ids"].shape) != tuple(want["input_ids"].shape):
        return f"input_ids should be (2B, T) = {tuple(want['input_ids'].shape)}: {LAYOUT}"
    if not torch.equal(got["input_ids"], want["input_ids"]):
        n = len(want["input_ids"]) // 2
        inter = torch.stack([want["input_ids"][:n], want["input_ids"][n:]], 1).reshape(want["input_ids"].shape)
        if torch.equal(got["input_ids"], inter):
            return f"the rows interleave chosen and rejected: {LAYOUT}"
        return f"input_ids differ (is a list changed in place while building the rows?): {LAYOUT}"
    comp, att = got["completion_mask"], want["attention_mask"]
    if torch.equal(comp.to(torch.long), att):
        return "completion_mask marks the prompt too: it is 1 on completion tokens only (not prompt, not padding)"
    if torch.equal(got["attention_mask"].to(torch.long), att) and bool(((comp != 0) & (att == 0)).any()):
        return "completion_mask is 1 on padding: it is 1 on the completion's real tokens only"
    return "attention_mask is 1 on every real token (prompt and completion) and 0 on padding; " + LAYOUT


@pytest.mark.points(1)
def test_collate_pairs_layout(student, reference, co):
    """collate_pairs builds [chosen; rejected] rows, right-padded, with attention and completion masks"""
    for pairs, pad in ((PAIRS, 99), (PAIRS[:1], co.PAD_ID), (PAIRS[::-1], 0)):
        want = reference.collate_pairs(pairs, pad)
        got = _batch(student.collate_pairs(pairs, pad), f"collate_pairs({len(pairs)} pairs, pad_id={pad})")
        advice = _layout_advice(got, want)
        for key in ("input_ids", "attention_mask", "completion_mask"):
            assert_tensor_close(got[key], want[key], rtol=0, atol=0, name=f"{key} (pad_id={pad})", advice=advice)


@pytest.mark.points(2)
def test_sequence_logprobs_completion_only(student, reference, co):
    """sequence_logprobs sums shifted token log-probs over completion tokens only (no prompt, no padding)"""
    g = torch.Generator().manual_seed(3)
    lengths = [(3, 4), (1, 8), (5, 1), (2, 3)]  # (prompt, completion) per row; T = 9, the rest is padding
    ids = torch.randint(0, 13, (4, 9), generator=g)
    completion, attention = torch.zeros_like(ids), torch.zeros_like(ids)
    for i, (p, c) in enumerate(lengths):
        completion[i, p:p + c] = 1
        attention[i, :p + c] = 1
    logits = torch.randn(4, 9, 13, generator=g) * 2
    for dtype, mask in ((torch.float32, completion), (torch.float64, completion.bool())):
        x = logits.to(dtype)
        got = co.expect_vector(student.sequence_logprobs(x, ids, mask), 4, f"sequence_logprobs ({dtype})", dtype)
        co.close(got, reference.sequence_logprobs(x, ids, completion), f"sequence_logprobs ({str(dtype)[6:]})",
                 "sum over t >= 1 of completion_mask[:, t] * log_softmax(logits[:, t-1])[input_ids[:, t]], in "
                 "logits' dtype", "logprobs", x, ids, completion, attention)
    if importlib.util.find_spec("trl") is not None:  # TRL's own helper, where TRL is installed
        from trl.trainer.utils import selective_log_softmax

        trl_sum = (selective_log_softmax(logits[:, :-1], ids[:, 1:]) * completion[:, 1:]).sum(-1)
        got = student.sequence_logprobs(logits, ids, completion)
        assert_tensor_close(got, trl_sum, **co.LOGP_TOL, name="sequence_logprobs vs TRL's selective_log_softmax",
                            advice="differs from TRL's per-token log-probs summed over the completion")
        record("trl", "compared with trl.trainer.utils.selective_log_softmax")
    else:
        record("trl", "not installed: compared with the formula only")


def _random_logps(n, seed):
    g = torch.Generator().manual_seed(seed)
    return [-10 - 50 * torch.rand(n, generator=g) for _ in range(4)]


def _dpo(student, pc, pr, rc, rr, beta, what):
    value = student.dpo_loss(pc, pr, rc, rr, beta)
    expect_type(value, (tuple, list), what)
    assert len(value) == 3, f"{what} should return (losses, chosen_rewards, rejected_rewards), got {len(value)} items"
    return list(value)


@pytest.mark.points(2)
def test_dpo_loss_matches_formula(student, reference, co):
    """dpo_loss returns per-pair -log sigmoid(beta*((pi_c - ref_c) - (pi_r - ref_r))) and both rewards"""
    pc, pr, rc, rr = _random_logps(6, 11)
    pr[0], rr[0] = pr[0] + 1500.0, rr[0] - 10.0  # one pair far on the wrong side: z = -(beta * ~1500)
    cases = [(0.1, torch.float32), (0.5, torch.float32), (0.1, torch.float64)]
    for beta, dtype in cases:
        args = [t.to(dtype) for t in (pc, pr, rc, rr)]
        got = _dpo(student, *args, beta, f"dpo_loss(beta={beta}, {str(dtype)[6:]})")
        want = reference.dpo_loss(*args, beta)
        for name, value, expected in zip(("losses", "chosen", "rejected"), got, want, strict=True):
            what = f"dpo_loss {name} (beta={beta}, {str(dtype)[6:]})"
            if name == "losses" and isinstance(value, torch.Tensor) and value.shape == ():
                raise AssertionError(f"{what} is one number: return one loss PER PAIR (shape (B,)), not the mean")
            value = co.expect_vector(value, 6, what, dtype)
            co.close(value, expected, what, f"{name}: see the formula in the stub (beta * (policy - reference) "
                     "log-ratios, -F.logsigmoid of their difference)", "dpo", name, *args, beta,
                     rtol=1e-5, atol=1e-5)


@pytest.mark.points(1)
def test_dpo_loss_properties(student, co):
    """ln 2 when policy equals reference; swapping chosen and rejected flips every margin's sign"""
    pc, pr, rc, rr = _random_logps(5, 12)
    losses, chosen, rejected = _dpo(student, pc, pr, pc.clone(), pr.clone(), 0.1, "dpo_loss(policy == reference)")
    losses = co.expect_vector(losses, 5, "dpo_loss losses")
    assert torch.allclose(losses, torch.full_like(losses, co.LN2), atol=1e-6), (
        f"with the policy equal to the reference every pair's loss is ln 2 = {co.LN2:.6f}, got {losses.tolist()}: "
        "the rewards are beta * (policy - reference) log-ratios, zero here")
    for name, value in (("chosen", chosen), ("rejected", rejected)):
        value = co.expect_vector(value, 5, f"dpo_loss {name}_rewards")
        assert bool((value == 0).all()), f"with the policy equal to the reference the {name} rewards are 0"
    base = _dpo(student, pc, pr, rc, rr, 0.3, "dpo_loss")
    swap = _dpo(student, pr, pc, rr, rc, 0.3, "dpo_loss(chosen and rejected swapped)")
    base = [co.expect_vector(v, 5, "dpo_loss output") for v in base]
    swap = [co.expect_vector(v, 5, "dpo_loss output (swapped)") for v in swap]
    margin = base[1] - base[2]
    assert_tensor_close(swap[1] - swap[2], -margin, rtol=1e-5, atol=1e-5, name="margin after swapping",
                        advice="swapping chosen and rejected must flip the sign of chosen_reward - rejected_reward")
    # -log sigmoid(-z) - (-log sigmoid(z)) = z for every pair
    assert_tensor_close(swap[0] - base[0], margin, rtol=1e-4, atol=1e-4, name="loss(swapped) - loss",
                        advice="loss(swapped) - loss should equal the margin z (the loss is -log sigmoid(z))")


@pytest.mark.points(1)
def test_reward_pair_loss(student, reference, co):
    """reward_pair_loss is the Bradley-Terry loss: mean of -log sigmoid(r_chosen - r_rejected)"""
    g = torch.Generator().manual_seed(4)
    rc, rr = torch.randn(7, generator=g) * 3, torch.randn(7, generator=g) * 3
    want = reference.reward_pair_loss(rc, rr)
    got = student.reward_pair_loss(rc, rr)
    expect_type(got, torch.Tensor, "reward_pair_loss(...)")
    assert got.shape == (), f"reward_pair_loss should return a 0-dim tensor (the mean), got shape {tuple(got.shape)}"
    swapped = reference.reward_pair_loss(rr, rc)
    advice = ("chosen and rejected are swapped: the loss is -log sigmoid(r_chosen - r_rejected)"
              if torch.allclose(got, swapped, atol=1e-5) else
              "the Bradley-Terry loss is -F.logsigmoid(chosen_rewards - rejected_rewards).mean()")
    assert_tensor_close(got, want, rtol=1e-5, atol=1e-6, name="reward_pair_loss", advice=advice)
    even = student.reward_pair_loss(rc, rc.clone())
    expect_type(even, torch.Tensor, "reward_pair_loss(r, r)")
    assert abs(float(even) - co.LN2) < 1e-6, f"equal rewards give ln 2 = {co.LN2:.6f}, got {float(even):.6f}"


def _raises(call, advice):
    with pytest.raises(StudentCodeError) as caught:
        call()
        pytest.fail(advice)
    assert caught.value.exc_type == "ValueError", f"{advice} (raised {caught.value.exc_type}, not ValueError)"


@pytest.mark.points(1)
def test_bad_inputs_raise(student):
    """dpo_loss refuses beta <= 0; collate_pairs refuses an empty batch or an empty completion"""
    t = torch.zeros(2)
    _raises(lambda: student.dpo_loss(t, t, t, t, 0.0), "dpo_loss(..., beta=0) should raise ValueError")
    _raises(lambda: student.dpo_loss(t, t, t, t, -0.1), "dpo_loss(..., beta=-0.1) should raise ValueError")
    _raises(lambda: student.collate_pairs([], 0), "collate_pairs([]) should raise ValueError")
    bad = [{"prompt": [1, 2], "chosen": [], "rejected": [3]}]
    _raises(lambda: student.collate_pairs(bad, 0), "collate_pairs with an empty chosen completion should raise "
            "ValueError: an empty completion has log-prob 0 and teaches nothing")


def _reward_rows(seed):
    g = torch.Generator().manual_seed(seed)
    return [[256, *torch.randint(32, 127, (n,), generator=g).tolist()] for n in (8, 3, 6, 1)]


@pytest.mark.points(2)
def test_reward_model_reads_last_real_token(student, reference, co, config):
    """RewardModel.rewards reads each row's last real token: right and left padding give the rewards alone"""
    weights = co.init_weights(config, "reward", seed=21)
    trusted = reference.RewardModel(config, weights)
    rm = student.new("RewardModel", config, weights)
    rows = _reward_rows(5)
    alone = torch.cat([trusted.rewards(*co.pad_rows([row], co.PAD_ID, left=False)) for row in rows])
    for side in ("right", "left"):
        ids, mask = co.pad_rows(rows, co.PAD_ID, left=side == "left")
        got = co.expect_vector(rm.rewards(ids, mask), len(rows), f"rewards ({side}-padded batch)")
        co.close(got, alone, f"rewards of a {side}-padded batch vs each sequence alone",
                 "padding changed a reward: read the score at each row's last REAL token, with position_ids "
                 "counted over real tokens", "rewards", trusted, ids, mask,
                 rtol=1e-4, atol=1e-4)


@pytest.mark.points(1)
def test_trainer_logprobs_at_init(student, reference, co, config, pools):
    """DPOTrainer starts with policy == reference: equal log-probs, and a DPO loss of ln 2"""
    weights = co.init_weights(config, "causal", seed=31)
    trainer = student.new("DPOTrainer", config, weights, beta=0.1)
    pairs = co.make_pairs(pools["train"], 6, seed=0)
    batch = reference.collate_pairs(pairs, co.PAD_ID)
    want = reference.DPOTrainer(config, weights, beta=0.1).logprobs(
        batch["input_ids"], batch["attention_mask"], batch["completion_mask"])["policy"]
    got = trainer.logprobs(batch["input_ids"], batch["attention_mask"], batch["completion_mask"])
    expect_type(got, dict, "DPOTrainer.logprobs(...)")
    for side in ("policy", "reference"):
        assert side in got, f"DPOTrainer.logprobs should return {{'policy': ..., 'reference': ...}}, got {list(got)}"
        value = co.expect_vector(got[side], len(want), f"logprobs()[{side!r}]")
        co.close(value, want, f"{side} log-probs at init", "the sequence log-probs differ from the model's: run the "
                 "model on input_ids with attention_mask, then sequence_logprobs over the completion tokens",
                 None)
    loss = trainer.loss(pairs)
    assert type(loss) in (float, int), f"DPOTrainer.loss should return a Python float, got {type(loss).__name__}"
    assert math.isclose(float(loss), co.LN2, abs_tol=1e-5), (
        f"at init the policy equals the reference, so the DPO loss is ln 2 = {co.LN2:.6f}, got {float(loss):.6f}")
