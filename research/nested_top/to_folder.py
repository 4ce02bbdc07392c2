"""Writes the research run's conditional top as an ``sae-conditional``
training folder: weights/sae-nested's base, el1 and el2 (the layers it was
trained on, unchanged) and the top as the family's el3, finished.

    python research/nested_top/to_folder.py --top checkpoints/nested-top \
        --out checkpoints/sae-conditional
    tools/publish_model.sh sae-conditional

``--top``: train.py's run folder (or an npz of session 29's format).
The variables are copied in order into sae.entropy.conditional's layer
(the same network; shapes checked).  The run's record (steps, seconds,
last validation on the held-out crops) becomes el3's state.json;
tools/publish_model.sh then ships the folder (coding tables with the
exact context, manifest, ids) and measures it on Kodak beside JPEG
2000's quality layers.
"""

import argparse
import csv
import pathlib
import shutil
import sys

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent / "sae2"))
sys.path.insert(0, str(HERE))
from top_model import load_top  # noqa: E402

from sae import checkpoints  # noqa: E402
from sae.config import ModelConfig  # noqa: E402
from sae.models import families  # noqa: E402

LOWER = 3  # base, el1, el2


def run_record(run: pathlib.Path, step: int, decay_from=None) -> dict:
  """el3's state.json from train.py's log.csv and val.csv (a run folder;
  an npz holds the step alone)."""
  record = dict(steps=step, finished=True, batch_size=8, patch_size=128,
                schedule=dict(learning_rate=2e-4, decay_to=0.1,
                              decay_at_step=decay_from,
                              rate_warmup_steps=2000),
                corpus="shared/data/train (every 16th photograph held out)")
  if run.is_dir():
    # Each resume restarts log.csv's clock: the seconds are per segment.
    seconds, last = 0.0, 0.0
    for row in csv.DictReader(open(run / "log.csv")):
      now = float(row["seconds"])
      seconds += now - last if now >= last else now
      last = now
    record["train_seconds"] = round(seconds, 1)
    val = list(csv.DictReader(open(run / "val.csv")))[-1]
    record["validation"] = {"held-out crops": {
        "step": int(val["step"]), "layer_bpp": float(val["layer_bpp"]),
        "psnr": float(val["psnr"]), "nested_3_layers_psnr":
        float(val["nested_3"]), "nested_4_layers_psnr": float(val["nested_4"])}}
  return record


def write_curves(run: pathlib.Path, layer: pathlib.Path, lmbda: float,
                 decay_from=None) -> None:
  """The run's log.csv and val.csv in the package's columns, so that the
  report and the figures read them as any layer's: PSNR from the MSE, the
  seconds summed over the run's segments, the learning rate from
  ``decay_from``.  The run's validation PSNR is the mean over the held-out
  crops of each crop's; its MSE here is the one that PSNR stands for."""
  rows, total, last = [], 0.0, 0.0
  for row in csv.DictReader(open(run / "log.csv")):
    now = float(row["seconds"])
    total += now - last if now >= last else now
    last = now
    step, mse = int(row["step"]), float(row["mse"])
    lr = 2e-5 if decay_from is not None and step > decay_from else 2e-4
    rows.append([step, row["loss"], row["bpp"], f"{mse:.4f}",
                 f"{10 * np.log10(255 ** 2 / mse):.4f}", f"{lr:.2e}",
                 f"{total:.1f}"])
  with open(layer / "log.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["step", "loss", "bpp", "mse", "psnr", "lr", "seconds"])
    w.writerows(rows)
  with open(layer / "val.csv", "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["step", "loss", "bpp", "mse", "psnr"])
    for row in csv.DictReader(open(run / "val.csv")):
      if int(row["step"]) == 0:
        continue  # the initialized layer's, off every scale
      bpp, psnr = float(row["layer_bpp"]), float(row["psnr"])
      mse = 255 ** 2 / 10 ** (psnr / 10)
      w.writerow([row["step"], f"{bpp + lmbda * mse:.5f}", f"{bpp:.6f}",
                  f"{mse:.4f}", f"{psnr:.3f}"])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--top", required=True)
  p.add_argument("--nested", default=str(ROOT / "weights" / "sae-nested"))
  p.add_argument("--out", required=True)
  p.add_argument("--decay-from", type=int, default=None,
                 help="the step from which the run's learning rate was a "
                 "tenth (train.py: 0.9 of the --steps of the segment that "
                 "reached it), for log.csv's lr column")
  args = p.parse_args(argv)
  nested, out, top_path = (pathlib.Path(a) for a in
                           (args.nested, args.out, args.top))
  research, step = load_top(top_path)
  lower_config = checkpoints.read_config(nested).prefix(LOWER)
  table = families.get("sae-conditional").preset("paper").layers
  config = ModelConfig(lower_config.layers + table[LOWER:], "mse", "paper",
                       "sae-conditional")
  if out.exists():
    raise SystemExit(f"{out} exists; name a new folder")
  building = out.parent / f".{out.name}.building"
  shutil.rmtree(building, ignore_errors=True)
  checkpoints.write_config(building, config)
  for k in range(LOWER):
    checkpoints.copy_files(checkpoints.layer_dir(nested, k),
                           checkpoints.layer_dir(building, k),
                           checkpoints.LAYER_FILES + ("tables.npz",))
  model = families.build_model(config)
  for k in range(LOWER):
    checkpoints.restore_weights(model.codecs[k], building, k)
  before = [c.digest() for c in model.codecs[:LOWER]]
  top = model.top
  source = [v for obj in research.checkpoint_objects().values()
            for v in obj.weights]
  if len(source) != len(top.weight_variables):
    raise SystemExit(f"{len(source)} variables in {top_path}, "
                     f"{len(top.weight_variables)} in the package's layer")
  for theirs, mine in zip(source, top.weight_variables):
    if theirs.shape != mine.shape:
      raise SystemExit(f"{theirs.name} {theirs.shape} != {mine.name} "
                       f"{mine.shape}")
    mine.assign(theirs)
  top.steps_trained.assign(step)
  checkpoints.save_weights(top, building, LOWER)
  state = run_record(top_path, step, args.decay_from)
  state.update(spec=config.layers[LOWER].to_dict(), metric="mse",
               lower_layer_sha256_before=before,
               lower_layer_sha256_after=[c.digest() for c in
                                         model.codecs[:LOWER]])
  checkpoints.write_state(building, LOWER, state)
  if top_path.is_dir():
    write_curves(top_path, checkpoints.layer_dir(building, LOWER),
                 config.layers[LOWER].lmbda, args.decay_from)
  building.rename(out)
  print(f"{out}: sae-nested's three layers and the top at step {step}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
