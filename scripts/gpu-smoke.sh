#!/usr/bin/env bash
# GPU smoke test for the common GPU host of a course: an air-gapped cluster node with its own CUDA torch,
# transformers, peft and pytest, no network, possibly no Docker or bubblewrap.
#
#   bash gpu-smoke.sh [WHEELS]          (WHEELS: the folder scripts/gpu-wheels.sh made; default: this
#                                        script's folder, where gpu-wheels.sh copies it)
#
# 1. reports the Python, torch, CUDA device, transformers, peft and pytest it finds;
# 2. installs grader and the course into a virtualenv that sees that Python's packages (so its torch stays:
#    --no-deps, --no-index, from WHEELS only; nothing is fetched);
# 3. picks the sandbox grader would pick there (bwrap, then docker, then process: the first that works);
# 4. grades two exercises' references with the gpu profile, cold (one job) and warm (two jobs on a warm
#    runner), and prints what it measured: device, sandbox, phases, scores.
# Everything must finish within SMOKE_BUDGET_S (default 480 s); exit 0 only when every reference scores full
# marks on the GPU. Knobs: PYTHON (default python3), SMOKE_EXERCISES (default "decoder-block
# memory-management"), SMOKE_PROFILE (default gpu; cpu makes a dry run on a machine without a GPU),
# SMOKE_DIR (default ./gpu-smoke: the venv and the results).
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WHEELS=$(cd "${1:-$HERE}" && pwd)
PYTHON=${PYTHON:-python3}
EXERCISES=${SMOKE_EXERCISES:-"decoder-block memory-management"}
PROFILE=${SMOKE_PROFILE:-gpu}
BUDGET=${SMOKE_BUDGET_S:-480}
DIR=${SMOKE_DIR:-$PWD/gpu-smoke}
START=$(date +%s)
say() { echo "[gpu-smoke +$(( $(date +%s) - START ))s] $*"; }
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

say "what $PYTHON has"
"$PYTHON" - <<'EOF' || { echo "[gpu-smoke] $PYTHON cannot import torch: this node needs its CUDA torch first" >&2; exit 2; }
import importlib.metadata as md, platform, sys
import torch
print(f"  python {platform.python_version()} at {sys.executable}")
print(f"  torch {torch.__version__}, CUDA build {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  device {i}: {p.name}, {p.total_memory / 2**30:.0f} GiB, capability {p.major}.{p.minor}")
for name in ("transformers", "peft", "pytest", "numpy"):
    try:
        print(f"  {name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"  {name}: missing")
EOF

say "installing grader into $DIR/venv (its torch is the node's own)"
mkdir -p "$DIR"
if [ ! -x "$DIR/venv/bin/python" ]; then
  "$PYTHON" -m venv --system-site-packages "$DIR/venv" || { echo "[gpu-smoke] python -m venv failed" >&2; exit 2; }
fi
VPY=$DIR/venv/bin/python
extra=()
if [ -f "$WHEELS/requirements.txt" ]; then
  while read -r pkg; do
    [ -n "$pkg" ] || continue
    "$VPY" -c "import importlib.metadata as m, sys; m.version(sys.argv[1])" "$pkg" 2>/dev/null || extra+=("$pkg")
  done < "$WHEELS/requirements.txt"
fi
"$VPY" -m pip install --quiet --disable-pip-version-check --no-index --no-deps --find-links "$WHEELS" \
  grader grader-course "${extra[@]}" \
  || { echo "[gpu-smoke] installing from $WHEELS failed (made by scripts/gpu-wheels.sh?)" >&2; exit 2; }
"$VPY" -c "import torch; print('  torch still', torch.__version__, 'from', torch.__file__)"

say "sandboxes here"
"$DIR/venv/bin/grader" sandboxes
SANDBOX=$("$VPY" - <<'EOF'
from grader import api
from grader.engine.core import SandboxUnavailable, choose_sandbox
try:
    print(choose_sandbox(api.load(), None).name)
except SandboxUnavailable:
    print("")
EOF
)
[ -n "$SANDBOX" ] || { echo "[gpu-smoke] no sandbox works here" >&2; exit 2; }
say "best sandbox: $SANDBOX"

failed=0
for EX in $EXERCISES; do
  REF=$("$VPY" -c "from grader import api; print(api.load().exercises.get('$EX').reference_dir or '')")
  [ -n "$REF" ] || { echo "[gpu-smoke] $EX: no reference installed (is the course wheel in $WHEELS?)" >&2; failed=1; continue; }
  for MODE in cold warm; do
    if [ "$(left)" -le 0 ]; then echo "[gpu-smoke] out of time before $EX ($MODE)" >&2; failed=1; break 2; fi
    OUT=$DIR/results/$EX-$MODE
    mkdir -p "$DIR/results"
    rm -rf "$OUT"
    subs=("$REF")
    [ "$MODE" = warm ] && subs=("$REF" "$REF")  # several submissions: grader grade forks them from a warm runner
    say "$EX, $MODE: grading the reference with the $PROFILE profile on $SANDBOX"
    GRADER_WARM=$([ "$MODE" = warm ] && echo 1 || echo 0) GRADER_PROFILE=$PROFILE \
      timeout "$(left)" "$DIR/venv/bin/grader" grade "$EX" "${subs[@]}" --sandbox "$SANDBOX" --out "$OUT" \
      > "$OUT.log" 2>&1
    code=$?
    "$VPY" - "$OUT" "$EX" "$MODE" "$PROFILE" "$code" <<'EOF' || failed=1
import json, sys
from pathlib import Path
out, ex, mode, profile, code = sys.argv[1:]
docs = sorted(Path(out).rglob("results.json"))
if not docs:
    print(f"  {ex} {mode}: no results (exit {code}); see {out}.log")
    sys.exit(1)
ok = True
for doc in docs:
    r = json.loads(doc.read_text())
    g = r["grader"]
    prov = g["provenance"]
    phases = g.get("phases", {})
    device = prov.get("device", "?")
    used = prov.get("profile", "?")
    print(f"  {ex} {mode}: {r['score']:g}/{r['max_score']:g} ({g['status']}), device {device}, profile {used}, "
          f"sandbox {prov.get('isolation', {}).get('backend', '?')}, {r['execution_time']:.1f} s; phases "
          + ", ".join(f"{k} {v:g}" for k, v in phases.items()))
    bad = [t for t in r["tests"] if t["score"] != t["max_score"]]
    for t in bad:
        print(f"    lost {t['name']}: {t['output'].splitlines()[0] if t['output'] else ''}")
    ok &= not bad and r["score"] == r["max_score"] and used == profile
sys.exit(0 if ok else 1)
EOF
  done
done
say "done in $(( $(date +%s) - START )) s (budget $BUDGET s); results in $DIR/results"
[ "$failed" -eq 0 ] && echo "[gpu-smoke] PASS: every reference scored full marks with the $PROFILE profile" \
  || { echo "[gpu-smoke] FAIL: see the lines above and $DIR/results/*.log" >&2; exit 1; }
