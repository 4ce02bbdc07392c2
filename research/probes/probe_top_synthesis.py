"""Is a nested model's top bound by its synthesis's width?  A synthesis of
--filters, trained from scratch on the frozen model's latent at its top
layer's step, beside the model's own top synthesis on the same crops.

    python research/probes/probe_top_synthesis.py --weights weights/sae-nested \\
        --corpus DIR --filters 128 --steps 3000 --out-dir OUT

Run it at the model's width and at a wider one, with the same steps: if
the wider synthesis leads at equal steps, the floor that
research/probes/latent_floor.py measures at the top is the synthesis's, and a
wider synthesis for the top layer is the lever; if not, it is the
analysis's.  The analysis and prior stay frozen; the latent is the one the
decoder has at the top step (hard-quantized, as the top's own synthesis
was trained), so the rate is fixed and the loss is the MSE.  Adam at
--learning-rate, x0.1 after 80 % of the steps, batches of 8 random crops
(sae.train.data); --seed fixes the crops and the new synthesis's initial
weights.

Every --validate-every steps it appends to OUT/val.csv the PSNR of the
8-bit outputs on the trainer's validation crops, the new synthesis's and
the model's own, and saves its state; the same command resumes (other
options are refused).  A test of a layout, not a product: nothing it
trains is shipped.
"""

import argparse
import csv
import dataclasses
import json
import os
import pathlib
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import sae  # noqa: E402,F401  before tensorflow: its oneDNN default
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sae import checkpoints  # noqa: E402
from sae.train import data
from sae.eval import metrics
from sae.entropy import trits
from sae.cli.cli import guarded  # noqa: E402
from sae.errors import InputError  # noqa: E402
from sae.fileio import write_json  # noqa: E402
from sae.models.base import to_uint8  # noqa: E402
from sae.models.transforms import SynthesisTransform  # noqa: E402

BATCH_SIZE = 8
DECAY_AT = 0.8  # of the steps, then x0.1
COLUMNS = ("step", "psnr", "own_psnr", "train_seconds")


def top_latent(model, x):
  """The latent a decoder of all ``model``'s layers has for ``x``."""
  base = model.codecs[0]
  y = base.analysis(x, training=False)
  mean, _, _ = base.gaussians(y)
  return trits.nest(y - mean, model.steps)[-1] * model.steps[-1] + mean


def validate(model, synthesis, batches):
  """(PSNR of ``synthesis``, PSNR of the model's top synthesis), 8-bit
  outputs, over all of ``batches``."""
  originals, new, own = [], [], []
  for x in batches:
    y_hat = top_latent(model, x)
    new.append(to_uint8(synthesis(y_hat)).numpy())
    own.append(to_uint8(model.codecs[-1].synthesis(y_hat)).numpy())
    originals.append(x.numpy())
  originals = np.concatenate(originals)
  return (metrics.psnr(originals, np.concatenate(new)),
          metrics.psnr(originals, np.concatenate(own)))


def parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--weights", required=True,
                 help="a sae-nested checkpoint or weights folder")
  p.add_argument("--corpus", required=True, help="training images")
  p.add_argument("--out-dir", required=True,
                 help="the probe's val.csv, settings and state")
  p.add_argument("--filters", type=int, required=True,
                 help="the new synthesis's width")
  p.add_argument("--steps", type=int, default=3000)
  p.add_argument("--learning-rate", type=float, default=5e-4)
  p.add_argument("--validate-every", type=int, default=500)
  p.add_argument("--patch-size", type=int, default=256)
  p.add_argument("--seed", type=int, default=1)
  return p


def _settings(args, weights_ids) -> dict:
  """What a resumed run must share with the first."""
  return dict(weights_ids=weights_ids,
              corpus=str(pathlib.Path(args.corpus).resolve()),
              filters=args.filters, steps=args.steps,
              learning_rate=args.learning_rate,
              validate_every=args.validate_every,
              patch_size=args.patch_size, seed=args.seed,
              batch_size=BATCH_SIZE)


