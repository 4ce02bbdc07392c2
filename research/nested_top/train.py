"""Trains the conditional top layer (top_model.py) on weights/sae-nested's three
lower layers, frozen.  Resumable; a research run, outside the package.

    nohup python research/nested_top/train.py --corpus DATA/train \
        --out checkpoints/nested-top > logs/nested-top.log 2>&1 &

The split, the crops and the saved files are SAE-2's (research/sae2/
train_top.py): every 16th photograph held out, train/ with Adam's state,
weights/ the variables alone, log.csv and val.csv (step, the layer's bpp,
PSNR, and the three- and four-layer nested PSNR on the held-out 256² crops).

The rate's gradient into the new latent rises from 0 to 1 over the first
--rate-warmup steps (the context that predicts its Gaussians learns from
the rate from the start), so the latent learns to carry the residual
before it pays for it.  With top_model.py's latent gain, noisy synthesis
input and near-zero residual start, this is what keeps the new latent from
collapsing to its means (docs/sae2.md, session 29: four starts without
all of them stayed at the three-layer image).
"""

import argparse
import csv
import os
import pathlib
import signal
import sys
import time

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent / "sae2"))
sys.path.insert(0, str(HERE))
from train_top import split, training_crops, held_out_crops  # noqa: E402
from top_model import ConditionalTop  # noqa: E402

SAVE_SECONDS = 300
LOWER_LAYERS = 3  # x̂₂ and ŷ₃: the nested model's base, el1 and el2


def nested_lower(weights):
  """A function x -> (x̂₂, ŷ₃, x̂₃): the frozen nested model's three-layer
  image, its latent at step 3, and its own four-layer image (the baseline),
  as the decoder has them (means from ẑ rounded; the float path)."""
  from sae.checkpoints import load_model
  from sae.entropy import trits
  nested = load_model(weights, prepare=False)
  steps = nested.steps

  def lower(x):
    y = nested.base.analysis(x, training=False)
    mean = nested.base.gaussians(y)[0]
    symbols = trits.nest(y - mean, steps)
    y3 = symbols[LOWER_LAYERS - 1] * steps[LOWER_LAYERS - 1] + mean
    x2 = nested.codecs[LOWER_LAYERS - 1].synthesis(y3)
    x3 = nested.codecs[LOWER_LAYERS].synthesis(symbols[LOWER_LAYERS] *
                                               steps[LOWER_LAYERS] + mean)
    return x2, y3, x3

  return lower


