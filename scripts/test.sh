#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): everything this machine can run.
# docker-marked tests run when $DOCKER_HOST (or the default socket) reaches an engine and skip
# otherwise; gpu-marked tests need a CUDA device and are left out.
set -uo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -m "not gpu" -p no:cacheprovider "$@"