def _main(argv) -> int:
  args = parser().parse_args(argv)
  for name in ("filters", "steps", "validate_every", "patch_size"):
    if getattr(args, name) < 1:
      raise InputError(f"--{name.replace('_', '-')} must be at least 1")
  config = checkpoints.read_config(args.weights)
  if config.family != "sae-nested":
    raise InputError(f"{args.weights} holds a {config.family} model: it "
                     "has no shared latent to decode")
  if checkpoints.available_layers(args.weights) < 1:
    raise InputError(f"{args.weights} holds no trained layer")
  # Prepared for coding: the prior's quantization as the coder's, and the
  # weights ids a stream of it would carry.
  model = checkpoints.load_model(args.weights)
  data.check_corpus(args.corpus, args.patch_size)
  out = pathlib.Path(args.out_dir)
  settings = _settings(args, [i.hex() for i in model.weights_ids()])
  settings_file = out / "probe.json"
  if settings_file.is_file():
    if json.loads(settings_file.read_text()) != settings:
      raise InputError(f"{out} holds a probe with other settings "
                       f"({settings_file}); name a new --out-dir")
  elif out.exists() and any(out.iterdir()):
    raise InputError(f"{out} is not empty and holds no probe; name a new "
                     "--out-dir")
  else:
    out.mkdir(parents=True, exist_ok=True)
    write_json(settings_file, settings)

  # The same initial weights for every run of these settings; a resumed
  # run restores them.
  tf.keras.utils.set_random_seed(args.seed)
  spec = dataclasses.replace(model.specs[-1], conv_filters=args.filters)
  synthesis = SynthesisTransform(spec)
  synthesis.build((None, None, None, spec.latent_channels))
  schedule = tf.keras.optimizers.schedules.PiecewiseConstantDecay(
      [int(DECAY_AT * args.steps)],
      [args.learning_rate, args.learning_rate / 10])
  optimizer = tf.keras.optimizers.Adam(schedule)
  step = tf.Variable(0, dtype=tf.int64)
  state = tf.train.Checkpoint(synthesis=synthesis, optimizer=optimizer,
                              step=step)
  manager = tf.train.CheckpointManager(state, str(out / "train"), 1)
  state.restore(manager.latest_checkpoint)

  @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3],
                                              tf.float32)])
  def train_step(x):
    y_hat = top_latent(model, x)
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.math.squared_difference(x, synthesis(y_hat)))
    variables = synthesis.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    step.assign_add(1)
    return loss

  val_csv = out / "val.csv"
  if not val_csv.is_file():
    val_csv.write_text(",".join(COLUMNS) + "\n")
  seconds = _last_seconds(val_csv)
  batches = data.validation_batches(args.corpus, args.patch_size, BATCH_SIZE)
  crops = iter(data.training_dataset(args.corpus, args.patch_size,
                                     BATCH_SIZE, seed=args.seed + int(step)))
  print(f"probe: a synthesis of {args.filters} filters on the latent at step "
        f"{model.steps[-1]:g} of {args.weights}, from step {int(step)}")
  while int(step) < args.steps:
    started = time.perf_counter()
    train_step(next(crops))
    done = int(step)  # waits for the step
    seconds += time.perf_counter() - started
    if done % args.validate_every == 0 or done == args.steps:
      psnr, own = validate(model, synthesis, batches)
      manager.save()  # then the row: a stop between them loses the row only
      with val_csv.open("a", newline="") as f:
        csv.writer(f).writerow([done, f"{psnr:.4f}", f"{own:.4f}",
                                f"{seconds:.1f}"])
      print(f"step {done}: {psnr:.2f} dB (the model's own synthesis "
            f"{own:.2f}), {seconds / done:.3f} s per training step")
  return 0


def _last_seconds(val_csv) -> float:
  """Training seconds recorded by an earlier run of the probe."""
  with val_csv.open() as f:
    rows = list(csv.DictReader(f))
  return float(rows[-1]["train_seconds"]) if rows else 0.0


def main(argv=None) -> int:
  return guarded(_main, argv)


if __name__ == "__main__":
  sys.exit(main())
