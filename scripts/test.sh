#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): everything this machine can run.
# docker-marked tests run when $DOCKER_HOST (or the default socket) reaches an engine and skip
# otherwise; gpu-marked tests need a CUDA device and are left out.
# With no arguments: the suite, then the curriculum self-test on one pytest-xdist worker per core (each
# grading is a process of its own, so the cores grade in parallel; the rest of the suite stays serial,
# since servers, Docker and Ray tests share the machine). With arguments: one pytest run of exactly those.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=(.venv/bin/python -m pytest -m "not gpu" -p no:cacheprovider)
if [ "$#" -gt 0 ]; then
  exec "${PYTEST[@]}" "$@"
fi
start=$(date +%s)
"${PYTEST[@]}" --ignore=tests/test_curriculum.py
suite=$?
echo "test.sh: suite finished in $(( $(date +%s) - start )) s (exit $suite)"
start=$(date +%s)
workers=$(nproc 2>/dev/null || echo 2)
"${PYTEST[@]}" -n "$workers" tests/test_curriculum.py
curriculum=$?
echo "test.sh: curriculum self-test finished in $(( $(date +%s) - start )) s on $workers workers (exit $curriculum)"
[ "$suite" -ne 0 ] && exit "$suite"
exit "$curriculum"
