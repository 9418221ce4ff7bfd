#!/usr/bin/env bash
# One-step set-up on a fresh machine: system sandbox tool, a virtualenv, grader and its CPU torch.
# Idempotent: rerunning only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing bubblewrap (the default sandbox)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  else
    echo "[setup] bubblewrap not found: install it (e.g. 'sudo apt-get install bubblewrap');" \
         "until then grader falls back to the weaker 'process' sandbox" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv"
  "$PYTHON" -m venv .venv
fi
# torch is pinned to the CPU wheel: an unpinned torch pulls a multi-GB CUDA build.
echo "[setup] installing grader (editable) with torch==2.13.0"
.venv/bin/python -m pip install --quiet --disable-pip-version-check "torch==2.13.0" -e ".[dev]"
echo "[setup] done: $(.venv/bin/grader --version)"
