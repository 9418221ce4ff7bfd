"""Grading wall time per exercise, split into sandbox start, worker start-up and checks.

    python benchmarks/grading_time.py [--sandbox bwrap] [--repeat 3] [EXERCISE ...]

Grades each exercise's reference solution (the worst case: every check runs to the end) and prints
the median of each phase.  Also prints how long `grader --help` takes (it must not import torch).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader import api
from grader.config import Settings


def help_time() -> float:
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "grader", "--help"], check=True, capture_output=True)
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exercises", nargs="*")
    parser.add_argument("--sandbox", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    registries = api.load()
    ids = args.exercises or [e.id for e in registries.exercises.ordered() if e.reference_dir]
    print(f"grader --help: {help_time() * 1000:.0f} ms (median of 5)")
    header = (f"{'exercise':<22} {'sandbox':<8} {'sandbox start':>13} {'worker start':>12} {'checks':>8} "
              f"{'total':>8}  score")
    print(header)
    print("-" * len(header))
    with tempfile.TemporaryDirectory() as work:
        settings = Settings.load({"sandbox": args.sandbox, "work_dir": Path(work)})
        for ex_id in ids:
            exercise = registries.exercises.get(ex_id)
            rows = []
            for _ in range(args.repeat):
                result = api.grade(registries, ex_id, exercise.reference_dir, settings)
                rows.append(result)
            med = {k: statistics.median(r.phases.get(k, 0.0) for r in rows)
                   for k in ("sandbox_start_s", "worker_startup_s", "checks_s", "total_s")}
            last = rows[-1]
            print(f"{ex_id:<22} {last.provenance['sandbox']:<8} {med['sandbox_start_s']:>12.3f}s "
                  f"{med['worker_startup_s']:>11.3f}s {med['checks_s']:>7.2f}s {med['total_s']:>7.2f}s  "
                  f"{last.score:g}/{last.max_score:g}")
    print("total = whole grade including the trusted runner's start (python, pytest, torch import).")


if __name__ == "__main__":
    main()
