"""Data-parallel training across processes: rendezvous, broadcast, all-reduce, sharded sampling, no_sync.

Follows PyTorch's "Distributed Data Parallel" design note (https://pytorch.org/docs/stable/notes/ddp.html),
the DistributedDataParallel and DistributedSampler pages, and Li et al. 2020, "PyTorch Distributed:
Experiences on Accelerating Data Parallel Training" (https://arxiv.org/abs/2006.15704).

Data parallelism runs one copy of the model in each of ``world_size`` processes (the ranks). Each rank
trains on its own shard of every batch; after each backward pass the ranks AVERAGE their gradients
(an all-reduce), so every rank takes the same optimizer step and all copies stay identical. Done right,
W ranks that each see B samples compute exactly what one process computes on the whole batch of W*B:

    grad of mean-loss(global batch) = (1/W) * sum over ranks of grad of mean-loss(rank's shard)

The checks prove this numerically: after every step your ranks' parameters must equal a single-process
run on the whole batch, computed by the grader.

What must be right (each is a check):
  * RENDEZVOUS. Start the ranks with ``torch.distributed.init_process_group(backend, init_method=
    "file://" + os.path.abspath(config["init_file"]), rank=rank, world_size=world_size)``. The grader
    hands every call a fresh file name in your working folder (the sandbox's scratch folder): a fixed
    TCP port or a reused file would collide when two trainings run at once. Destroy the group at the end.
  * SAME START. Ranks are seeded differently, as real launches are: rank r starts from
    ``config["initial_states"][r]``. Before the first step every rank must hold rank 0's weights -- all
    parameters, frozen ones included. DistributedDataParallel broadcasts them when it wraps the model;
    a hand-written wrapper must ``dist.broadcast`` every parameter (and buffer) from rank 0.
  * AVERAGED, NOT SUMMED. ``dist.all_reduce`` sums; divide by the world size (DDP does).
  * SHARDS. :func:`shard_indices` gives each rank a disjoint part of a permutation of the data, reshuffled
    every epoch (``DistributedSampler.set_epoch``) with a seed shared by all ranks. Train on exactly the
    indices it returns.
  * FROZEN AND TIED PARAMETERS. :class:`TiedNet` has a weight shared by two layers (``mid.weight`` IS
    ``inp.weight``) and two frozen parameters (``requires_grad=False``) that must never change.
    ``model.parameters()`` lists the shared weight once: reduce it once, step it once.
  * GRADIENT ACCUMULATION WITH no_sync. With ``accumulation_steps = k > 1`` each optimizer step runs k
    micro-batches; the first k-1 backward passes run inside ``ddp_model.no_sync()`` (no communication:
    gradients stay local), the k-th synchronises the accumulated gradients. Divide each micro-batch loss
    by k, so the result equals one big batch of W*k*B samples.

The sandbox (what your processes may use):
  * several processes: start them with ``torch.multiprocessing.start_processes(fn, args, nprocs,
    start_method="fork")`` (or ``mp.spawn``). "fork" starts a rank in milliseconds because it inherits
    the imported torch; "spawn" re-imports torch in every rank (seconds). Use "spawn" when the device
    is "cuda" (CUDA cannot be forked).
  * no network but the loopback interface, which gloo uses; nothing else to configure.
  * ``/dev/shm`` is NOT writable: multiprocessing queues, locks, pools and tensors passed through them
    fail with PermissionError. Pass data and results through files in the working folder
    (``torch.save`` / ``torch.load``): the parent writes the config, each rank writes its report.
  * Constructing DistributedDataParallel imports ``torch._dynamo`` (seconds): ``import torch._dynamo``
    once in the parent before forking, and every rank inherits it.
  * a rank that fails must make the whole call fail, promptly: ``start_processes(join=True)`` stops the
    other ranks and raises. (With plain ``multiprocessing.Process`` + ``join()`` the surviving ranks wait
    for the dead one inside a collective until gloo's timeout, 30 minutes by default.)
  * at the end of a rank, drop the DDP model BEFORE ``dist.destroy_process_group()`` (``ddp_model = None;
    gc.collect()``): freeing DDP last makes its reducer join gloo's thread while holding the GIL, a
    deadlock that hangs a rank at exit in a few percent of runs.
  * only plain data crosses back to the grader: CPU tensors, lists, dicts, ints, floats, str.

The config :func:`train_data_parallel` receives (plain data):

    world_size          int, number of ranks (2 or 3 in the checks)
    init_file           str, a file name (relative to the working folder) that does not exist yet
    backend             "gloo" (CPU) or "nccl" (GPU profile)
    device              "cpu" or "cuda" (rank r uses cuda:r)
    inputs              float32 tensor (N, 6);  targets  float32 tensor (N, 2)
    initial_states      list of world_size state dicts of TiedNet; rank r loads initial_states[r]
    epochs              int
    batch_size          int, samples per rank per micro-batch (B)
    accumulation_steps  int, micro-batches per optimizer step (k >= 1)
    lr, momentum, weight_decay    floats: torch.optim.SGD(model.parameters(), lr, momentum, weight_decay)
    seed                int, the sampler's seed (shared by all ranks)

The training loop, on every rank r:

    for epoch in range(epochs):
        shard = shard_indices(N, world_size, r, epoch, seed)
        steps = len(shard) // (batch_size * k)                    # leftover indices are not used
        for s in range(steps):
            chunk = shard[s*B*k : (s+1)*B*k]                       # this step's indices, k micro-batches of B
            for j in range(k):
                micro = chunk[j*B : (j+1)*B]
                loss = F.mse_loss(model(inputs[micro]), targets[micro])      # mean over the micro-batch
                (loss / k).backward()                              # inside no_sync() unless j == k-1
                record micro, loss.item() and every trainable parameter's .grad (a clone)
            optimizer.step(); optimizer.zero_grad()
            record model.state_dict() (clones)

The report of each rank (what :func:`train_data_parallel` returns, one per rank, in rank order):

    {"rank": r, "pid": os.getpid(),
     "indices": [[micro-batch indices, k lists of B ints] for each optimizer step],
     "losses":  [[loss.item() of each micro-batch, before dividing by k] for each step],
     "grads":   [[{name: grad} after each micro-batch's backward] for each step],
     "params":  [{name: tensor} = model.state_dict() after each optimizer step]}

Names are those of the plain TiedNet (``ddp_model.module``): "inp.weight", "out.bias", ...; "grads"
holds the parameters that require grad, "params" the whole state dict. Clone every tensor you record
(``.detach().cpu().clone()``): backward accumulates into ``.grad`` in place.

Tolerances: parameters and gradients are compared with the grader's single-process run within
rtol=1e-4, atol=1e-5 (float32).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

FEATURES = 6
OUTPUTS = 2


class TiedNet(nn.Module):
    """The model every rank trains (given: do not change it; the grader builds the same one).

    ``inp`` and ``mid`` share one weight matrix (weight tying, as language models tie their input and
    output embeddings); ``out.bias`` and ``gain`` are frozen (``requires_grad=False``): they are
    broadcast like every parameter but never trained.
    """

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(FEATURES, FEATURES)
        self.mid = nn.Linear(FEATURES, FEATURES)
        self.mid.weight = self.inp.weight  # tied: one Parameter used by two layers
        self.out = nn.Linear(FEATURES, OUTPUTS)
        self.out.bias.requires_grad_(False)  # frozen
        self.gain = nn.Parameter(torch.ones(FEATURES), requires_grad=False)  # frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(batch, 6) float32 -> (batch, 2)."""
        h = torch.tanh(self.inp(x))
        h = torch.tanh(self.mid(h)) * self.gain
        return self.out(h)


