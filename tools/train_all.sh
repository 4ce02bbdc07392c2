#!/usr/bin/env bash
# Trains (or resumes) base, el1, el2 and el3 in order, unattended.
#
#   tools/train_all.sh CHECKPOINT_DIR CORPUS [extra train options...]
#   e.g. nohup tools/train_all.sh checkpoints/mse ../shared/data/train \
#            --no-progress > logs/train_all.log 2>&1 &
#
# A layer whose state.json says it finished is skipped, so the same command
# resumes wherever the last run stopped (a layer must finish before the next
# one freezes it). Steps: 60000 for the base, 40000 per EL (DESIGN.md), or
# STEPS_BASE / STEPS_EL from the environment. Stops at the first failure or
# interruption, with that script's exit status.
set -u
cd "$(dirname "$0")/.."
ckpt=${1:?usage: tools/train_all.sh CHECKPOINT_DIR CORPUS [options...]}
corpus=${2:?usage: tools/train_all.sh CHECKPOINT_DIR CORPUS [options...]}
shift 2
for layer in base el1 el2 el3; do
  if [ "$layer" = base ]; then steps=${STEPS_BASE:-60000}; else steps=${STEPS_EL:-40000}; fi
  if python - "$ckpt/$layer/state.json" "$steps" <<'EOF'
import json, sys
try:
  state = json.load(open(sys.argv[1]))
except (OSError, ValueError):
  sys.exit(1)
sys.exit(0 if state.get("finished") and state.get("steps", 0) >= int(sys.argv[2]) else 1)
EOF
  then
    echo "$layer: finished, skipped"
    continue
  fi
  echo "$layer: training to $steps steps ($(date -u +%FT%TZ))"
  python "train_$layer.py" --checkpoint-dir "$ckpt" --corpus "$corpus" \
      --steps "$steps" "$@" || exit $?
done
echo "all layers trained ($(date -u +%FT%TZ))"
