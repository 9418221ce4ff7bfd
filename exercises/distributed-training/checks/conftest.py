"""Fixtures for the distributed-training checks (trusted side), given to checks as ``dt``.

Two trainings are asked of the student's ``train_data_parallel`` and shared by the checks that read them
(each runs once per grading; a failure is reported by every check that needs it):

* ``plain``: 2 ranks, 2 epochs of 2 steps, 4 samples per rank per step, no accumulation;
* ``accumulate``: 3 ranks, 2 steps of 2 micro-batches of 2 samples per rank (``no_sync`` accumulation).

Rendezvous: every call gets a fresh ``init_file`` name, relative to the worker's working folder (the
sandbox's private scratch folder), for a ``file://`` init_method; gloo then picks ephemeral loopback ports.
Nothing is shared between jobs running in parallel (bwrap and docker also give each job its own network
namespace). The ``gpu`` profile swaps in the nccl backend on CUDA devices.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from helpers import RunSpec, check_reports, global_batches, make_run, single_process

from grader.testing import StudentCodeError, StudentError, WorkerTimeout, load_module, tolerance

NETWORK_ERRORS = ("Network is unreachable", "Unable to find interface", "Unable to resolve",
                  "Cannot assign requested address")


# hidden/mistakes.py replays classic mistakes; it is itself a trainer, so student packs leave it out.
MISTAKES = load_module(Path(__file__).parent / "hidden" / "mistakes.py", "distributed_training_mistakes", optional=True)


class Run(SimpleNamespace):
    """A finished training: ``spec``, the student's ``reports`` (normalised), the single-process states ``expected``."""

    spec: RunSpec
    reports: list[dict[str, Any]]
    expected: list[dict[str, torch.Tensor]]

    def weights_before(self, rank: int, step: int) -> dict[str, torch.Tensor]:
        """The weights rank ``rank`` held for ``step``: rank 0's start (after the broadcast), then its own.

        Gradients and losses are judged at these, so one mistake does not fail every later check.
        """
        if step == 0:
            return self.spec.config["initial_states"][0]
        return self.reports[rank]["params"][step - 1]

    def global_batch(self, step: int) -> list[int]:
        return [i for rep in self.reports for micro in rep["indices"][step] for i in micro]


def _explain(exc: StudentError) -> StudentError:
    """Lead with the rank's own error: torch puts it at the end of a multi-line ProcessRaisedException."""
    if isinstance(exc, WorkerTimeout):
        return WorkerTimeout(
            f"{exc.message}: a rank hung (is every rank reaching the same collectives? at the end, drop the DDP "
            "model before destroy_process_group(), see the stub)", exc.detail)
    if not isinstance(exc, StudentCodeError):
        return exc
    text = f"{exc.message}\n{exc.detail}"
    if any(sign in text for sign in NETWORK_ERRORS):
        return StudentCodeError(
            "the ranks could not connect over the loopback interface (gloo needs it): init_process_group with "
            "init_method='file://' + an absolute path; if this sandbox has its loopback down (the process "
            "sandbox inside unshare), grade with the bwrap sandbox", text, exc.exc_type)
    lines = [line.strip() for line in exc.message.splitlines() if line.strip()]
    if exc.exc_type == "ProcessRaisedException" and lines:
        return StudentCodeError(f"a rank failed in train_data_parallel(): {lines[-1]}", text, exc.exc_type)
    return exc


class Trainings:
    """Runs each named training once per grading and remembers its outcome (a result or the failure)."""

    def __init__(self, seed: int, targets: Any) -> None:
        self.seed = seed
        self.targets = targets
        self.done: dict[str, Run | BaseException] = {}

    def spec(self, name: str) -> RunSpec:
        t = self.targets
        shapes = {
            "plain": {"world_size": int(t.get("plain_world_size", 2)), "epochs": 2, "batch_size": 4,
                      "accumulation_steps": 1},
            "accumulate": {"world_size": int(t.get("accumulate_world_size", 3)), "epochs": 1, "batch_size": 2,
                           "accumulation_steps": 2},
        }[name]
        per_step = shapes["world_size"] * shapes["batch_size"] * shapes["accumulation_steps"]
        return make_run(name, num_samples=2 * per_step, seed=self.seed + len(name),
                        backend=str(t.get("backend", "gloo")), device=str(t.get("device", "cpu")),
                        init_file=f"rendezvous-{name}-{uuid.uuid4().hex[:10]}", **shapes)

    def get(self, student: Any, name: str) -> Run:
        if name not in self.done:
            spec = self.spec(name)
            try:
                raw = student.train_data_parallel(spec.config)
                reports = check_reports(raw, spec)
                expected = single_process(spec, global_batches(reports))
                self.done[name] = Run(spec=spec, reports=reports, expected=expected)
            except StudentError as exc:
                self.done[name] = _explain(exc)
            except AssertionError as exc:
                self.done[name] = exc
        outcome = self.done[name]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


@pytest.fixture(scope="session")
def trainings(seed: int, targets: Any) -> Trainings:
    return Trainings(seed, targets)


def diagnose(run: Run, tol: dict[str, float]) -> str | None:
    if MISTAKES is None:
        return None
    return MISTAKES.diagnose(run.spec, run.reports, tol["rtol"], tol["atol"])


@pytest.fixture
def dt(trainings: Trainings, targets: Any) -> SimpleNamespace:
    """Helpers for the distributed-training checks."""
    return SimpleNamespace(trainings=trainings, tol=tolerance(targets, torch.float32), diagnose=diagnose)
