"""The sampler: disjoint shards that cover the data, reshuffled every epoch with a seed all ranks share."""

import pytest

from grader.testing import expect_type

ADVICE = ("shuffle range(num_samples) with a generator seeded by seed + epoch (never the rank), then give rank r "
          "every world_size-th index starting at r, as DistributedSampler does")


def shards(student, num_samples, world_size, epoch, seed):
    out = []
    for rank in range(world_size):
        what = f"shard_indices({num_samples}, {world_size}, {rank}, epoch={epoch}, seed={seed})"
        got = student.shard_indices(num_samples, world_size, rank, epoch, seed)
        expect_type(got, (list, tuple), what)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in got):
            raise AssertionError(f"{what} should be a list of ints")
        out.append(list(got))
    return out


def expect_partition(parts, num_samples, world_size, where):
    per_rank = -(-num_samples // world_size)
    for rank, part in enumerate(parts):
        if len(part) != per_rank:
            raise AssertionError(f"{where}: rank {rank} got {len(part)} indices, expected ceil({num_samples}/"
                                 f"{world_size}) = {per_rank}; {ADVICE}")
        if any(not 0 <= i < num_samples for i in part):
            raise AssertionError(f"{where}: rank {rank} got indices outside [0, {num_samples})")
    seen = sorted(i for part in parts for i in part)
    if set(seen) != set(range(num_samples)):
        missing = sorted(set(range(num_samples)) - set(seen))
        raise AssertionError(f"{where}: the shards overlap and miss {len(missing)} indices (e.g. {missing[:4]}): "
                             f"every rank must shuffle with the same permutation; {ADVICE}")


@pytest.mark.points(1)
def test_shards_partition_the_dataset(student, seed):
    """Shards are disjoint, equally sized and cover every sample, for 2, 3 and 1 ranks"""
    for num_samples, world_size in ((16, 2), (12, 3), (9, 1), (20, 4)):
        parts = shards(student, num_samples, world_size, 0, seed % 1000)
        expect_partition(parts, num_samples, world_size, f"{num_samples} samples on {world_size} ranks")


@pytest.mark.points(1)
def test_shards_reshuffle_per_epoch(student, seed):
    """Every epoch draws a new permutation (set_epoch); the same (seed, epoch) gives the same shards"""
    num_samples, world_size, base = 16, 2, seed % 1000
    epochs = [shards(student, num_samples, world_size, epoch, base) for epoch in range(3)]
    for epoch, parts in enumerate(epochs):
        expect_partition(parts, num_samples, world_size, f"epoch {epoch}")
    for epoch in (1, 2):
        if epochs[epoch] == epochs[0]:
            raise AssertionError(f"epoch {epoch} gives the same shards as epoch 0: seed the permutation with "
                                 "seed + epoch (DistributedSampler.set_epoch(epoch)), so every epoch reshuffles")
    if shards(student, num_samples, world_size, 1, base) != epochs[1]:
        raise AssertionError("the same (num_samples, world_size, rank, epoch, seed) gave different shards on a "
                             "second call: draw the permutation from a torch.Generator seeded with seed + epoch, "
                             "not from the global RNG")
    if shards(student, num_samples, world_size, 0, base + 1) == epochs[0]:
        raise AssertionError("changing the seed does not change the shards: seed the permutation with seed + epoch")
