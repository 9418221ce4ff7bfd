"""Grading wall time per exercise, split into phases, cold against warm, with the overhead beyond the checks.

    python benchmarks/grading_time.py [--sandbox bwrap] [--repeat 1] [--modes cold check warm] [EXERCISE ...]

Grades each exercise's reference solution (the worst case: every check runs to the end) in each mode,
alternating modes per exercise so a busy machine weighs on both alike, and prints the median of each phase:

- ``cold``: what every job paid before warm runners: a runner started cold (python, pytest, torch, grader),
  and the sandboxed worker started only when a check first calls the student's code;
- ``check``: what ``grader check`` (one student, one job) pays: a cold runner, the worker started as it starts;
- ``warm``: the defaults of batches and the server: a runner forked from a warm fork server (started once,
  before the first exercise, and not counted) and, on bwrap as root, the worker forked from a warm template
  (elsewhere started as the runner starts). With ``--warmup`` (the default) an untimed grading of the same
  exercise goes first, so the template for its worker is started, as in a batch where it is started once for
  the whole class; ``--no-warmup`` counts that start in each exercise's first job.

``overhead`` is everything but the checks' own compute: total minus the time the checks ran, less what they
waited for their worker (staging, the runner's start, the worker's start not hidden, reading results).  The
last lines add the exercises up: the reference self-grade of the whole curriculum, graded one at a time, and
say whether every mode gave the same verdicts (each check's status, score and message). Also prints how long
``grader --help`` takes (it must not import torch).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader import api
from grader.checks import warm
from grader.config import Settings

PHASES = ("sandbox_start_s", "worker_startup_s", "worker_wait_s", "checks_s", "total_s")


def help_time() -> float:
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grader", "--help"], check=True, capture_output=True)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def grade_phases(registries: api.Registries, ex_id: str, settings: Settings, repeat: int
                 ) -> tuple[dict, str, list[tuple]]:
    exercise = registries.exercises.get(ex_id)
    rows = [api.grade(registries, ex_id, exercise.reference_dir, settings) for _ in range(repeat)]
    med = {k: statistics.median(r.phases.get(k, 0.0) for r in rows) for k in PHASES}
    med["overhead_s"] = med["total_s"] - med["checks_s"]
    verdicts = [(c.name, c.status.value, c.score, c.message) for r in rows for c in r.checks]
    return med, f"{rows[-1].score:g}/{rows[-1].max_score:g}", verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exercises", nargs="*")
    parser.add_argument("--sandbox", default=None)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--modes", nargs="+", choices=["cold", "check", "warm"], default=["cold", "check", "warm"])
    args = parser.parse_args()
    registries = api.load()
    ids = args.exercises or [e.id for e in registries.exercises.ordered() if e.reference_dir]
    print(f"grader --help: {help_time() * 1000:.0f} ms (median of 5)")
    header = (f"{'exercise':<24} {'mode':<5} {'sandbox':>8} {'worker':>8} {'waited':>8} {'checks':>8} {'total':>8} "
              f"{'overhead':>9}  score")
    print(header)
    print("-" * len(header))
    sums = {mode: dict.fromkeys(("checks_s", "total_s", "overhead_s"), 0.0) for mode in args.modes}
    differ: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        base = Settings.load({"sandbox": args.sandbox, "work_dir": Path(work)})
        modes = {"cold": dataclasses.replace(base, warm=False, prestart=False),
                 "check": dataclasses.replace(base, warm=False, prestart=True),
                 "warm": dataclasses.replace(base, warm=True, prestart=True)}
        servers = warm.RunnerPool(1)  # started by the first warm grading, below, and kept for all
        try:
            if "warm" in args.modes and not args.warmup:  # (with --warmup, each exercise's own warm-up starts it)
                with warm.activate(servers):
                    api.grade(registries, ids[0], registries.exercises.get(ids[0]).reference_dir, modes["warm"])
            for ex_id in ids:
                seen: dict[str, list[tuple]] = {}
                for mode in args.modes:
                    with warm.activate(servers) if mode == "warm" else contextlib.nullcontext():
                        if mode == "warm" and args.warmup:
                            api.grade(registries, ex_id, registries.exercises.get(ex_id).reference_dir, modes[mode])
                        med, score, seen[mode] = grade_phases(registries, ex_id, modes[mode], args.repeat)
                    first = next(iter(seen))
                    if seen[mode] != seen[first]:
                        changed = [a[0] for a, b in zip(seen[first], seen[mode], strict=False) if a != b]
                        differ.append(f"{ex_id} {first} vs {mode}: {', '.join(changed) or 'the checks run'}")
                    for key in sums[mode]:
                        sums[mode][key] += med[key]
                    print(f"{ex_id:<24} {mode:<5} {med['sandbox_start_s']:>7.2f}s {med['worker_startup_s']:>7.2f}s "
                          f"{med['worker_wait_s']:>7.2f}s {med['checks_s']:>7.2f}s {med['total_s']:>7.2f}s "
                          f"{med['overhead_s']:>8.2f}s  {score}", flush=True)
        finally:
            servers.close()
    print("-" * len(header))
    for mode, total in sums.items():
        print(f"{len(ids)} exercises, {mode}: {total['total_s']:.1f} s in all, of which checks "
              f"{total['checks_s']:.1f} s and overhead {total['overhead_s']:.1f} s "
              f"({total['overhead_s'] / len(ids):.2f} s per job)")
    if len(args.modes) > 1:
        print("verdicts (status, score, message of every check): " + (
            "identical in every mode" if not differ else "DIFFER: " + "; ".join(differ)))
    print("sandbox: starting the sandbox; worker: until it had imported solution.py; waited: how much of that the "
          "checks waited for.")


if __name__ == "__main__":
    main()
