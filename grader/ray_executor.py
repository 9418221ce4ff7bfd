"""Running batch jobs as Ray tasks on a cluster: same jobs, same gradebook, same output files.

Each job is one task (``num_cpus=1``; ``num_gpus=1`` for an exercise that needs a GPU, when the
cluster has any) that grades with :func:`grader.batch.run_job_json`.  Jobs and outcomes cross as JSON
strings.  Workers must see the roster and the output folder at the same paths (one machine, or a
shared filesystem) and have grader installed in the same environment.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from grader.batch import Job, Outcome, run_job_json, settings_dict, with_gpus
from grader.config import Settings
from grader.errors import GraderError
from grader.gradebook import now


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise GraderError("the ray executor needs Ray: pip install 'grader[ray]' (or pip install ray)") from None
    return ray


@dataclass
class RayExecutor:
    """Submits every job to the Ray cluster at ``address`` and yields outcomes as tasks finish."""

    address: str
    settings: Settings
    name: str = "ray"
    tick: Callable[[], None] = field(default=lambda: None)

    def _connect(self, ray: Any) -> None:
        try:
            ray.init(address=self.address, log_to_driver=False, logging_level=logging.WARNING,
                     namespace="grader")
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise GraderError(f"cannot reach a Ray cluster at {self.address!r}: {exc} "
                              "(start one with `ray start --head`)") from None

    def run(self, jobs: list[Job], out_root: Path) -> Iterator[tuple[Job, Outcome]]:
        ray = _ray()
        self._connect(ray)
        try:
            jobs = with_gpus(jobs, float(ray.cluster_resources().get("GPU", 0.0)))
            task = ray.remote(run_job_json)
            settings = settings_dict(self.settings)
            refs = {}
            for job in jobs:
                payload = json.dumps({"job": asdict(job), "settings": settings, "out_root": str(out_root)})
                ref = task.options(num_cpus=1, num_gpus=job.gpus, max_retries=0, name=f"grade {job.label}").remote(
                    payload)
                refs[ref] = job
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
                self.tick()
                for ref in ready:
                    job = refs.pop(ref)
                    yield job, self._outcome(ray, ref)
        finally:
            ray.shutdown()

    @staticmethod
    def _outcome(ray: Any, ref: Any) -> Outcome:
        try:
            return Outcome(**json.loads(ray.get(ref)))
        except ray.exceptions.RayError as exc:  # the task or its worker died: our failure, retried next run
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return Outcome(status="grader_error", started_at=now(), finished_at=now(),
                           error=f"ray task failed: {first}")
