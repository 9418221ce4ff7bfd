"""grader similarity on a generated class: fingerprinting and comparing N submissions to one exercise.

    python benchmarks/similarity.py [--students 300] [--exercise self-attention] [--copies 0.1]

Each submission is the exercise's stub with one of the course's own solutions filled in (the reference,
its kept wrong and right solutions), its names changed per student as a copier would, so most pairs share
some code and a few (``--copies`` of the class) are near-verbatim copies of another student. The whole
path is timed: staging each submission from a folder as grading does, fingerprints, every pair.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def variants(exercise: str) -> list[str]:
    """The reference and every kept wrong and right solution of ``exercise`` (the code students write)."""
    from grader import api
    from grader.authoring import discrimination

    ex = api.load().exercises.get(exercise)
    folder = ROOT / "tests" / "curriculum" / exercise
    codes = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, solution in enumerate([*discrimination.wrong_solutions(folder),
                                      *discrimination.right_solutions(folder)]):
            made = solution.materialize(ex.reference_dir, Path(tmp) / str(n))
            codes.append((made / "solution.py" if made.is_dir() else made).read_text())
    return [(Path(ex.reference_dir) / "solution.py").read_text(), *codes]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=300)
    parser.add_argument("--exercise", default="self-attention")
    parser.add_argument("--copies", type=float, default=0.1, help="share of students who copy another's code")
    args = parser.parse_args()
    from grader import api
    from grader.batch.similarity import Submission, compare, stub_code, submission_code

    registries = api.load()
    stub = stub_code(registries, args.exercise)
    rng = random.Random(0)
    pool = variants(args.exercise)
    words = ["x", "y", "z", "tmp", "val", "out", "res", "arr", "t", "m"]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        codes: list[str] = []
        for i in range(args.students):
            if codes and rng.random() < args.copies:
                code = rng.choice(codes).replace("(", " (", 1)  # a copy with a cosmetic change
            else:
                code = rng.choice(pool)
                for name in ("scores", "weights", "mask", "output", "batch"):
                    code = code.replace(name, f"{name}_{rng.choice(words)}{i}")
            codes.append(code)
            (root / f"s{i:04d}").mkdir()
            (root / f"s{i:04d}" / "solution.py").write_text(stub + "\n\n" + code)
        started = time.perf_counter()
        subs = []
        for i in range(args.students):
            code, problem = submission_code(root / f"s{i:04d}", root / "work" / str(i))
            subs.append(Submission(f"s{i:04d}", code, problem))
        staged = time.perf_counter()
        pairs = compare(args.exercise, subs, stub)
        done = time.perf_counter()
    n = args.students
    print(f"{n} submissions to {args.exercise} ({len(pool)} distinct solutions, {args.copies:.0%} copies), "
          f"{n * (n - 1) // 2} pairs")
    print(f"  staging      {staged - started:6.2f} s")
    print(f"  comparing    {done - staged:6.2f} s   ({len(pairs)} pairs at or above the threshold)")
    print(f"  total        {done - started:6.2f} s   (target: under 60 s for 300)")
    sys.exit(0)


if __name__ == "__main__":
    main()
