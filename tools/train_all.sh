#!/usr/bin/env bash
# Trains (or resumes) base, el1, el2 and el3 in order, unattended.
#
#   tools/train_all.sh CHECKPOINT_DIR CORPUS [extra train options...]
#   e.g. mkdir -p logs && nohup tools/train_all.sh checkpoints/mse \
#            corpus/clic2018 --no-progress > logs/train_all.log 2>&1 &
#
# A layer whose state.json says it finished is skipped, so the same command
# resumes wherever the last run stopped (a layer must finish before the next
# one freezes it). Steps: 60000 for the base, 40000 per EL (docs/training.md), or
# STEPS_BASE / STEPS_EL from the environment. Once a layer trains, the ones
# above are never skipped: their own start-up then refuses them as stale.
# Stops at the first failure, with that script's exit status, or on
# SIGTERM or Ctrl-C (status 143), passed to the trainer, which saves first.
set -u
usage="usage: tools/train_all.sh CHECKPOINT_DIR CORPUS [options...]"
ckpt=$(realpath -m "${1:?$usage}")
corpus=$(realpath -m "${2:?$usage}")
shift 2
cd "$(dirname "$0")/.."
child=
# The trap waits until the trainer has left (a wait that another signal cuts
# short is repeated), so nothing writes the folder once this script exits.
trap '[ -n "$child" ] && kill -TERM "$child" 2> /dev/null
      while [ -n "$child" ] && kill -0 "$child" 2> /dev/null; do
        wait "$child"
      done
      exit 143' TERM INT
trained=
for layer in base el1 el2 el3; do
  if [ "$layer" = base ]; then steps=${STEPS_BASE:-60000}; else steps=${STEPS_EL:-40000}; fi
  if [ -z "$trained" ] && python - "$ckpt/$layer/state.json" "$steps" <<'EOF'
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
  trained=yes
  # In the background so that the trap can pass a SIGTERM on.
  python "train_$layer.py" --checkpoint-dir "$ckpt" --corpus "$corpus" \
      --steps "$steps" "$@" &
  child=$!
  wait "$child"
  status=$?
  child=
  [ "$status" -eq 0 ] || exit "$status"
done
echo "all layers trained ($(date -u +%FT%TZ))"
