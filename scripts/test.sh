#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): everything this machine can run.
# docker-marked tests run when $DOCKER_HOST (or the default socket) reaches an engine and skip
# otherwise; gpu-marked tests need a CUDA device and are left out.
# With no arguments: the serial part (servers, Docker and Ray tests share the machine, and timing-sensitive
# ones want it alone), then the tests marked `parallel` (the curriculum self-test, the bwrap and process
# hostile runs: each grading is a job of its own) on one pytest-xdist worker per core. With arguments: one
# pytest run of exactly those.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=(.venv/bin/python -m pytest -p no:cacheprovider)
if [ "$#" -gt 0 ]; then
  exec "${PYTEST[@]}" -m "not gpu" "$@"
fi
start=$(date +%s)
"${PYTEST[@]}" -m "not gpu and not parallel" --durations=25
serial=$?
echo "test.sh: serial part finished in $(( $(date +%s) - start )) s (exit $serial)"
start=$(date +%s)
workers=$(nproc 2>/dev/null || echo 2)
# one thread per grading on each side (torch in the sandboxed worker, torch in the trusted runner): two
# workers of two threads each on two cores spin against each other, and grade about half as fast
GRADER_THREADS=1 OMP_NUM_THREADS=1 "${PYTEST[@]}" -m "not gpu and parallel" -n "$workers" --dist worksteal \
  --durations=25
parallel=$?
echo "test.sh: parallel part (curriculum self-test, hostile runs) finished in $(( $(date +%s) - start )) s on $workers workers (exit $parallel)"
[ "$serial" -ne 0 ] && exit "$serial"
exit "$parallel"
