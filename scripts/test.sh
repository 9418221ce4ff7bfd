#!/usr/bin/env bash
# The project's test command (the README's, and what CI runs): everything this machine can run.
# Tests marked docker or gpu need an engine or a CUDA device; pass PYTEST_ADDOPTS to add them.
set -uo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -m "not docker and not gpu" -p no:cacheprovider "$@"