def psnr(mse):
  return float(np.mean(10 * np.log10(255 ** 2 / np.asarray(mse))))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--corpus", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--nested", default=str(ROOT / "weights" / "sae-nested"))
  p.add_argument("--steps", type=int, default=60000)
  p.add_argument("--patch", type=int, default=128)
  p.add_argument("--lmbda", type=float, default=0.03,
                 help="el3's lambda in weights/sae-nested")
  p.add_argument("--lr", type=float, default=2e-4)
  p.add_argument("--rate-warmup", type=int, default=2000,
                 help="steps over which the rate's gradient into the latent "
                 "rises to 1")
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--validate-every", type=int, default=1000)
  p.add_argument("--seed", type=int, default=1)
  p.add_argument("--init", default=None,
                 help="weights to start a fresh run from: a weights folder of "
                 "the sae-conditional family (weights/sae-conditional) or "
                 "another run's folder (its step kept; Adam's state starts "
                 "over)")
  p.add_argument("--decoder", default="transposed",
                 choices=["transposed", "subpixel"],
                 help="the top's synthesis and refinement "
                 "(sae.entropy.conditional.DECODERS); --init's must match")
  args = p.parse_args(argv)

  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  tf.random.set_seed(args.seed)
  train_paths, held = split(args.corpus)
  lower = nested_lower(args.nested)
  model = ConditionalTop(args.decoder)
  optimizer = tf.keras.optimizers.Adam(learning_rate=args.lr,
                                       global_clipnorm=1.0)
  lr = optimizer.learning_rate
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  ckpt = tf.train.Checkpoint(step=step, optimizer=optimizer,
                             **model.checkpoint_objects())
  manager = tf.train.CheckpointManager(ckpt, out / "train", max_to_keep=1)
  weights = tf.train.Checkpoint(**model.checkpoint_objects())
  if manager.latest_checkpoint:
    ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    print(f"resumed at step {int(step)}", flush=True)
  elif args.init:
    from top_model import load_top
    start, start_step = load_top(args.init)
    for mine, theirs in zip(model.variables, start.variables, strict=True):
      mine.assign(theirs)
    step.assign(start_step)
    print(f"started from {args.init} at step {int(step)}", flush=True)
  variables = [v for obj in model.checkpoint_objects().values()
               for v in obj.trainable_variables]
  spec = [tf.TensorSpec([None, None, None, 3])]

  @tf.function(input_signature=spec + [tf.TensorSpec([], tf.float32)])
  def train_step(x, latent_rate_gradient):
    x2, y3, _ = lower(x)
    x2, y3 = tf.stop_gradient(x2), tf.stop_gradient(y3)
    with tf.GradientTape() as tape:
      bits, _, mse = model(x, x2, y3, training=True,
                           latent_rate_gradient=latent_rate_gradient)
      pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
      bpp = tf.reduce_mean(bits) / pixels
      loss = bpp + args.lmbda * tf.reduce_mean(mse)
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss, bpp, tf.reduce_mean(mse)

  @tf.function(input_signature=spec)
  def evaluate(x):
    x2, y3, x3 = lower(x)
    bits, _, mse = model(x, x2, y3, training=False)
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    err = lambda t: tf.reduce_mean(tf.math.squared_difference(x, t), (1, 2, 3))
    return bits / pixels, mse, err(x2), err(x3)

  val_x = held_out_crops(held)

  def validate():
    bpp, mse, mse2, mse3 = (t.numpy() for t in evaluate(val_x))
    new = not (out / "val.csv").exists()
    with open(out / "val.csv", "a", newline="") as f:
      w = csv.writer(f)
      if new:
        w.writerow(["step", "layer_bpp", "psnr", "nested_3", "nested_4"])
      w.writerow([int(step), f"{bpp.mean():.4f}", f"{psnr(mse):.3f}",
                  f"{psnr(mse2):.3f}", f"{psnr(mse3):.3f}"])
    print(f"val {int(step)}: layer {bpp.mean():.4f} bpp, {psnr(mse):.2f} dB "
          f"(nested: 3 layers {psnr(mse2):.2f}, 4 layers {psnr(mse3):.2f})",
          flush=True)

  def save():
    manager.save()
    weights.write(str(out / "weights" / "ckpt"))

  signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(
      KeyboardInterrupt()))
  if int(step) == 0 or (args.init and not manager.latest_checkpoint):
    validate()  # where the run starts
  data = training_crops(train_paths, args.patch, args.batch,
                        args.seed + int(step))
  sums, count, t0, t_save = np.zeros(3), 0, time.time(), time.time()
  try:
    while int(step) < args.steps:
      s = int(step)
      lr.assign(args.lr * (0.1 if s >= 0.9 * args.steps else 1.0))
      ramp = min(1.0, s / args.rate_warmup) if args.rate_warmup else 1.0
      loss, bpp, mse = (t.numpy() for t in train_step(
          next(data), tf.constant(ramp, tf.float32)))
      if not np.isfinite(loss):
        print(f"step {s}: loss {loss}: stopping", flush=True)
        return 1
      sums += (loss, bpp, mse)
      count += 1
      step.assign_add(1)
      s += 1
      if s % 100 == 0:
        new = not (out / "log.csv").exists()
        with open(out / "log.csv", "a", newline="") as f:
          w = csv.writer(f)
          if new:
            w.writerow(["step", "seconds", "loss", "bpp", "mse"])
          w.writerow([s, f"{time.time() - t0:.0f}"] +
                     [f"{v:.4f}" for v in sums / count])
        print(f"{s}: loss {sums[0] / count:.4f} bpp {sums[1] / count:.4f} "
              f"mse {sums[2] / count:.2f} ({time.time() - t0:.0f} s)",
              flush=True)
        sums[:], count = 0, 0
      if s % args.validate_every == 0:
        validate()
      if time.time() - t_save > SAVE_SECONDS:
        save()
        t_save = time.time()
  except KeyboardInterrupt:
    save()
    print(f"stopped at step {int(step)}, saved", flush=True)
    return 130
  save()
  validate()
  return 0


if __name__ == "__main__":
  sys.exit(main())
