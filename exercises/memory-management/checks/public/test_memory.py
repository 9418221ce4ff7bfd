"""Public checks of the memory-management exercise: accumulation equals the big batch, bf16 autocast, checkpointing."""

import math

import pytest
import torch
import torch.nn.functional as F

from grader.testing import StudentCodeError, assert_tensor_close, expect_type, record

NORMALISE = ("each micro-batch's loss is its token-loss SUM divided by the target-token count of the WHOLE window "
             "(labels != -100 over all its micro-batches), and .grad accumulates over the window's backward calls")


@pytest.mark.points(1)
def test_token_loss_sum(student, mm):
    """token_loss_sum: the sum of token cross-entropies over labels != -100, the count, fp32, never NaN"""
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(3, 5, 7, generator=g)
    labels = torch.randint(0, 7, (3, 5), generator=g)
    labels[0, :2] = mm.IGNORE
    labels[2, 3:] = mm.IGNORE
    got = student.token_loss_sum(logits, labels)
    expect_type(got, (tuple, list), "token_loss_sum(logits, labels)")
    assert len(got) == 2, "token_loss_sum should return a pair (loss_sum, count)"
    total, count = got
    want = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=mm.IGNORE, reduction="sum")
    assert type(count) is int, f"the count should be a Python int, got {type(count).__name__}"
    expected = int((labels != mm.IGNORE).sum())
    assert count == expected, (f"counted {count} target tokens, expected {expected}: count labels != -100 (not every "
                               "position, not the attention mask)")
    assert_tensor_close(total, want, rtol=1e-5, atol=1e-5, name="loss sum", advice=(
        "the loss should be the SUM of per-token cross-entropies over target tokens (reduction='sum', "
        "ignore_index=-100), not their mean"))
    total16, _ = student.token_loss_sum(logits.bfloat16(), labels)
    want16 = F.cross_entropy(logits.bfloat16().float().flatten(0, 1), labels.flatten(), ignore_index=mm.IGNORE,
                             reduction="sum")
    assert_tensor_close(total16, want16, rtol=1e-5, atol=1e-4, name="loss sum of bf16 logits", advice=(
        "with bfloat16 logits, compute the cross-entropy in float32 (logits.float()) and return a float32 sum"))
    none = torch.full((2, 4), mm.IGNORE)
    total0, count0 = student.token_loss_sum(torch.randn(2, 4, 7, generator=g), none)
    expect_type(total0, torch.Tensor, "token_loss_sum with no target token")
    assert count0 == 0 and float(total0) == 0.0, (
        f"with every label -100, token_loss_sum should give (0.0, 0), got ({float(total0)}, {count0}): a mean "
        "over zero tokens is NaN, a sum is 0")
    with pytest.raises(StudentCodeError) as err:
        student.token_loss_sum(logits, labels[:, :4])
        pytest.fail("token_loss_sum accepted labels of shape (3, 4) for logits (3, 5, 7): raise ValueError")
    assert err.value.exc_type == "ValueError", f"a shape mismatch should raise ValueError, not {err.value.exc_type}"


@pytest.mark.points(2)
def test_gradients_equal_big_batch(student, reference, mm, targets):
    """loss_and_grads over variable-length micro-batches equals one big batch (loss, token count, every gradient)"""
    state = mm.init_state(mm.CONFIG, seed=1)
    gen = torch.Generator().manual_seed(2)
    groups, micro = mm.window(gen, [3, 1, 2, 1], [(20, 40), (2, 6), (8, 16), (30, 40)])
    counts = mm.targets_of(micro)
    record("target_tokens_per_micro_batch", counts)
    want = reference.loss_and_grads(mm.CONFIG, state, [mm.big_batch(groups)])
    got = mm.expect_result(student.loss_and_grads(mm.CONFIG, state, micro), "loss_and_grads(micro_batches)")
    assert got["num_tokens"] == want["num_tokens"], (
        f"num_tokens is {got['num_tokens']}, expected {want['num_tokens']} (the window's labels != -100; the "
        f"micro-batches have {counts})")
    mm.expect_grads(got["grads"], want["grads"], what="grads", advice=NORMALISE, tol=mm.tolerance(targets, "float32"),
                    diagnose=mm.diagnose_window(mm.CONFIG, state, micro, got))
    assert abs(got["loss"] - want["loss"]) <= 1e-5 * max(1.0, abs(want["loss"])), (
        f"loss {got['loss']:.6f} differs from the big batch's token mean {want['loss']:.6f}: report the window's "
        "summed token loss divided by its target-token count")


@pytest.mark.points(2)
def test_trainer_matches_big_batch_training(student, reference, mm):
    """k=2 accumulation for 2 optimiser steps gives the weights, losses, grad norms and lrs of big-batch training"""
    state = mm.init_state(mm.CONFIG, seed=3)
    gen = torch.Generator().manual_seed(4)
    groups, micro = mm.window(gen, [2, 1, 1, 3], [(4, 12), (25, 40), (10, 30), (3, 8)])
    options = {"lr": 1e-2, "warmup_steps": 2, "weight_decay": 0.01}
    oracle = reference.AccumulationTrainer(mm.CONFIG, state, accumulation_steps=1, **options)
    want = oracle.train([mm.big_batch(groups[:2]), mm.big_batch(groups[2:])])
    trainer = student.new("AccumulationTrainer", mm.CONFIG, state, accumulation_steps=2, **options)
    got = mm.expect_history(trainer.train(micro), 2, "train(4 micro-batches) with accumulation_steps=2")
    record("losses", got["losses"])
    steps = trainer.optimizer_steps()
    assert steps == 2, f"optimizer_steps() is {steps} after 4 micro-batches with accumulation_steps=2, expected 2"
    assert mm.close_list(got["lrs"], want["lrs"], 1e-6, 1e-12), (
        f"the learning rates {got['lrs']} should be {want['lrs']}: step the scheduler once per OPTIMISER step, "
        "after optimizer.step()")
    assert mm.close_list(got["grad_norms"], want["grad_norms"]), (
        f"the accumulated gradient norms {got['grad_norms']} should be those of the big batches {want['grad_norms']}: "
        f"{NORMALISE}")
    final = mm.expect_state(trainer.state_dict(), state, "state_dict()")
    record("relative_update_error", mm.expect_same_update(final, oracle.state_dict(), state, (
        "after 2 optimiser steps the weights differ from big-batch training: one AdamW step and one scheduler "
        "step per window of accumulation_steps micro-batches, zero_grad once per window")))
    assert mm.close_list(got["losses"], want["losses"], 1e-5, 1e-6), (
        f"the reported losses {got['losses']} should be each window's token mean {want['losses']}")


