"""Trusted-side pieces of the distributed-training checks: the model, the data, the single-process run.

The single-process run is what data parallelism must reproduce: one model, started from rank 0's weights,
trained on the WHOLE global batch of each step (every rank's micro-batches together), in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from grader.testing import expect_type

FEATURES = 6
OUTPUTS = 2
FROZEN = ("out.bias", "gain")
TIED = ("inp.weight", "mid.weight")
GRAD_ADVICE = ("the gradient is not the average over the ranks of their shards' gradients: after backward, "
               "all-reduce every trainable parameter's .grad (once each) and divide by the world size")


class TiedNet(nn.Module):
    """The exercise's model (the stub gives students the same one)."""

    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(FEATURES, FEATURES)
        self.mid = nn.Linear(FEATURES, FEATURES)
        self.mid.weight = self.inp.weight
        self.out = nn.Linear(FEATURES, OUTPUTS)
        self.out.bias.requires_grad_(False)
        self.gain = nn.Parameter(torch.ones(FEATURES), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.inp(x))
        h = torch.tanh(self.mid(h)) * self.gain
        return self.out(h)


STATE_SHAPES = {name: tuple(t.shape) for name, t in TiedNet().state_dict().items()}
TRAINABLE = tuple(n for n, p in TiedNet().named_parameters() if p.requires_grad)
#: the shared weight last: a mistake in its reduction alone is named as such once the others passed
CHECK_ORDER = tuple(sorted(TRAINABLE, key=lambda n: n == "inp.weight"))


@dataclass(frozen=True)
class RunSpec:
    """One training the checks ask for; ``config`` is what the student's train_data_parallel receives."""

    name: str
    world_size: int
    num_samples: int
    epochs: int
    batch_size: int
    accumulation_steps: int
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def steps_per_epoch(self) -> int:
        per_rank = math.ceil(self.num_samples / self.world_size)
        return per_rank // (self.batch_size * self.accumulation_steps)

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def make_initial_states(world_size: int, gen: torch.Generator) -> list[dict[str, torch.Tensor]]:
    """A different start for every rank (as if each seeded its RNG differently), frozen values included."""
    states = []
    for _ in range(world_size):
        with torch.random.fork_rng():
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            model = TiedNet()
        with torch.no_grad():
            model.gain.copy_(1.0 + 0.2 * torch.randn(FEATURES, generator=gen))
            model.out.bias.copy_(0.5 * torch.randn(OUTPUTS, generator=gen))
        states.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return states


def make_run(name: str, *, world_size: int, num_samples: int, epochs: int, batch_size: int,
             accumulation_steps: int, seed: int, backend: str, device: str, init_file: str) -> RunSpec:
    gen = torch.Generator().manual_seed(seed)
    inputs = torch.randn(num_samples, FEATURES, generator=gen)
    mixing = torch.randn(FEATURES, OUTPUTS, generator=gen)
    targets = torch.sin(inputs @ mixing) + 0.1 * torch.randn(num_samples, OUTPUTS, generator=gen)
    config = {
        "world_size": world_size, "init_file": init_file, "backend": backend, "device": device,
        "inputs": inputs, "targets": targets, "initial_states": make_initial_states(world_size, gen),
        "epochs": epochs, "batch_size": batch_size, "accumulation_steps": accumulation_steps,
        "lr": 0.2, "momentum": 0.9, "weight_decay": 0.01, "seed": int(torch.randint(0, 10_000, (1,), generator=gen)),
    }
    return RunSpec(name, world_size, num_samples, epochs, batch_size, accumulation_steps, config)


# -- the student's reports ------------------------------------------------------------------------------


