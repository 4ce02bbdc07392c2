"""How far a finer step can still lift a nested model: its synthesis's PSNR
with the latent at every layer's step, and unquantized (the floor).

    python benchmarks/latent_floor.py --weights checkpoints/sae-nested \
        --corpus DIR [--patch-size 256]

On the trainer's fixed validation crops of --corpus (sae.data), each line
decoded by the base's synthesis and by each layer's own, where the folder
has it.  When the finest steps sit at the unquantized latent's PSNR, the
bits they add buy nothing yet: the analysis and synthesis, not the step,
bound the quality (the top rungs early in the base's training,
docs/sae-plus-probes.md).
"""

import argparse
import math
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import sae  # noqa: E402,F401  before tensorflow: its oneDNN default
import tensorflow as tf  # noqa: E402

from sae import checkpoints, data  # noqa: E402
from sae.config import layers_label  # noqa: E402
from sae.cli import guarded  # noqa: E402
from sae.errors import InputError  # noqa: E402


def floor_psnrs(model, batches, steps):
  """{step (0: unquantized): [PSNR decoded by synthesis k, k = 0..]}."""
  base = model.codecs[0]
  errors = {step: [0.0] * model.num_layers for step in steps}
  count = 0
  for x in batches:
    y = base.analysis(x, training=False)
    mean, _, _ = base.gaussians(y)
    for step in steps:
      y_hat = y if not step else tf.round((y - mean) / step) * step + mean
      for k, codec in enumerate(model.codecs):
        x_hat = tf.clip_by_value(codec.synthesis(y_hat), 0, 255)
        errors[step][k] += float(tf.reduce_sum(
            tf.math.squared_difference(x, x_hat)))
    count += int(tf.size(x))
  return {step: [10 * math.log10(255 ** 2 * count / max(e, 1e-10))
                 for e in row] for step, row in errors.items()}


def main(argv=None) -> int:
  return guarded(_main, argv)


def _main(argv) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--weights", required=True,
                 help="a sae-nested checkpoint or weights folder")
  p.add_argument("--corpus", required=True,
                 help="training images: the trainer's validation crops")
  p.add_argument("--patch-size", type=int, default=256)
  args = p.parse_args(argv)
  model = checkpoints.load_model(args.weights)
  if not hasattr(model, "steps"):
    raise InputError(f"{args.weights} holds no nested model: its layers "
                     "refine no shared latent")
  batches = data.validation_batches(args.corpus, args.patch_size, 8)
  psnrs = floor_psnrs(model, batches, model.steps + (0.0,))
  names = [f"synthesis {layers_label(k)}" for k in range(model.num_layers)]
  print(f"{'latent at':<14}" + "".join(f"{n:>18}" for n in names))
  for step, row in psnrs.items():
    label = f"step {step:g}" if step else "unquantized"
    print(f"{label:<14}" + "".join(f"{v:18.2f}" for v in row))
  return 0


if __name__ == "__main__":
  sys.exit(main())
