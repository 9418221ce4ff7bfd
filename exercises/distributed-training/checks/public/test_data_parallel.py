"""Data-parallel training equals one process trained on the whole batch, step by step."""

import pytest
from helpers import CHECK_ORDER, grad_at, gradient_mistake, tied_mistake

from grader.testing import expect_close


def expect_states(got, want, what, tol, diagnose=None):
    for name in want:
        expect_close(got[name], want[name], what=f"{what}: {name}", check_dtype=False, diagnose=diagnose, **tol)


def replayed(dt, run):
    """A diagnose callback for expect_close that replays the classic mistakes (once) to name the one made."""
    cache = {}

    def named(actual, expected):
        if "text" not in cache:
            cache["text"] = dt.diagnose(run, dt.tol)
        return cache["text"]

    return named


@pytest.mark.points(3)
@pytest.mark.timeout_s(150)
def test_parameters_match_single_process(student, dt):
    """2 ranks started from different weights: after every step rank 0 equals one process on the whole batch"""
    run = dt.trainings.get(student, "plain")
    named = replayed(dt, run)
    for s, want in enumerate(run.expected):
        expect_states(run.reports[0]["params"][s], want, f"rank 0 after step {s}", dt.tol, named)


@pytest.mark.points(2)
@pytest.mark.timeout_s(150)
def test_ranks_agree_after_every_step(student, dt):
    """Every rank holds the same parameters as the single-process run after every step, in its own process"""
    run = dt.trainings.get(student, "plain")
    pids = [rep["pid"] for rep in run.reports]
    if len(set(pids)) != len(pids):
        raise AssertionError(f"the ranks report process ids {pids}: run every rank in a process of its own "
                             "(torch.multiprocessing.start_processes)")
    named = replayed(dt, run)
    for rep in run.reports[1:]:
        for s, want in enumerate(run.expected):
            expect_states(rep["params"][s], want, f"rank {rep['rank']} after step {s}", dt.tol, named)


@pytest.mark.points(2)
@pytest.mark.timeout_s(150)
def test_gradients_are_averaged(student, dt):
    """After backward, every rank holds the gradient of the mean loss over the whole global batch"""
    run = dt.trainings.get(student, "plain")
    world = run.spec.world_size
    replay = replayed(dt, run)
    for rep in run.reports:
        for s in range(run.spec.steps):
            held = run.weights_before(rep["rank"], s)
            want = grad_at(held, run.spec, run.global_batch(s))
            local = grad_at(held, run.spec, rep["indices"][s][0])
            for name in CHECK_ORDER:
                diagnose = tied_mistake(world) if name == "inp.weight" else gradient_mistake(
                    world, local[name], fallback=lambda: replay(None, None))
                expect_close(rep["grads"][s][0][name], want[name], what=f"rank {rep['rank']}'s {name}.grad at step {s}",
                             check_dtype=False, diagnose=diagnose, **dt.tol)


@pytest.mark.points(2)
@pytest.mark.timeout_s(150)
def test_no_sync_accumulation_matches_big_batch(student, dt):
    """3 ranks x 2 micro-batches under no_sync equal one process on the big batch of 12, step by step"""
    run = dt.trainings.get(student, "accumulate")
    named = replayed(dt, run)
    k = run.spec.accumulation_steps
    for rep in run.reports:
        for s in range(run.spec.steps):
            want = grad_at(run.weights_before(rep["rank"], s), run.spec, run.global_batch(s))
            expect_states(rep["grads"][s][k - 1], want, f"rank {rep['rank']}'s accumulated gradient at step {s}",
                          dt.tol, named)
        for s, want in enumerate(run.expected):
            expect_states(rep["params"][s], want, f"rank {rep['rank']} after step {s}", dt.tol, named)