def _tensors(value: Any, what: str, names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    expect_type(value, dict, what)
    out = {str(k).removeprefix("module."): v for k, v in value.items()}
    missing = [n for n in names if n not in out]
    if missing:
        raise AssertionError(f"{what} lacks {', '.join(missing)}: record the names of the plain TiedNet "
                             f"(ddp_model.module), got {sorted(out)[:8]}")
    for n in names:
        expect_type(out[n], torch.Tensor, f"{what}[{n!r}]")
        shape = STATE_SHAPES[n]
        if tuple(out[n].shape) != shape:
            raise AssertionError(f"{what}[{n!r}] has shape {tuple(out[n].shape)}, expected {shape}")
    return {n: out[n].detach().to(torch.float64) for n in names}


def check_reports(reports: Any, run: RunSpec) -> list[dict[str, Any]]:
    """Fail with advice unless ``reports`` has the documented shape; returns them normalised."""
    w, k, b = run.world_size, run.accumulation_steps, run.batch_size
    expect_type(reports, (list, tuple), "the value returned by train_data_parallel()")
    if len(reports) != w:
        raise AssertionError(f"train_data_parallel() returned {len(reports)} reports for world_size={w}: "
                             "return one report per rank, in rank order")
    out = []
    for r, rep in enumerate(reports):
        what = f"the report of rank {r}"
        expect_type(rep, dict, what)
        for key in ("rank", "pid", "indices", "losses", "grads", "params"):
            if key not in rep:
                raise AssertionError(f"{what} has no {key!r} key (it has {sorted(rep)})")
        if rep["rank"] != r:
            raise AssertionError(f"{what} says rank {rep['rank']!r}: return the reports in rank order")
        for key in ("indices", "losses", "grads", "params"):
            expect_type(rep[key], (list, tuple), f"{what}[{key!r}]")
            if len(rep[key]) != run.steps:
                raise AssertionError(
                    f"{what} has {len(rep[key])} entries under {key!r}, expected one per optimizer step: "
                    f"{run.steps} ({run.epochs} epoch(s) x {run.steps_per_epoch} steps, each rank taking "
                    f"ceil({run.num_samples}/{w}) samples per epoch in micro-batches of {b}, {k} per step)")
        indices, losses, grads = [], [], []
        for s in range(run.steps):
            where = f"{what}, step {s}"
            micro = rep["indices"][s]
            expect_type(micro, (list, tuple), f"{where}: indices")
            if len(micro) != k or any(not isinstance(m, (list, tuple)) or len(m) != b for m in micro):
                raise AssertionError(f"{where}: indices should be {k} micro-batch list(s) of {b} ints each")
            if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i < run.num_samples
                       for m in micro for i in m):
                raise AssertionError(f"{where}: indices must be ints in [0, {run.num_samples})")
            indices.append([list(m) for m in micro])
            ls, gs = rep["losses"][s], rep["grads"][s]
            expect_type(ls, (list, tuple), f"{where}: losses")
            expect_type(gs, (list, tuple), f"{where}: grads")
            if len(ls) != k or len(gs) != k:
                raise AssertionError(f"{where}: record one loss and one grads dict per micro-batch ({k})")
            for loss in ls:
                expect_type(loss, (float, int), f"{where}: a loss")
            losses.append([float(x) for x in ls])
            grads.append([_tensors(g, f"{where}: grads[{j}]", TRAINABLE) for j, g in enumerate(gs)])
        params = [_tensors(p, f"{what}, step {s}: params", tuple(STATE_SHAPES)) for s, p in enumerate(rep["params"])]
        out.append({"rank": r, "pid": rep["pid"], "indices": indices, "losses": losses, "grads": grads,
                    "params": params})
    return out


# -- the single-process run -----------------------------------------------------------------------------


def trusted_model(state: dict[str, torch.Tensor]) -> TiedNet:
    model = TiedNet().double()
    model.load_state_dict({k: v.to(torch.float64) for k, v in state.items()})
    return model


def loss_at(state: dict[str, torch.Tensor], run: RunSpec, idx: list[int]) -> float:
    x, y = run.config["inputs"].double(), run.config["targets"].double()
    with torch.no_grad():
        return float(F.mse_loss(trusted_model(state)(x[idx]), y[idx]))


def grad_at(state: dict[str, torch.Tensor], run: RunSpec, idx: list[int], scale: float = 1.0
            ) -> dict[str, torch.Tensor]:
    """Gradient of ``scale * mse(batch idx)`` at ``state``, by trainable parameter name."""
    x, y = run.config["inputs"].double(), run.config["targets"].double()
    model = trusted_model(state)
    (scale * F.mse_loss(model(x[idx]), y[idx])).backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def single_process(run: RunSpec, global_batches: list[list[int]]) -> list[dict[str, torch.Tensor]]:
    """One process trained on each step's whole global batch: its state_dict after every step."""
    cfg = run.config
    x, y = cfg["inputs"].double(), cfg["targets"].double()
    model = trusted_model(cfg["initial_states"][0])
    opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                          weight_decay=cfg["weight_decay"])
    after = []
    for batch in global_batches:
        F.mse_loss(model(x[batch]), y[batch]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        after.append({k: v.detach().clone() for k, v in model.state_dict().items()})
    return after


def global_batches(reports: list[dict[str, Any]]) -> list[list[int]]:
    """Each step's global batch: every rank's micro-batches of that step, together."""
    steps = len(reports[0]["indices"])
    return [[i for rep in reports for micro in rep["indices"][s] for i in micro] for s in range(steps)]


def gradient_mistake(world: int, local: torch.Tensor, fallback: Any = None) -> Any:
    """Names a summed gradient, or one never reduced (``local``: the rank's own shard's gradient).

    ``fallback()`` may name a mistake made elsewhere (ranks that never shared their starting weights...).
    """

    def named(actual: torch.Tensor, expected: torch.Tensor) -> str:
        ratio = float((actual * expected).sum() / (expected * expected).sum().clamp_min(1e-30))
        if abs(ratio - world) < 0.02 * world:
            return (f"the gradient is {world} times the average: all_reduce sums, divide by the world size "
                    f"({world}) (DistributedDataParallel averages for you)")
        if torch.allclose(actual, local.to(actual.dtype), rtol=1e-3, atol=1e-5):
            return ("the gradient is this rank's own shard's gradient: it was never all-reduced (does the forward "
                    "pass go through the DDP-wrapped model, not ddp_model.module?)")
        return (fallback() if fallback is not None else None) or GRAD_ADVICE

    return named


def tied_mistake(world: int) -> Any:
    """Names a wrong gradient of the shared weight when every other gradient is right."""

    def named(actual: torch.Tensor, expected: torch.Tensor) -> str:
        ratio = float((actual * expected).sum() / (expected * expected).sum().clamp_min(1e-30))
        return (f"only the shared weight's gradient is off ({ratio:.3g} times the average; the other parameters' "
                "are right): all-reduce each Parameter once (model.parameters() lists the tied weight once), then "
                f"divide by the world size ({world})")

    return named
