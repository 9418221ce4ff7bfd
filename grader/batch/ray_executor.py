"""Grading on a Ray cluster: the same jobs, gradebook and output files as on one machine.

Each job is one task (``num_cpus=1``; ``num_gpus=1`` for an exercise that needs a GPU, when the
cluster has any) that grades with :func:`grader.batch.jobs.run_job`.  Jobs and outcomes cross as JSON
strings.  Workers must see the roster and the output folder at the same paths (one machine, or a
shared filesystem) and have grader installed in the same environment.

A task whose worker or node dies (a node lost mid-batch) is run again by Ray on another node, up to
:data:`RETRIES` times; a grading is idempotent (it writes a private staging folder, then renames), so a
retried job is graded once in the gradebook.  Each Ray worker process keeps a warm fork server
(:mod:`grader.checks.warm`) for the jobs it runs after its first, so a node's warm runners are its workers'.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from grader.batch.jobs import Job, Outcome, run_job, settings_dict, with_gpus
from grader.config import Settings
from grader.errors import GraderError
from grader.gradebook import now

#: times Ray runs a task again whose worker process or node died (never for an error the grading reported)
RETRIES = 3
#: CPUs each grading task asks Ray for; its job runs torch on that many threads
TASK_CPUS = 1


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise GraderError("the ray executor needs Ray: pip install 'grader[ray]' (or pip install ray)") from None
    return ray


def run_ray_task(payload: str) -> str:
    """One job inside a Ray worker: warm runners kept for the worker's later jobs, one thread per CPU asked."""
    from grader.checks import warm
    from grader.engine.core import set_concurrent_jobs, usable_cores

    data = json.loads(payload)
    if data["settings"].get("warm", True) and warm.active() is None:
        warm.install(1)  # lives as long as this Ray worker process; its server dies with it
    set_concurrent_jobs(max(1, usable_cores() // TASK_CPUS))
    outcome = run_job(data)
    import ray

    node = ray.get_runtime_context().get_node_id() or ""
    return json.dumps(asdict(replace(outcome, worker=f"{socket.gethostname()} node {node[:8]}")))


@dataclass
class RayCluster:
    """A driver's connection to the cluster at ``address``: jobs in as tasks, outcomes out."""

    address: str
    settings: Settings
    gpus: float = 0.0
    cpus: float = 0.0
    _ray: Any = None
    _task: Any = None

    def connect(self) -> RayCluster:
        ray = self._ray = _ray()
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING, namespace="grader")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise GraderError(f"cannot reach a Ray cluster at {self.address!r}: {exc} "
                              "(start one with `ray start --head`)") from None
        resources = ray.cluster_resources()
        self.gpus, self.cpus = float(resources.get("GPU", 0.0)), float(resources.get("CPU", 0.0))
        self._task = ray.remote(run_ray_task)
        return self

    def submit(self, job: Job, out_root: Path, final: Path | None = None, keep: str | None = None) -> Any:
        """Start grading ``job`` (see :func:`grader.batch.jobs.run_job` for ``final`` and ``keep``)."""
        job = with_gpus([job], self.gpus)[0]
        payload = json.dumps({"job": asdict(job), "settings": settings_dict(self.settings), "out_root": str(out_root),
                              "final": str(final) if final else None, "keep": keep})
        return self._task.options(num_cpus=TASK_CPUS, num_gpus=job.gpus, max_retries=RETRIES,
                                  name=f"grade {job.label}").remote(payload)

    def ready(self, refs: list[Any], timeout: float) -> list[Any]:
        done, _ = self._ray.wait(refs, num_returns=1, timeout=timeout)
        return list(done)

    def outcome(self, ref: Any) -> Outcome:
        """The task's outcome; a task that failed past its retries is a grader_error (retried next run)."""
        try:
            return Outcome(**json.loads(self._ray.get(ref)))
        except self._ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Outcome(status="grader_error", started_at=now(), finished_at=now(),
                           error=f"ray task failed: {first}")

    def grade(self, job: Job, out_root: Path, final: Path | None = None, keep: str | None = None) -> Outcome:
        """Grade one job on the cluster and wait for it (a server's grading thread)."""
        return self.outcome(self.submit(job, out_root, final, keep))

    def close(self) -> None:
        if self._ray is not None:
            self._ray.shutdown()


@dataclass
class RayExecutor:
    """Submits every job to the Ray cluster at ``address`` and yields outcomes as tasks finish."""

    address: str
    settings: Settings
    name: str = "ray"

    def run(self, jobs: list[Job], out_root: Path, tick: Callable[[], None] = lambda: None
            ) -> Iterator[tuple[Job, Outcome]]:
        cluster = RayCluster(self.address, self.settings).connect()
        try:
            refs = {cluster.submit(job, out_root): job for job in jobs}
            while refs:
                ready = cluster.ready(list(refs), timeout=0.5)
                tick()
                for ref in ready:
                    yield refs.pop(ref), cluster.outcome(ref)
        finally:
            cluster.close()
