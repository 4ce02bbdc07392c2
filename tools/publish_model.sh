#!/usr/bin/env bash
# Ships a model's finished layers and remakes every number and figure that
# depends on them: the Kodak results JSON (and decoded PNGs), the report
# beside the paper's curve, layered JPEG 2000 at the model's own rates (MSE
# model), the RD, training and visual figures, and the BD-rates.
#
#   tools/publish_model.sh mse|ms-ssim|FAMILY [--from DIR] [ship_weights options, e.g. --note TEXT]
#
# The layers come from checkpoints/<model>, or from --from DIR: a model
# whose joint fine-tuning was kept ships from train_joint.py's --out-dir.
#
# mse and ms-ssim are the paper's family (results/kodak/sae-<name>.json);
# another model is named by its family, one of sae/models/families.py's besides
# the paper's, such as sae-nested (results/kodak/<name>.json). An MSE model of four layers also gets the
# JPEG 2000 quality layers at its own rates: the mse model's in
# results/kodak/jpeg2000-layers.json (the bench's anchor), another's in
# results/at-rates/<name>/jpeg2000-layers.json, with its BD-rates against
# them and the mse model in results/at-rates/<name>-bd-rates.json.
#
# Kodak is read from $KODAK (default kodak/ in the repository, where the
# test scripts download it). Results go to results/kodak/ (results files
# only, named as tools/pin_shipped_streams.results_file names them), the
# report to results/reports/, the BD-rates to results/bd-rates.json. The
# README's tables are then updated from what it prints.
set -euo pipefail
usage="usage: tools/publish_model.sh mse|ms-ssim|FAMILY [--from DIR] [--note TEXT] [--layers N] (FAMILY: another family of sae/models/families.py, e.g. sae-nested)"
refuse() { echo "error: $1" >&2; exit 2; }
# One list of families: the registry's (no TensorFlow is imported).
other_family() {
  (cd "$(dirname "$0")/.." && python -c 'import sys; from sae.models import families
sys.exit(sys.argv[1] == "sae" or sys.argv[1] not in families.FAMILIES)' "$1")
}
model=${1:-}
case "$model" in
  mse|ms-ssim) shift ;;
  *) { [ -n "$model" ] && other_family "$model"; } || refuse "$usage"; shift ;;
esac
trained=checkpoints/$model
given=$trained
if [ "${1:-}" = --from ]; then
  [ $# -ge 2 ] || refuse "--from needs a folder; $usage"
  given=$2
  shift 2
  # Resolved where the command was run, as $KODAK is.
  trained=$(cd "$given" 2>/dev/null && pwd) ||
    refuse "$given is not a checkpoint folder (no such folder)"
fi
if [ -n "${KODAK:-}" ] && [ -d "$KODAK" ]; then KODAK=$(cd "$KODAK" && pwd); fi
cd "$(dirname "$0")/.."
root=$(pwd)
trained=${trained#"$root"/}  # inside the repository: named as records name it
[ -f "$trained/config.json" ] ||
  refuse "$given is not a checkpoint folder (no config.json)"
export TF_CPP_MIN_LOG_LEVEL=${TF_CPP_MIN_LOG_LEVEL:-3}
kodak=${KODAK:-kodak}
weights=weights/$model
recon=results/recon/$model  # not committed (.gitignore); results/kodak holds results files only

python tools/ship_weights.py "$trained" "$weights" "$@"
results=$(python -c 'import sys; from tools.pin_shipped_streams import results_file
print(results_file(sys.argv[1]))' "$weights")  # as the tests find it
layers=$(python -c 'import sys; from sae import checkpoints
print(checkpoints.available_layers(sys.argv[1]))' "$weights")
if [ "$layers" -eq 1 ]; then script=test_base.py; else script=test_el$((layers - 1)).py; fi
python "$script" --weights "$weights" --kodak "$kodak" --out "$results" \
    --recon-dir "$recon" --no-progress
python -m sae.eval.report --sae "$results" --training "$trained" \
    --out "results/reports/report-$model.json"
metric=$(python -c 'import sys; from sae import checkpoints
print(checkpoints.read_config(sys.argv[1]).metric)' "$weights")
if [ "$metric" = mse ] && [ "$layers" -eq 4 ]; then
  # The classical scalable codec at the model's own rates, once all four
  # layers exist (until then results/kodak/jpeg2000-layers.json keeps the
  # paper's rates).
  if [ "$model" = mse ]; then at_rates=results/kodak; else at_rates=results/at-rates/$model; fi
  python -m sae.eval.bench --images "$kodak" --codecs jpeg2000-layers \
      --sae-results "$results" --out-dir "$at_rates" --no-progress
  if [ ! -f "$at_rates/jpeg2000-layers.json" ]; then
    echo "error: JPEG 2000 was not measured (see above); $weights is shipped" >&2
    exit 1
  fi
  if [ "$model" != mse ]; then
    python -m sae.eval.bdrate --sae "$results" --anchors \
        "$at_rates/jpeg2000-layers.json" results/kodak/sae-mse.json \
        --out "results/at-rates/$model-bd-rates.json" --markdown
  fi
fi
if [ "$model" = mse ]; then
  python -m sae.eval.plots --training "$trained" --recon-dir "$recon" \
      --images "$kodak"
else
  python -m sae.eval.plots --training "$trained"
fi
python -m sae.eval.bdrate --markdown --paper
