"""Hidden checks of the memory-management exercise: seeded windows, the last partial window, the schedule,
state across calls, fp32 master weights under autocast, recomputation (and CUDA peak memory under gpu)."""

import math

import pytest
import torch

from grader.testing import record

ADVICE = ("divide each micro-batch's token-loss sum by the target-token count of its whole window; a micro-batch "
          "with no target token adds nothing (and never NaN)")


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_hidden_windows_equal_big_batch(student, reference, mm, seed, targets):
    """seeded windows (a micro-batch with no target, a batch of one, a deeper model) equal their big batch"""
    gen = torch.Generator().manual_seed(seed)
    cases = [
        (mm.CONFIG, [2, 1, 3, 1, 2], [(3, 10), (30, 40), (5, 12), (2, 3), (15, 25)], (3,)),
        (mm.DEEP, [1, 1, 1], [(2, 5), (20, 30), (40, 48)], ()),
    ]
    for i, (config, sizes, lengths, empty) in enumerate(cases):
        state = mm.init_state(config, seed=seed + i)
        groups, micro = mm.window(gen, sizes, lengths, vocab=(1, config["vocab_size"]), empty=empty)
        want = reference.loss_and_grads(config, state, [mm.big_batch(groups, empty)])
        got = mm.expect_result(student.loss_and_grads(config, state, micro), f"loss_and_grads (window {i + 1})")
        assert got["num_tokens"] == want["num_tokens"], f"window {i + 1}: num_tokens is {got['num_tokens']}, not the " \
                                                        "window's count of labels != -100"
        assert math.isfinite(got["loss"]) and abs(got["loss"] - want["loss"]) <= 1e-5 * max(1.0, want["loss"]), (
            f"window {i + 1}: the loss is not the window's token mean ({ADVICE})")
        mm.expect_grads(got["grads"], want["grads"], what=f"window {i + 1} grads", advice=ADVICE,
                        tol=mm.tolerance(targets, "float32"), diagnose=mm.diagnose_window(config, state, micro, got))


