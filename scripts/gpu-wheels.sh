#!/usr/bin/env bash
# Companion of gpu-smoke.sh, run where the network is: the wheel folder an air-gapped GPU node installs from.
#
#   bash scripts/gpu-wheels.sh [OUT] [--python-version 3.11] [--platform manylinux2014_x86_64]
#
# OUT (default gpu-wheels/) gets the grader wheel, the instructor course wheel (exercises, hidden checks,
# references) and the few small packages grader needs that a CUDA node with torch, transformers, peft and
# pytest may lack (click, pluggy, jinja2, markupsafe; docker's client for a node that has Docker), each
# without its dependencies, and a requirements.txt naming them. torch, transformers and peft are never
# included: the node keeps its own CUDA builds. The folder must stay under 60 MB; the script fails above it.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=gpu-wheels
PYVER=""
PLATFORM=manylinux2014_x86_64
while [ "$#" -gt 0 ]; do
  case "$1" in
    --python-version) PYVER=$2; shift 2 ;;
    --platform) PLATFORM=$2; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) OUT=$1; shift ;;
  esac
done
PY=.venv/bin/python
[ -x "$PY" ] || { echo "gpu-wheels: run scripts/setup.sh first (it makes .venv)" >&2; exit 1; }
PYVER=${PYVER:-$("$PY" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

echo "[gpu-wheels] grader wheel"
"$PY" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$OUT" .
echo "[gpu-wheels] instructor course wheel (references included: keep this folder private)"
course=$(mktemp -d)
trap 'rm -rf "$course"' EXIT
.venv/bin/grader export-course "$course/course" --wheel "$OUT" >/dev/null

# what grader imports to grade that a CUDA node's Python may lack (everything else it imports lazily)
SMALL=(click pluggy jinja2 markupsafe docker requests urllib3 idna certifi charset-normalizer)
echo "[gpu-wheels] ${SMALL[*]} for Python $PYVER on $PLATFORM"
"$PY" -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$PYVER" --platform "$PLATFORM" --platform any --dest "$OUT" "${SMALL[@]}"
printf '%s\n' "${SMALL[@]}" > "$OUT/requirements.txt"
cp scripts/gpu-smoke.sh "$OUT/gpu-smoke.sh"

size_kb=$(du -sk "$OUT" | cut -f1)
echo "[gpu-wheels] $(ls "$OUT"/*.whl | wc -l) wheels, $((size_kb / 1024)) MB in $OUT"
if [ "$size_kb" -gt $((60 * 1024)) ]; then
  echo "[gpu-wheels] over the 60 MB budget: something heavy slipped in" >&2
  exit 1
fi
echo "[gpu-wheels] copy $OUT to the GPU node, then there: bash $(basename "$OUT")/gpu-smoke.sh"
