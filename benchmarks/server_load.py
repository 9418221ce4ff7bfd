"""Load test of the grading server on loopback: submissions per minute and time-to-result.

    python benchmarks/server_load.py [--workers 2] [--students 8] [--per-student 2] [--exercise sample-add]
                                     [--modes cold warm]

Starts a real `grader serve` on 127.0.0.1 (never another interface) over the test fixtures' course,
issues tokens, and has every student upload their submissions at once from threads through the real
client library; then waits for every result.  Bounded: at most 64 submissions and ``--budget`` seconds.

Prints throughput (graded submissions per minute, from the first upload to the last result) and the
median and p95 time-to-result (upload start to graded).  Targets, checked by hand: with 2 workers on
2 cores, p95 time-to-result stays under the queue length times the single-job time divided by the
workers; throughput matches `grader batch` with the same worker count (benchmarks/batch_throughput.py).
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the generated class lives with the test fixtures
from fixtures.class_roster import make_class  # noqa: E402

MAX_SUBMISSIONS = 64
SOURCES = [make_class.GOOD, make_class.SCALE_WRONG, make_class.ADD_WRONG, make_class.FLOAT_ADD]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(root: Path, students: list[str], workers: int,
           warm: bool) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    course = make_class.make_course(root / "course")
    (root / "roster.csv").write_text("student\n" + "\n".join(students) + "\n", encoding="utf-8")
    env = dict(os.environ, GRADER_EXERCISES=str(course), GRADER_WORK_DIR=str(root / "jobs"),
               GRADER_WARM="1" if warm else "0")
    grader = [sys.executable, "-m", "grader"]
    db = root / "data" / "gradebook.sqlite"
    subprocess.run([*grader, "tokens", "issue", "roster.csv", "--db", str(db), "--out", "tokens.csv"], cwd=root,
                   env=env, check=True, capture_output=True)
    with (root / "tokens.csv").open() as fh:
        tokens = {r["student"]: r["token"] for r in csv.DictReader(fh)}
    port = _free_port()
    with (root / "serve.log").open("wb") as log:
        proc = subprocess.Popen([*grader, "serve", "--roster", "roster.csv", "--db", str(db), "--host", "127.0.0.1",
                                 "--port", str(port), "--workers", str(workers), "--rate-limit", "0",
                                 "--log-level", "warning"], cwd=root, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/api/health", timeout=2).close()
            return proc, url, tokens
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the server did not start; see {root / 'serve.log'}")


def _student(url: str, token: str, exercise: str, bodies: list[bytes], budget: float,
             times: list[float], errors: list[str]) -> None:
    from grader.client.http import Client, Credentials

    client = Client(Credentials(url, token))
    for body in bodies:
        started = time.perf_counter()
        try:
            sub = client.upload(exercise, "solution.py", body)
            client.wait(sub["id"], timeout=budget, poll=0.25)
        except Exception as exc:  # reported, never hidden in the figures
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        times.append(time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--per-student", type=int, default=2)
    parser.add_argument("--exercise", default="sample-add", choices=["sample-add", "hostile-target"])
    parser.add_argument("--budget", type=float, default=600.0, help="seconds before giving up (default 600)")
    parser.add_argument("--modes", nargs="+", choices=["cold", "warm"], default=["cold", "warm"])
    args = parser.parse_args()
    total = args.students * args.per_student
    if total > MAX_SUBMISSIONS:
        raise SystemExit(f"{total} submissions: at most {MAX_SUBMISSIONS} (this is a bounded load test)")
    students = [f"s{i:02d}" for i in range(args.students)]
    for mode in args.modes:
        _one_run(args, students, total, mode)


def _one_run(args: argparse.Namespace, students: list[str], total: int, mode: str) -> None:
    with tempfile.TemporaryDirectory(prefix="grader-load-") as tmp:
        proc, url, tokens = _start(Path(tmp), students, args.workers, mode == "warm")
        times: list[float] = []
        errors: list[str] = []
        try:
            threads = [threading.Thread(target=_student, args=(
                url, tokens[s], args.exercise,
                [SOURCES[(i + k) % len(SOURCES)].encode() for k in range(args.per_student)],
                args.budget, times, errors)) for i, s in enumerate(students)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    print(f"grader serve load test, {mode}: {args.students} students x {args.per_student} = {total} submissions of "
          f"{args.exercise}, {args.workers} worker(s), loopback, {os.cpu_count()} CPU(s)")
    if not times:
        raise SystemExit(f"no submission was graded: {errors[:3]}")
    ordered = sorted(times)
    p95 = ordered[math.ceil(0.95 * len(ordered)) - 1]  # nearest rank
    print(f"  graded             {len(times)}/{total} ({len(errors)} failed{': ' + errors[0] if errors else ''})")
    print(f"  throughput         {len(times) / elapsed * 60:.1f} submissions/min ({elapsed:.1f} s in all)")
    print(f"  time-to-result     median {statistics.median(times):.1f} s, p95 {p95:.1f} s, max {ordered[-1]:.1f} s",
          flush=True)

if __name__ == "__main__":
    main()
