"""Hidden checks: uneven shards, bad arguments, frozen and tied parameters, the shards training used, no_sync."""

import pytest
import torch
from helpers import FROZEN, grad_at, gradient_mistake, loss_at, tied_mistake

from grader.testing import StudentCodeError, expect_close, expect_type


@pytest.mark.points(1)
def test_shards_pad_uneven(student, seed):
    """When world_size does not divide the data, every rank still gets ceil(N/W) indices and all are covered"""
    for num_samples, world_size, epoch in ((10, 4, 0), (3, 4, 2), (11, 3, 5)):
        per_rank = -(-num_samples // world_size)
        parts = []
        for rank in range(world_size):
            got = student.shard_indices(num_samples, world_size, rank, epoch, seed % 97)
            expect_type(got, (list, tuple), f"shard_indices({num_samples}, {world_size}, {rank}, ...)")
            parts.append(list(got))
            if len(got) != per_rank:
                raise AssertionError(
                    f"with {num_samples} samples on {world_size} ranks, rank {rank} got {len(got)} indices, expected "
                    f"ceil({num_samples}/{world_size}) = {per_rank}: pad the permutation by repeating its first "
                    "indices (DistributedSampler, drop_last=False) so every rank takes the same number of steps")
        covered = {i for part in parts for i in part}
        if covered != set(range(num_samples)):
            raise AssertionError(f"with {num_samples} samples on {world_size} ranks the shards miss "
                                 f"{sorted(set(range(num_samples)) - covered)}: draw one permutation for all ranks "
                                 "(seeded by seed + epoch, never the rank) and pad it by repeating its first indices")


@pytest.mark.points(1)
@pytest.mark.visibility("message-only")
def test_shard_arguments_checked(student):
    """shard_indices raises ValueError for a rank outside [0, world_size), world_size < 1 or no samples"""
    for args, why in (((8, 2, 2, 0, 0), "rank == world_size"), ((8, 2, -1, 0, 0), "a negative rank"),
                      ((8, 0, 0, 0, 0), "world_size 0"), ((0, 2, 0, 0, 0), "num_samples 0")):
        with pytest.raises(StudentCodeError) as err:
            student.shard_indices(*args)
            pytest.fail(f"shard_indices{args} ({why}) returned instead of raising ValueError")
        if err.value.exc_type != "ValueError":
            raise AssertionError(f"shard_indices{args} ({why}) raised {err.value.exc_type}, expected ValueError")


@pytest.mark.points(2)
@pytest.mark.timeout_s(150)
@pytest.mark.visibility("message-only")
def test_frozen_and_tied_parameters(student, dt):
    """Frozen parameters keep rank 0's values on every rank; the tied weight stays shared and gets one gradient"""
    run = dt.trainings.get(student, "plain")
    start = run.spec.config["initial_states"]
    for rep in run.reports:
        for s, params in enumerate(rep["params"]):
            for name in FROZEN:
                got, want = params[name], start[0][name].double()
                if torch.allclose(got, want, rtol=0, atol=1e-7):
                    continue
                own = start[rep["rank"]][name].double()
                if rep["rank"] and torch.allclose(got, own, rtol=0, atol=1e-7):
                    raise AssertionError(
                        f"rank {rep['rank']}'s frozen {name} is still its own initial value after step {s}: broadcast "
                        "every parameter from rank 0, requires_grad=False ones too (DDP does when it wraps the model)")
                raise AssertionError(
                    f"the frozen {name} changed on rank {rep['rank']} by step {s}: a requires_grad=False parameter "
                    "must never move (leave its .grad None; weight decay moves any parameter that has a gradient)")
            if not torch.equal(params["inp.weight"], params["mid.weight"]):
                raise AssertionError(f"on rank {rep['rank']} after step {s}, mid.weight no longer equals inp.weight: "
                                     "the two layers share one Parameter; keep it shared (don't copy it)")
    for rep in run.reports:
        for s in range(run.spec.steps):
            held = run.weights_before(rep["rank"], s)
            want = grad_at(held, run.spec, run.global_batch(s))
            got = rep["grads"][s][0]
            others_right = all(torch.allclose(got[n], want[n], **dt.tol) for n in want if n != "inp.weight")
            diagnose = tied_mistake(run.spec.world_size) if others_right else gradient_mistake(
                run.spec.world_size, grad_at(held, run.spec, rep["indices"][s][0])["inp.weight"])
            expect_close(got["inp.weight"], want["inp.weight"], check_dtype=False, diagnose=diagnose,
                         what=f"rank {rep['rank']}'s gradient of the shared weight at step {s}", **dt.tol)


@pytest.mark.points(2)
@pytest.mark.timeout_s(150)
@pytest.mark.visibility("message-only")
def test_each_rank_trains_on_its_shard(student, dt):
    """Within an epoch the ranks train on disjoint shards covering the data, the ones shard_indices gives"""
    run = dt.trainings.get(student, "plain")
    spec, per_epoch = run.spec, run.spec.steps_per_epoch
    n, world, seed = spec.num_samples, spec.world_size, spec.config["seed"]
    for epoch in range(spec.epochs):
        steps = range(epoch * per_epoch, (epoch + 1) * per_epoch)
        used = [[i for s in steps for micro in rep["indices"][s] for i in micro] for rep in run.reports]
        if sorted(i for part in used for i in part) != list(range(n)):
            raise AssertionError(
                f"in epoch {epoch} the ranks together trained on {sorted(set().union(*map(set, used)))[:6]}... "
                f"with repeats, not on each of the {n} samples once: each rank trains on its own shard "
                "(shard_indices / DistributedSampler), not on the whole dataset")
        for rank, part in enumerate(used):
            shard = student.shard_indices(n, world, rank, epoch, seed)
            expect_type(shard, (list, tuple), "shard_indices(...)")
            if part != list(shard)[:len(part)]:
                raise AssertionError(
                    f"rank {rank} trained in epoch {epoch} on {part[:4]}..., but shard_indices({n}, {world}, {rank}, "
                    f"{epoch}, seed) gives {list(shard)[:4]}...: train on exactly that shard, in its order "
                    "(DistributedSampler: call set_epoch(epoch) before each epoch)")
    for rep in run.reports:
        for s, losses in enumerate(rep["losses"]):
            for j, loss in enumerate(losses):
                want = loss_at(run.weights_before(rep["rank"], s), spec, rep["indices"][s][j])
                if abs(loss - want) <= 1e-4 * abs(want) + 1e-5:
                    continue
                own = loss_at(spec.config["initial_states"][rep["rank"]], spec, rep["indices"][s][j])
                if s == 0 and rep["rank"] and abs(loss - own) <= 1e-4 * abs(own) + 1e-5:
                    raise AssertionError(
                        f"rank {rep['rank']} computed its first loss with its own initial weights, not rank 0's: "
                        "broadcast rank 0's parameters before the first step (DDP does when it wraps the model)")
                raise AssertionError(
                    f"rank {rep['rank']} reports loss {loss:.6g} for its micro-batch {j} of step {s}, but those "
                    f"samples have loss {want:.6g} at the weights it held for that step: compute the loss on "
                    "inputs[micro] and record loss.item() before dividing by accumulation_steps")


@pytest.mark.points(1)
@pytest.mark.timeout_s(150)
def test_training_reshuffles_every_epoch(student, dt):
    """The second epoch visits each rank's samples in a new order (sampler.set_epoch)"""
    run = dt.trainings.get(student, "plain")
    per_epoch = run.spec.steps_per_epoch
    for rep in run.reports:
        first = [i for s in range(per_epoch) for m in rep["indices"][s] for i in m]
        second = [i for s in range(per_epoch, 2 * per_epoch) for m in rep["indices"][s] for i in m]
        if first == second:
            raise AssertionError(f"rank {rep['rank']} trained on the same samples in the same order in both epochs: "
                                 "reshuffle every epoch (DistributedSampler.set_epoch(epoch), or shard_indices with "
                                 "the epoch)")


@pytest.mark.points(2)
@pytest.mark.timeout_s(150)
@pytest.mark.visibility("message-only")
def test_no_sync_keeps_gradients_local(student, dt):
    """Inside no_sync the first micro-batch's gradient stays the rank's own (loss / k), not yet averaged"""
    run = dt.trainings.get(student, "accumulate")
    spec = run.spec
    k = spec.accumulation_steps
    for s in range(spec.steps):
        local = [grad_at(run.weights_before(rep["rank"], s), spec, rep["indices"][s][0], scale=1 / k)
                 for rep in run.reports]
        mean = {n: sum(g[n] for g in local) / len(local) for n in local[0]}
        for rep, own in zip(run.reports, local, strict=True):
            unshared = grad_at(spec.config["initial_states"][rep["rank"]], spec, rep["indices"][s][0], scale=1 / k) \
                if s == 0 and rep["rank"] else None
            for name in own:
                expect_close(rep["grads"][s][0][name], own[name], check_dtype=False,
                             diagnose=no_sync_mistake(rep["rank"], k, mean[name],
                                                      unshared[name] if unshared else None),
                             what=f"rank {rep['rank']}'s {name}.grad after micro-batch 0 of step {s}",
                             advice="inside no_sync() the gradient is the rank's own: grad of loss / k on its "
                                    "first micro-batch", **dt.tol)


def no_sync_mistake(rank, k, averaged, unshared=None):
    """Names a first micro-batch gradient already all-reduced, not divided by k, or taken at unshared weights."""

    def named(actual, expected):
        if unshared is not None and torch.allclose(actual, unshared.to(actual.dtype), rtol=1e-3, atol=1e-6):
            return (f"rank {rank} computed its first gradient at its own initial weights, not rank 0's: broadcast "
                    "rank 0's parameters before the first step (DDP does when it wraps the model)")
        if torch.allclose(actual, averaged.to(actual.dtype), rtol=1e-3, atol=1e-6):
            return (f"rank {rank}'s gradient after its first micro-batch is already averaged over the ranks: run the "
                    "first accumulation_steps - 1 backward passes inside ddp_model.no_sync(), so they stay local and "
                    "only the last one communicates")
        if torch.allclose(actual, k * expected.to(actual.dtype), rtol=1e-3, atol=1e-6):
            return (f"the micro-batch gradient is {k} times too large: divide each micro-batch loss by "
                    f"accumulation_steps ({k}) before backward")
        return None

    return named


@pytest.mark.points(1)
@pytest.mark.timeout_s(60)
@pytest.mark.visibility("message-only")
def test_failing_rank_fails_the_call(student, dt):
    """When one rank fails (rank 1 gets weights that do not fit), train_data_parallel raises promptly"""
    spec = dt.trainings.spec("plain")
    broken = [dict(state) for state in spec.config["initial_states"]]
    broken[-1]["inp.weight"] = torch.zeros(3, 3)  # load_state_dict fails on the last rank only
    with pytest.raises(StudentCodeError) as err:
        student.train_data_parallel(dict(spec.config, initial_states=broken))
        pytest.fail("train_data_parallel() returned although a rank failed: the launcher must raise when a rank "
                    "fails (torch.multiprocessing.start_processes(join=True) does, and stops the other ranks)")
    if err.value.exc_type == "NotImplementedError":
        raise AssertionError("train_data_parallel() is not implemented yet")
