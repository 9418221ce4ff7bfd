"""Batch throughput with 1 and 2 (or more) workers, and class report render time for 1,000 submissions.

    python benchmarks/batch_throughput.py [--students 32] [--workers 1 2] [--modes cold warm]
                                          [--report-students 1000] [--exercise self-attention]

Grades, cold (every job starts its runner) and warm (runners forked from fork servers, the default; see
docs/speed.md), a generated class (the test fixtures' ``sample-add`` and ``hostile-target`` exercises: a mix
of correct, wrong, broken and hostile work) into a fresh folder per worker count, and prints jobs
per minute.  With ``--exercise EX`` the class hands in one installed exercise instead: every fourth student
its untouched stub, the others its reference (the checks' full compute).  Then renders the class report for
synthetic results of ``--report-students`` students (three exercises of six checks each) and prints how long
gathering and rendering took.

Targets (checked by hand, not in timed unit tests): 2 workers grade more jobs per minute than 1 (each
job is already two busy processes, runner and sandboxed worker, so on 2 cores expect 1.2-1.5x; more
cores scale further); the 1,000-student report is gathered and rendered in under 5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the generated class lives with the test fixtures
from fixtures.class_roster import make_class  # noqa: E402


def one_exercise_class(root: Path, exercise_id: str, students: int) -> None:
    """``students`` students handing in ``exercise_id``: its stub from every fourth, its reference from the rest."""
    from grader import api

    exercise = api.load().exercises.get(exercise_id)
    if exercise.reference_dir is None:
        raise SystemExit(f"{exercise_id}: its reference is not installed here")
    for i in range(students):
        source = exercise.stub_dir if i % 4 == 3 else exercise.reference_dir
        shutil.copytree(source, root / f"student{i:02d}" / exercise_id,
                        ignore=shutil.ignore_patterns("__pycache__"))


def throughput(students: int, workers: int, sample: int, warm: bool, exercise: str | None) -> tuple[int, float]:
    from grader import api
    from grader.batch.run import run_batch
    from grader.config import Settings

    with tempfile.TemporaryDirectory(prefix="grader-bench-") as tmp:
        root = Path(tmp)
        if exercise:
            one_exercise_class(root / "roster", exercise, students)
        else:
            course = make_class.make_course(root / "course")
            make_class.make_class(root / "roster", students=students, sample=sample)
            os.environ["GRADER_EXERCISES"] = str(course)
        registries = api.load()
        settings = Settings.load({"work_dir": root / "jobs", "warm": warm}, cwd=root)
        t0 = time.perf_counter()
        summary = run_batch(registries, root / "roster", root / "out", settings, workers=workers)
        return summary.graded + summary.failed, time.perf_counter() - t0


def report_time(students: int) -> tuple[float, float, int]:
    from grader.gradebook import Gradebook
    from grader.reports.class_report import class_data, render

    with tempfile.TemporaryDirectory(prefix="grader-bench-") as tmp:
        out = Path(tmp) / "out"
        make_class.synthetic_results(out, students=students)
        t0 = time.perf_counter()
        with Gradebook.open(out) as gb:
            rows = gb.grades()
        data = class_data(rows, out, out)
        t1 = time.perf_counter()
        html = render(data)
        t2 = time.perf_counter()
        return t1 - t0, t2 - t1, len(html)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=32)
    parser.add_argument("--sample", type=int, default=6, help="how many students hand in the torch exercise")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--modes", nargs="+", choices=["cold", "warm"], default=["cold", "warm"])
    parser.add_argument("--report-students", type=int, default=1000)
    parser.add_argument("--exercise", help="a class handing in this installed exercise (e.g. self-attention)")
    args = parser.parse_args()
    print(f"cpu cores: {os.cpu_count()}")
    first = None
    for mode in args.modes:
        base = None
        for workers in args.workers:
            jobs, seconds = throughput(args.students, workers, args.sample, mode == "warm", args.exercise)
            rate = jobs / seconds * 60
            base, first = base or rate, first or rate
            print(f"batch {mode}, {workers} worker(s): {jobs} jobs in {seconds:.1f} s = {rate:.1f} jobs/min "
                  f"(scaling {rate / base / workers:.2f}x linear; {rate / first:.2f}x the first line)", flush=True)
    gather, render_s, size = report_time(args.report_students)
    print(f"class report, {args.report_students} students x 3 exercises: gather {gather:.2f} s, "
          f"render {render_s:.2f} s, {size / 1e6:.1f} MB of HTML")


if __name__ == "__main__":
    main()
