"""Cold against warm trusted runners (grader.checks.warm): wall time and CPU per job, on this machine, in one run.

    python benchmarks/warm_runners.py [--repeat 4] [--sandbox bwrap] [EXERCISE ...]

Each (exercise, mode) grades the exercise's reference ``--repeat`` times in a child process of its own, so
the CPU of everything it started (runners, fork server, sandboxed workers) is counted when it is reaped.
Modes alternate per exercise (cold, warm, cold, warm ...) so a busy machine weighs on both alike. The warm
figure includes starting the fork server once; the saving per job is what every further job saves.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT = ["sample-softmax", "self-attention", "positional-encodings"]


def child(exercise: str, mode: str, repeat: int, sandbox: str | None) -> None:
    from grader import api
    from grader.checks import warm
    from grader.config import Settings

    registries = api.load()
    ex = registries.exercises.get(exercise)
    with tempfile.TemporaryDirectory() as work:
        settings = Settings.load({"work_dir": Path(work), "sandbox": sandbox})
        scores = []
        with warm.pool(1, enabled=mode == "warm"):
            for _ in range(repeat):
                result = api.grade(registries, exercise, ex.reference_dir or ex.stub_dir, settings)
                scores.append(result.score)
    print(json.dumps({"scores": scores}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exercises", nargs="*")
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--sandbox", default=None)
    parser.add_argument("--child", nargs=3, metavar=("EXERCISE", "MODE", "REPEAT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], int(args.child[2]), args.sandbox)
        return
    import resource

    print(f"{'exercise':<24} {'mode':<5} {'wall/job':>9} {'cpu/job':>9}  scores")
    for exercise in args.exercises or DEFAULT:
        figures = {}
        for mode in ("cold", "warm"):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            out = subprocess.run([sys.executable, __file__, "--child", exercise, mode, str(args.repeat),
                                  *(["--sandbox", args.sandbox] if args.sandbox else [])],
                                 capture_output=True, text=True, check=True).stdout
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            wall = (time.perf_counter() - started) / args.repeat
            cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / args.repeat
            figures[mode] = (wall, cpu)
            scores = json.loads(out.strip().splitlines()[-1])["scores"]
            print(f"{exercise:<24} {mode:<5} {wall:8.2f}s {cpu:8.2f}s  {scores}")
        saved = figures["cold"][1] - figures["warm"][1]
        print(f"{'':<24} warm saves {saved:.2f} s of CPU per job ({saved / figures['cold'][1]:.0%}), "
              f"wall x{figures['warm'][0] / figures['cold'][0]:.2f}")


if __name__ == "__main__":
    main()
