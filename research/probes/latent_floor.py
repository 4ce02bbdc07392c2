"""How far a finer step can still lift a nested model: its syntheses'
PSNR with the latent at every layer's step, and unquantized (the floor).

    python research/probes/latent_floor.py --weights weights/sae-nested \
        --corpus DIR [--patch-size 256]

On the trainer's fixed validation crops of --corpus (sae.train.data), the
latent quantized at each step of the family's table (the layers above a
base still in training included), decoded to 8 bits by each synthesis the
folder holds.  When the finest steps sit at the unquantized latent's PSNR,
the bits they add buy nothing yet: the analysis and synthesis, not the
step, bound the quality (the top steps early in the base's training,
research/sae-plus-probes.md).  The trainer's val.csv measures the unrounded
output, so its PSNRs differ a little.
"""

import argparse
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import sae  # noqa: E402,F401  before tensorflow: its oneDNN default
import numpy as np  # noqa: E402

from sae import checkpoints  # noqa: E402
from sae.train import data
from sae.models import families
from sae.eval import metrics
from sae.entropy import trits
from sae.config import layers_label  # noqa: E402
from sae.models.base import to_uint8  # noqa: E402
from sae.cli.cli import guarded  # noqa: E402
from sae.errors import InputError  # noqa: E402


def floor_psnrs(model, batches, syntheses):
  """{step (0: unquantized): [PSNR decoded by synthesis k, k < syntheses]}."""
  base = model.codecs[0]
  steps = model.steps + (0.0,)
  originals, decoded = [], {step: [[] for _ in range(syntheses)]
                            for step in steps}
  for x in batches:
    y = base.analysis(x, training=False)
    mean, _, _ = base.gaussians(y)
    latents = [q * step + mean
               for q, step in zip(trits.nest(y - mean, model.steps),
                                  model.steps)] + [y]
    for step, y_hat in zip(steps, latents):
      for k in range(syntheses):
        decoded[step][k].append(to_uint8(model.codecs[k].synthesis(y_hat)))
    originals.append(x.numpy())
  originals = np.concatenate(originals)
  return {step: [metrics.psnr(originals, np.concatenate(d)) for d in row]
          for step, row in decoded.items()}


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
  config = checkpoints.read_config(args.weights)
  if config.family != "sae-nested":
    raise InputError(f"{args.weights} holds a {config.family} model: its "
                     "layers refine no shared latent")
  have = checkpoints.available_layers(args.weights)
  if have == 0:
    raise InputError(f"{args.weights} holds no trained layer")
  # Every step of the family's table, as the base's training sees them.
  preset = families.get(config.family).preset(config.preset, config.metric)
  model = families.build_model(
      families.with_layers_above(config.prefix(have), preset.layers))
  for k in range(have):
    checkpoints.restore_weights(model.codecs[k], args.weights, k)
  batches = data.validation_batches(args.corpus, args.patch_size, 8)
  psnrs = floor_psnrs(model, batches, have)
  names = [f"synthesis {layers_label(k)}" for k in range(have)]
  print(f"{'latent at':<14}" + "".join(f"{n:>18}" for n in names))
  for step, row in psnrs.items():
    label = f"step {step:g}" if step else "unquantized"
    print(f"{label:<14}" + "".join(f"{v:18.2f}" for v in row))
  return 0


if __name__ == "__main__":
  sys.exit(main())