def _train_pair(student, reference, mm, seed, sizes, lengths, k, windows, **options):
    """The student's trainer on the micro-batches and the reference (k=1) on the matching big batches."""
    state = mm.init_state(mm.CONFIG, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    groups, micro = mm.window(gen, sizes, lengths)
    oracle = reference.AccumulationTrainer(mm.CONFIG, state, accumulation_steps=1, **options)
    want = oracle.train([mm.big_batch(groups[a:b]) for a, b in windows])
    trainer = student.new("AccumulationTrainer", mm.CONFIG, state, accumulation_steps=k, **options)
    return state, micro, trainer, oracle, want


def _same_weights(trainer, oracle, state, mm, advice):
    final = mm.expect_state(trainer.state_dict(), state, "state_dict()")
    record("relative_update_error", mm.expect_same_update(final, oracle.state_dict(), state, advice))


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_last_partial_window(student, reference, mm, seed):
    """7 micro-batches with accumulation_steps=3: 3 optimiser steps, the last over one micro-batch"""
    state, micro, trainer, oracle, want = _train_pair(
        student, reference, mm, seed, [1, 2, 1, 2, 1, 1, 3], [(5, 20), (2, 8), (20, 40), (5, 10), (10, 30), (3, 6),
                                                              (8, 16)],
        3, [(0, 3), (3, 6), (6, 7)], lr=5e-3, warmup_steps=1)
    got = mm.expect_history(trainer.train(micro), 3, "train(7 micro-batches) with accumulation_steps=3")
    assert trainer.optimizer_steps() == 3, "7 micro-batches in windows of 3 are 3 optimiser steps, the last partial"
    assert mm.close_list(got["grad_norms"], want["grad_norms"]), (
        "the gradient norms differ from big-batch training (the last window's above all?): the partial window is "
        "normalised by ITS OWN target-token count")
    assert mm.close_list(got["losses"], want["losses"], 1e-5, 1e-6), "each step's loss is its window's token mean"
    _same_weights(trainer, oracle, state, mm, "after the last, partial window the weights differ from big-batch "
                                              "training: step once on what is left, normalised by its own tokens")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_scheduler_and_optimizer_step_per_window(student, reference, mm, seed):
    """warm-up lrs advance once per window: lr/3, 2lr/3, lr over 6 micro-batches with accumulation_steps=2"""
    state, micro, trainer, oracle, _ = _train_pair(
        student, reference, mm, seed + 1, [1] * 6, [(4, 12)] * 6, 2, [(0, 2), (2, 4), (4, 6)], lr=3e-3,
        warmup_steps=3)
    got = mm.expect_history(trainer.train(micro), 3, "train(6 micro-batches) with accumulation_steps=2")
    record("lrs", got["lrs"])
    assert mm.close_list(got["lrs"], [1e-3, 2e-3, 3e-3], 1e-6, 1e-12), (
        f"the learning rates of the 3 optimiser steps are {got['lrs']}, expected [1e-3, 2e-3, 3e-3]: step the "
        "scheduler once per window (after optimizer.step()), never once per micro-batch")
    assert trainer.optimizer_steps() == 3, "6 micro-batches in windows of 2 are 3 optimiser steps"
    _same_weights(trainer, oracle, state, mm, "one AdamW step per window of accumulation_steps micro-batches")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_trainer_state_across_calls(student, reference, mm, seed):
    """a second train() call continues the same optimiser and schedule (6 then 3 micro-batches == 9 at once)"""
    state, micro, trainer, oracle, want = _train_pair(
        student, reference, mm, seed + 2, [1, 2, 1, 1, 2, 1, 1, 1, 2], [(5, 15)] * 9, 3, [(0, 3), (3, 6), (6, 9)],
        lr=4e-3, warmup_steps=3)
    first = mm.expect_history(trainer.train(micro[:6]), 2, "the first train(6 micro-batches) call")
    second = mm.expect_history(trainer.train(micro[6:]), 1, "the second train(3 micro-batches) call")
    assert trainer.optimizer_steps() == 3, "after 2 + 1 optimiser steps over two calls, optimizer_steps() is 3"
    lrs = first["lrs"] + second["lrs"]
    assert mm.close_list(lrs, want["lrs"], 1e-6, 1e-12), (
        f"the learning rates over two calls are {lrs}, expected {want['lrs']}: keep ONE optimiser and scheduler for "
        "the trainer's life (build them in __init__), not one per train() call")
    _same_weights(trainer, oracle, state, mm, "a second train() call must continue the same AdamW state (moments "
                                              "and step count): build the optimiser once, in __init__")


@pytest.mark.points(2)
@pytest.mark.visibility("message-only")
def test_autocast_keeps_fp32_parameters(student, reference, mm, seed):
    """bf16 autocast with checkpointing: fp32 weights (untouched rows bit-identical), fp32 grads, close to fp32"""
    state = mm.init_state(mm.CONFIG, seed=seed + 3)
    gen = torch.Generator().manual_seed(seed + 4)
    groups, micro = mm.window(gen, [2, 1, 2, 1], [(5, 20), (10, 25), (4, 9), (8, 12)], vocab=(1, 30))
    options = {"lr": 1e-3, "warmup_steps": 1, "weight_decay": 0.0}
    trainer = student.new("AccumulationTrainer", mm.CONFIG, state, accumulation_steps=2, autocast=True,
                          checkpointing=True, **options)
    mm.expect_history(trainer.train(micro), 2, "train with autocast=True")
    final = mm.expect_state(trainer.state_dict(), state, "state_dict() after autocast training")
    bad = sorted(name for name, value in final.items() if value.dtype != torch.float32)
    assert not bad, (f"after autocast training, {bad[:3]} are not float32: autocast keeps fp32 parameters and casts "
                     "only inside the region; never model.to(torch.bfloat16)")
    for name in ("tok.weight", "pos.weight"):
        rows = slice(30, None) if name == "tok.weight" else slice(26, None)  # tokens 30.. and positions 26.. unused
        assert torch.equal(final[name][rows], state[name][rows]), (
            f"the rows of {name} that no batch uses changed: the weights went through bfloat16 and back. Keep the "
            "parameters (fp32 master weights) in float32: only autocast's matmuls run in bf16")
    oracle = reference.AccumulationTrainer(mm.CONFIG, state, accumulation_steps=1, **options)
    oracle.train([mm.big_batch(groups[:2]), mm.big_batch(groups[2:])])
    rel = mm.expect_same_update(final, oracle.state_dict(), state, limit=0.25, advice=(
        "the bf16-autocast updates are far from fp32 training's: autocast the forward only, accumulate as in fp32, "
        "and step fp32 weights"))
    record("relative_update_error_vs_fp32", rel)
    got = mm.expect_result(student.loss_and_grads(mm.CONFIG, state, micro[:2], autocast=True),
                           "loss_and_grads(..., autocast=True)")
    want = reference.loss_and_grads(mm.CONFIG, state, [mm.big_batch(groups[:2])])
    dtypes = sorted({str(g.dtype) for g in got["grads"].values() if isinstance(g, torch.Tensor)})
    assert dtypes == ["torch.float32"], f"under autocast the gradients are {dtypes}: fp32 parameters get fp32 grads"
    assert abs(got["loss"] - want["loss"]) <= mm.LOSS_BOUND, (
        f"the autocast loss {got['loss']:.4f} is more than {mm.LOSS_BOUND} from the fp32 loss {want['loss']:.4f}")
    cos = float(torch.nn.functional.cosine_similarity(mm.flat(got["grads"]), mm.flat(want["grads"]), dim=0))
    record("grad_cosine_bf16_vs_fp32", cos)
    assert cos >= 0.999, f"the autocast gradient's cosine with the fp32 gradient is {cos:.4f} (expected >= 0.999)"


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
@pytest.mark.timeout_s(120)
def test_checkpointing_recomputes_each_block(student, reference, mm, seed, targets, profile):
    """checkpointing on a 4-block model under autocast recomputes every block; under gpu it cuts CUDA peak memory"""
    config = mm.DEEP
    state = mm.init_state(config, seed=seed + 5)
    gen = torch.Generator().manual_seed(seed + 6)
    _, micro = mm.window(gen, [2, 1, 2], [(10, 30), (30, 48), (3, 10)], vocab=(1, config["vocab_size"]))
    got = mm.expect_result(student.loss_and_grads(config, state, micro, autocast=True, checkpointing=True),
                           "loss_and_grads(..., autocast=True, checkpointing=True)")
    layers, n_micro = config["n_layers"], len(micro)
    record("block_forwards", got["block_forwards"])
    assert (2 * layers - 1) * n_micro <= got["block_forwards"] <= 2 * layers * n_micro, (
        f"{got['block_forwards']} block forwards for {n_micro} micro-batches of a {layers}-block model: with "
        "checkpointing each block runs twice per micro-batch (forward, then recomputed in backward), autocast or not")
    want = reference.loss_and_grads(config, state, micro, autocast=True)
    cos = float(torch.nn.functional.cosine_similarity(mm.flat(got["grads"]), mm.flat(want["grads"]), dim=0))
    assert cos >= 0.9999, (f"with checkpointing under autocast the gradient changed (cosine {cos:.5f} with autocast "
                           "alone): checkpointing recomputes the same forward")
    if profile != "gpu":
        return
    size = {k: int(v) for k, v in targets.items() if k.startswith("memory_")}
    big = {"vocab_size": 256, "d_model": size["memory_d_model"], "n_heads": 8, "n_layers": size["memory_layers"],
           "max_len": size["memory_seq"]}
    state = mm.init_state(big, seed=seed + 7)
    ids = torch.randint(0, 256, (size["memory_batch"], size["memory_seq"]), generator=gen)
    batch = {"input_ids": ids, "labels": ids.roll(-1, 1), "attention_mask": torch.ones_like(ids)}
    plain = student.loss_and_grads(big, state, [batch], device="cuda")
    ckpt = student.loss_and_grads(big, state, [batch], device="cuda", checkpointing=True)
    peaks = [r.get("peak_memory_bytes") if isinstance(r, dict) else None for r in (plain, ckpt)]
    assert all(type(p) is int and p > 0 for p in peaks), f"peak_memory_bytes on CUDA should be positive ints: {peaks}"
    ratio = peaks[1] / peaks[0]
    record("cuda_peak_bytes", {"plain": peaks[0], "checkpointed": peaks[1], "ratio": ratio})
    limit = float(targets["max_checkpoint_memory_ratio"])
    assert ratio <= limit, (f"checkpointing brought the CUDA peak to {ratio:.0%} of the plain run's (allowed "
                            f"{limit:.0%}): checkpoint every block, so only block inputs are kept for backward")
