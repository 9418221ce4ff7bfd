"""The trusted check runner: ``python -m grader.checks.runner CONFIG.json``.

One runner process grades one submission for one exercise: it runs the exercise's checks under
pytest with :class:`grader.checks.checking.GraderPlugin`, and the checks reach the student's code only
through a sandboxed worker.  The parent grader process watches this runner with a hard deadline
and reads its JSON-lines results; a runner that dies is a grader error, never a pass.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from grader.checks.checking import GraderPlugin
from grader.checks.runner_config import RunnerConfig
from grader.plugins import Registries, make_plugin_manager
from grader.sandbox import Limits, WorkerSpec, install_worker, templates
from grader.sandbox.remote import WorkerSession


def _spec_factory(cfg: RunnerConfig) -> Any:
    job = Path(cfg.job_dir)
    worker_dir = install_worker(job / "worker")
    files = job_files_dir(job)
    counter = [0]

    def make() -> WorkerSpec:
        counter[0] += 1
        scratch = job / f"scratch-{counter[0]}"
        scratch.mkdir(mode=0o700)
        return WorkerSpec(
            job_id=cfg.job_id,
            submission_dir=Path(cfg.submission_dir),
            scratch_dir=scratch,
            worker_dir=worker_dir,
            limits=Limits(**cfg.limits),
            secret_paths=tuple(Path(p) for p in cfg.secret_paths),
            readonly_paths=tuple(Path(p) for p in cfg.readonly_paths),
            device=cfg.device,
            files_dir=files,
        )

    return make


def job_files_dir(job: Path) -> Path:
    """The job's hand-over folder: ``in/`` (the checks write, the student reads) and ``shared/`` (both write)."""
    files = job / "files"
    (files / "in").mkdir(parents=True, mode=0o755)
    (files / "shared").mkdir(mode=0o755)
    os.chmod(files, 0o755)
    # the worker runs as a uid of the job's own: the shared folder is its to write (the job folder is 0711)
    os.chmod(files / "shared", 0o1777)
    return files


def _limit_threads(threads: int) -> None:
    """The checks' own torch work (the reference side) keeps to the job's share of the cores too: a cold
    runner has not imported torch yet and reads the variable when it does; a warm fork has imported it but
    made no thread pool, so setting the count there is safe."""
    threads = max(1, int(threads))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


def run(cfg: RunnerConfig) -> int:
    _limit_threads(cfg.limits.get("threads", 1))
    session = None
    if not cfg.load_problem:
        registries = Registries.collect(make_plugin_manager())
        # forked from a warm server with a worker template for this job: its workers are forked from that
        sandbox = templates.wrap(registries.sandboxes.get(cfg.sandbox))
        session = WorkerSession(sandbox, _spec_factory(cfg), float(cfg.import_timeout_s))
        if cfg.prestart_worker:  # its cold start (python, torch, solution.py's imports) overlaps the collection
            session.prestart()
    plugin = GraderPlugin(cfg, session)
    # helper modules next to the checks (checks/helpers.py) are importable by the check files
    sys.path.insert(0, cfg.checks_dir)
    args = [
        *cfg.paths,
        "-q", "--no-header", "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:timeout",
        # its end-of-session garbage collection (for unraisable-exception warnings no verdict reads) walks the
        # whole heap, torch's included: tenths of a second per job
        "-p", "no:unraisableexception",
        "--import-mode=importlib", "--rootdir", cfg.checks_dir, "-c", os.devnull,
        "-W", "ignore::DeprecationWarning",
    ]
    if cfg.select:
        args += ["-k", cfg.select]
    try:
        code = pytest.main(args, plugins=[plugin])
    finally:
        if session is not None:
            session.close()
    return int(code)


def die_with_parent(parent: int) -> None:
    """Have the kernel kill this runner when the grader that started it dies (a server killed with SIGKILL):
    nobody would read its results, and its sandbox dies with it (bwrap --die-with-parent)."""
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(70)


def entry(cfg_path: Path) -> int:
    """Grade the job ``cfg_path`` describes; the runner's exit code (a cold ``python -m`` or a warm fork)."""
    code = run(RunnerConfig.read(cfg_path))
    # pytest exit codes 0/1 both mean "checks ran"; anything else is the runner's own failure
    return 0 if code in (0, 1) else 10 + code


def main() -> None:
    sys.dont_write_bytecode = True
    die_with_parent(int(os.environ.get("GRADER_PARENT_PID", "0") or 0))
    sys.exit(entry(Path(sys.argv[1])))


if __name__ == "__main__":
    main()