def shard_indices(num_samples: int, world_size: int, rank: int, epoch: int, seed: int) -> list[int]:
    """The dataset indices rank ``rank`` trains on in ``epoch``: what ``DistributedSampler`` yields.

    Any scheme is accepted that gives, for one (num_samples, world_size, epoch, seed):
      * every rank ceil(num_samples / world_size) indices (ints in [0, num_samples));
      * shards that together cover every index; disjoint when world_size divides num_samples; when it
        does not, pad by repeating indices from the start of the permutation (DistributedSampler,
        drop_last=False);
      * a permutation that depends only on (seed, epoch) -- never on the rank -- so the ranks agree, and
        that changes from one epoch to the next (``set_epoch``); the same call twice gives the same list.

    The simplest correct answer: ``DistributedSampler(range(num_samples), num_replicas=world_size,
    rank=rank, shuffle=True, seed=seed)``, then ``set_epoch(epoch)``, then ``list(sampler)``.

    Raise ValueError when world_size < 1, or rank is not in [0, world_size), or num_samples < 1.
    """
    raise NotImplementedError


def train_data_parallel(config: dict[str, Any]) -> list[dict[str, Any]]:
    """Train TiedNet on ``config["world_size"]`` processes at once; return each rank's report, in rank order.

    See the module docstring for the config, the loop and the report. This function runs in the parent
    process: it writes the config to a file, starts the ranks, waits for them (a rank that fails must
    make this call raise), and reads their reports back from files.
    """
    raise NotImplementedError