@pytest.mark.points(1)
def test_autocast_runs_in_bf16(student, reference, mm):
    """under bf16 autocast the logits come out bfloat16, close to fp32, and the loss stays within the bound"""
    state = mm.init_state(mm.CONFIG, seed=5)
    gen = torch.Generator().manual_seed(6)
    _, (batch,) = mm.window(gen, [4], [(10, 30)])
    fp32 = reference.forward_logits(mm.CONFIG, state, batch["input_ids"])
    plain = student.forward_logits(mm.CONFIG, state, batch["input_ids"])
    assert_tensor_close(plain, fp32, rtol=1e-4, atol=1e-5, name="forward_logits without autocast",
                        advice="without autocast the logits are the fp32 model's, in float32")
    got = student.forward_logits(mm.CONFIG, state, batch["input_ids"], autocast=True)
    expect_type(got, torch.Tensor, "forward_logits(..., autocast=True)")
    assert got.dtype == torch.bfloat16, (
        f"under autocast the logits are {got.dtype}: the linear layers should run in bfloat16. Wrap the forward "
        "in torch.autocast('cpu', dtype=torch.bfloat16) (CPU autocast is bf16; float16 is a GPU dtype) and "
        "return the logits as they come out")
    want = reference.forward_logits(mm.CONFIG, state, batch["input_ids"], autocast=True)
    assert_tensor_close(got.float(), want.float(), rtol=2e-2, atol=2e-2, name="bf16 logits", check_dtype=False,
                        advice="the bf16 logits differ from autocast's: keep the parameters fp32 and let autocast "
                               "cast the matmul inputs")
    labels = batch["labels"]
    ref_loss = float(F.cross_entropy(fp32.flatten(0, 1), labels.flatten(), ignore_index=mm.IGNORE))
    bf_loss = float(F.cross_entropy(got.float().flatten(0, 1), labels.flatten(), ignore_index=mm.IGNORE))
    record("loss_fp32", ref_loss)
    record("loss_bf16", bf_loss)
    assert math.isfinite(bf_loss) and abs(bf_loss - ref_loss) <= mm.LOSS_BOUND, (
        f"the loss of your bf16 logits ({bf_loss:.4f}) is more than {mm.LOSS_BOUND} from the fp32 loss "
        f"({ref_loss:.4f})")


@pytest.mark.points(1)
def test_checkpointing_same_gradients(student, reference, mm, targets):
    """with activation checkpointing the gradients are unchanged and every block is recomputed once"""
    state = mm.init_state(mm.CONFIG, seed=7)
    gen = torch.Generator().manual_seed(8)
    groups, micro = mm.window(gen, [2, 3], [(10, 30), (5, 20)])
    want = reference.loss_and_grads(mm.CONFIG, state, [mm.big_batch(groups)])
    got = mm.expect_result(student.loss_and_grads(mm.CONFIG, state, micro, checkpointing=True),
                           "loss_and_grads(..., checkpointing=True)")
    mm.expect_grads(got["grads"], want["grads"], what="grads with checkpointing", tol=mm.tolerance(targets, "float32"),
                    advice="checkpointing must not change the gradients: checkpoint(block, x, use_reentrant=False) "
                           "for each block, and the same loss normalisation as without it")
    layers, n_micro = mm.CONFIG["n_layers"], len(micro)
    calls = got["block_forwards"]
    record("block_forwards", calls)
    assert (2 * layers - 1) * n_micro <= calls <= 2 * layers * n_micro, (
        f"the blocks ran {calls} times for {n_micro} micro-batches of a {layers}-block model; with checkpointing "
        f"each block runs twice per micro-batch ({2 * layers * n_micro}): once forward, once recomputed in backward. "
        "Run each block through torch.utils.checkpoint.checkpoint when checkpointing=True")


@pytest.mark.points(1)
def test_bad_arguments_raise(student, mm):
    """no micro-batch, accumulation_steps < 1 or warmup_steps < 1 raise ValueError"""
    state = mm.init_state(mm.CONFIG, seed=9)
    cases = [
        (lambda: student.loss_and_grads(mm.CONFIG, state, []), "loss_and_grads with no micro-batch"),
        (lambda: student.new("AccumulationTrainer", mm.CONFIG, state, accumulation_steps=0),
         "AccumulationTrainer(accumulation_steps=0)"),
        (lambda: student.new("AccumulationTrainer", mm.CONFIG, state, accumulation_steps=2, warmup_steps=0),
         "AccumulationTrainer(warmup_steps=0)"),
    ]
    for call, what in cases:
        with pytest.raises(StudentCodeError) as err:
            call()
            pytest.fail(f"{what} did not raise: raise ValueError (it would divide by zero or never step)")
        assert err.value.exc_type == "ValueError", f"{what} should raise ValueError, not {err.value.exc_type}"
