"""Reference: data-parallel training with torch DistributedDataParallel, gloo, and a file rendezvous."""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import tempfile
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

FEATURES = 6
OUTPUTS = 2


class TiedNet(nn.Module):
    """The model every rank trains (given: do not change it; the grader builds the same one)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(FEATURES, FEATURES)
        self.mid = nn.Linear(FEATURES, FEATURES)
        self.mid.weight = self.inp.weight  # tied: one Parameter used by two layers
        self.out = nn.Linear(FEATURES, OUTPUTS)
        self.out.bias.requires_grad_(False)  # frozen
        self.gain = nn.Parameter(torch.ones(FEATURES), requires_grad=False)  # frozen

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(x))
        h = torch.tanh(self.mid(h)) * self.gain
        return self.out(h)


def shard_indices(num_samples: int, world_size: int, rank: int, epoch: int, seed: int) -> list[int]:
    if num_samples < 1 or world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"need num_samples >= 1, world_size >= 1 and 0 <= rank < world_size, got "
                         f"{num_samples}, {world_size}, {rank}")
    sampler = DistributedSampler(range(num_samples), num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    sampler.set_epoch(epoch)
    return [int(i) for i in sampler]


def _clone(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: t.detach().cpu().clone() for name, t in tensors.items()}


def _rank_main(rank: int, folder: str) -> None:
    cfg = torch.load(os.path.join(folder, "config.pt"))
    world, k, batch = cfg["world_size"], cfg["accumulation_steps"], cfg["batch_size"]
    device = torch.device(f"cuda:{rank}") if cfg["device"] == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(cfg["backend"], init_method="file://" + cfg["init_path"], rank=rank,
                            world_size=world, timeout=timedelta(seconds=120))
    ddp = None
    try:
        model = TiedNet().to(device)
        model.load_state_dict(cfg["initial_states"][rank])  # ranks start apart, as if seeded differently
        ddp = DistributedDataParallel(model, device_ids=[rank] if device.type == "cuda" else None)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                                    weight_decay=cfg["weight_decay"])
        inputs, targets = cfg["inputs"].to(device), cfg["targets"].to(device)
        report: dict[str, Any] = {"rank": rank, "pid": os.getpid(), "indices": [], "losses": [], "grads": [],
                                  "params": []}
        for epoch in range(cfg["epochs"]):
            shard = shard_indices(len(inputs), world, rank, epoch, cfg["seed"])
            for s in range(len(shard) // (batch * k)):
                chunk = shard[s * batch * k:(s + 1) * batch * k]
                step_idx, step_loss, step_grads = [], [], []
                for j in range(k):
                    micro = chunk[j * batch:(j + 1) * batch]
                    sync = contextlib.nullcontext() if j == k - 1 else ddp.no_sync()
                    with sync:
                        loss = F.mse_loss(ddp(inputs[micro]), targets[micro])
                        (loss / k).backward()
                    step_idx.append(list(micro))
                    step_loss.append(float(loss.item()))
                    step_grads.append(_clone({n: p.grad for n, p in model.named_parameters() if p.requires_grad}))
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                report["indices"].append(step_idx)
                report["losses"].append(step_loss)
                report["grads"].append(step_grads)
                report["params"].append(_clone(model.state_dict()))
        torch.save(report, os.path.join(folder, f"rank{rank}.pt"))
    finally:
        # free DDP before the group: its reducer's destructor would join gloo's worker thread while holding the
        # GIL, and that thread may need the GIL to free its last work item (a rank then hangs at exit)
        ddp = None
        gc.collect()
        dist.destroy_process_group()


def train_data_parallel(config: dict[str, Any]) -> list[dict[str, Any]]:
    world = int(config["world_size"])
    folder = tempfile.mkdtemp(prefix="ddp-", dir=os.getcwd())
    cfg = dict(config, init_path=os.path.abspath(config["init_file"]))
    torch.save(cfg, os.path.join(folder, "config.pt"))
    cuda = config.get("device", "cpu") == "cuda"
    if not cuda:  # DDP imports torch._dynamo when it wraps a model: import it once here, not in every rank
        importlib.import_module("torch._dynamo")
    mp.start_processes(_rank_main, args=(folder,), nprocs=world, join=True,
                       start_method="spawn" if cuda else "fork")
    return [torch.load(os.path.join(folder, f"rank{r}.pt")) for r in range(world)]
