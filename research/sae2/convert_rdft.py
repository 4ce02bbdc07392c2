"""Carries a first-phase run trained with Fourier-parameterized kernels
(tensorflow-compression's "rdft", the default before research/sae2/model.py
chose plain kernels) over to plain kernels, as the run's committed file.

    python research/sae2/convert_rdft.py --corpus DATA/train \
        --old checkpoints/sae2/top --out checkpoints/sae2/top-plain

Reads OLD/weights (the variables the run saved last) and writes
OUT/weights-f16.npz at the same step, with OLD's log.csv, val.csv and
held_out.txt, so that train_top.py --out OUT continues the record (Adam
restarts, ramped up as from any committed file).  Each kernel is the one
the old parameterization computes, so the model is the same function up to
float16 rounding; it prints the held-out validation before and after.
"""

import argparse
import os
import pathlib
import shutil
import sys

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import model as model_lib  # noqa: E402
import train_top  # noqa: E402


def convert(old_model, new_model):
  """Assigns every variable of ``new_model`` from ``old_model``: kernels as
  computed by the old layers, the rest by name."""
  for name, new_obj in new_model.checkpoint_objects().items():
    old_obj = old_model.checkpoint_objects()[name]
    if name == "prior":
      for old_v, new_v in zip(old_obj.variables, new_obj.variables):
        new_v.assign(old_v)
      continue
    for old_layer, new_layer in zip(old_obj.layers, new_obj.layers):
      old_vars = {v.name.split("/")[-1]: v for v in old_layer.weights}
      for v in new_layer.weights:
        short = v.name.split("/")[-1]
        if short == "kernel:0" and short not in old_vars:
          v.assign(old_layer.kernel)
        else:
          v.assign(old_vars[short])


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--corpus", required=True,
                 help="the run's corpus (its held-out photographs validate)")
  p.add_argument("--old", required=True)
  p.add_argument("--out", required=True)
  args = p.parse_args(argv)
  old_dir, out = pathlib.Path(args.old), pathlib.Path(args.out)
  if (out / train_top.COMMITTED).exists():
    raise SystemExit(f"{out / train_top.COMMITTED} exists: not overwritten")
  model_lib.KERNEL_PARAMETER = "rdft"
  old = model_lib.WideModel()
  model_lib.KERNEL_PARAMETER = "variable"
  new = model_lib.WideModel()
  tf.train.Checkpoint(**old.checkpoint_objects()).read(
      tf.train.latest_checkpoint(old_dir / "weights")).expect_partial()
  step = int(tf.train.load_checkpoint(
      str(old_dir / "train")).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
  convert(old, new)
  _, held = train_top.split(args.corpus)
  x = train_top.held_out_crops(held)
  for label, m in (("old", old), ("new", new)):
    bpp, mse, _ = m(x, training=False)
    print(f"{label}: {np.mean(bpp):.4f} bpp "
          f"{np.mean(10 * np.log10(255 ** 2 / mse.numpy())):.3f} dB")
  out.mkdir(parents=True, exist_ok=True)
  for name in ("log.csv", "val.csv", "held_out.txt"):
    if (old_dir / name).exists():
      shutil.copy(old_dir / name, out / name)
  train_top.save_committed(new, step, out / train_top.COMMITTED)
  print(f"{out / train_top.COMMITTED}: step {step}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
