"""Writes weights/sae-conditional with train_decoder.py's sub-pixel decoder
as an ``sae-conditional`` training folder: the three lower layers and the
top's analysis and context unchanged (so its streams are byte for byte the
same), the top's synthesis and refinement from the run.

    python research/subpixel_top/to_folder.py --run checkpoints/subpixel-top \
        --out checkpoints/sae-conditional
    tools/publish_model.sh sae-conditional

el3's state.json keeps the top's own record (its analysis and context
trained there) and adds the decoder's: steps, seconds, the last held-out
validation.  Its log.csv and val.csv stay the top's: the curves of the
rate it codes at.
"""

import argparse
import csv
import dataclasses
import pathlib
import shutil
import sys

import tensorflow as tf

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

from sae import checkpoints  # noqa: E402
from sae.models import families  # noqa: E402

TOP = 3  # el3


def decoder_record(run: pathlib.Path, step: int) -> dict:
  seconds, last = 0.0, 0.0
  for row in csv.DictReader(open(run / "log.csv")):
    now = float(row["seconds"])  # each resume restarts the clock
    seconds += now - last if now >= last else now
    last = now
  val = list(csv.DictReader(open(run / "val.csv")))[-1]
  return dict(steps=step, train_seconds=round(seconds, 1),
              trained="distortion only, on the frozen analysis and context "
              "(research/subpixel_top/train_decoder.py)",
              batch_size=8, patch_size=256,
              validation={"held-out photographs whole": {
                  "step": int(val["step"]), "psnr": float(val["psnr"]),
                  "transposed_decoder_psnr": float(val["shipped_decoder"]),
                  "three_layers_psnr": float(val["three_layers"])}})


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--run", required=True, help="train_decoder.py's --out")
  p.add_argument("--weights", default=str(ROOT / "weights" / "sae-conditional"),
                 help="the model whose top gets the decoder")
  p.add_argument("--out", required=True)
  args = p.parse_args(argv)
  run, out, src = (pathlib.Path(a) for a in (args.run, args.out, args.weights))
  if out.exists():
    raise SystemExit(f"{out} exists; name a new folder")
  shipped = checkpoints.load_model(src, prepare=False)
  config = checkpoints.read_config(src)
  layers = list(config.layers)
  layers[TOP] = dataclasses.replace(layers[TOP], decoder="subpixel")
  config = dataclasses.replace(config, layers=tuple(layers))
  building = out.parent / f".{out.name}.building"
  shutil.rmtree(building, ignore_errors=True)
  checkpoints.write_config(building, config)
  for k in range(TOP):
    checkpoints.copy_files(checkpoints.layer_dir(src, k),
                           checkpoints.layer_dir(building, k),
                           checkpoints.LAYER_FILES + ("tables.npz",))
  model = families.build_model(config)
  old, new = shipped.top, model.top
  for mine, theirs in zip(new.analysis.weights + new.context.weights,
                          old.analysis.weights + old.context.weights,
                          strict=True):
    mine.assign(theirs)
  new.steps_trained.assign(old.steps_trained)
  step = tf.Variable(0, dtype=tf.int64)
  tf.train.Checkpoint(step=step, synthesis=new.synthesis,
                      refine=new.refine).read(
      str(run / "weights" / "ckpt")).assert_existing_objects_matched()
  checkpoints.save_weights(new, building, TOP)
  top_dir = checkpoints.layer_dir(building, TOP)
  checkpoints.copy_files(checkpoints.layer_dir(src, TOP), top_dir,
                         ("log.csv", "val.csv"))
  state = checkpoints.read_state(src, TOP)
  state["spec"] = config.layers[TOP].to_dict()
  state["decoder"] = decoder_record(run, int(step))
  checkpoints.write_state(building, TOP, state)
  building.rename(out)
  print(f"{out}: {src}'s model with the sub-pixel decoder at step {int(step)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
