"""A probe: keep the shipped top decoder's first two layers (its /16 -> /8
-> /4 transposed convolutions, which read the code) and train a cheap
sub-pixel tail from their /4 features to the image, on the frozen top.

    python research/subpixel_top/train_tail.py --corpus DATA/train \
        --out checkpoints/subpixel-top --steps 6000

It reuses train_decoder.py's cache in --out/cache (run that first) and
adds the shipped decoder's /4 features (float16).  Why: a whole sub-pixel
decoder trained on the frozen code ended 1.1 dB under the shipped one on
the held-out photographs (docs/sae2.md, session 31); the shipped decoder's
first layers already read the code, and the costly part is the last two
up-samplings and the full-resolution refinement.
"""

import argparse
import csv
import pathlib
import sys
import time

import numpy as np
import tensorflow as tf

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_decoder import (ROOT, STRIDE, cached, psnr, split,  # noqa: E402
                           with_teacher)

from sae.entropy.conditional import PixelShuffle, _conv  # noqa: E402
from sae.models.transforms import Transform  # noqa: E402

REUSE = 2  # the shipped synthesis' layers kept: /16 -> /4
FACTOR = 4  # the features' resolution below the image's


def tail_transform(hidden=16, refine=32):
  """[features /4] -> features /2 ; [features /2, x̂₂/255 in 2x2] -> residual."""
  up = Transform([_conv(4 * hidden, 3, "up", activation=tf.nn.relu),
                  PixelShuffle(name="shuffle_up")], name="tail_up")
  out = Transform([_conv(refine, 3, "refine_0", activation=tf.nn.relu),
                   _conv(12, 3, "refine_1", small=1e-4),
                   PixelShuffle(name="shuffle_out")], name="tail_out")
  return up, out


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--corpus", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--weights", default=str(ROOT / "weights" / "sae-conditional"))
  p.add_argument("--steps", type=int, default=6000)
  p.add_argument("--lr", type=float, default=5e-4)
  p.add_argument("--distill", type=float, default=1.0)
  p.add_argument("--hidden", type=int, default=16)
  p.add_argument("--refine", type=int, default=32)
  args = p.parse_args(argv)
  from sae import checkpoints
  out = pathlib.Path(args.out)
  shipped = checkpoints.load_model(args.weights)
  top = shipped.top
  train_paths, held_paths = split(args.corpus)
  held = cached(shipped, held_paths, out / "cache" / "held.npz")
  train = cached(shipped, train_paths, out / "cache" / "train.npz")
  with_teacher(shipped, train, out / "cache" / "teacher.npz")
  head = top.synthesis.layers[:REUSE]

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, None])])
  def features(cond):
    for layer in head:
      cond = layer(cond)
    return cond

  for d in train + held:
    d["features"] = features(d["cond"][None]).numpy()[0].astype(np.float16)
    d.pop("cond")
  print("features cached", flush=True)
  up, tail = tail_transform(args.hidden, args.refine)
  channels = head[-1].filters
  up.build((None, None, None, channels))
  tail.build((None, None, None, args.hidden + 12))

  def decode(x_lower, f):
    return x_lower + tail(tf.concat(
        [up(f), tf.nn.space_to_depth(x_lower / 255, 2)], -1))

  variables = up.trainable_variables + tail.trainable_variables
  optimizer = tf.keras.optimizers.Adam(args.lr)
  img = tf.TensorSpec([None, None, None, 3])
  sig = [img, img, tf.TensorSpec([None, None, None, channels]), img]

  @tf.function(input_signature=sig)
  def step(x, x_lower, f, teacher):
    with tf.GradientTape() as tape:
      x_hat = decode(x_lower, f)
      mse = tf.reduce_mean(tf.math.squared_difference(x, x_hat))
      loss = mse + args.distill * tf.reduce_mean(
          tf.math.squared_difference(teacher, x_hat))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return mse

  evaluate = tf.function(decode, input_signature=sig[1:3])

  def validate(s):
    errs = []
    for d in held:
      h, w = d["hw"]
      new = evaluate(d["x_lower"][None], d["features"][None].astype(
          np.float32)).numpy()[0, :h, :w]
      errs.append(np.mean((d["x"][:h, :w].astype(np.float64) -
                           np.clip(np.round(new), 0, 255)) ** 2))
    v = psnr(errs).mean()
    print(f"val {s}: {v:.3f} dB", flush=True)
    with open(out / f"tail-{args.hidden}-{args.refine}.csv", "a") as f:
      csv.writer(f).writerow([s, f"{v:.3f}"])

  rng, n, total, t0 = np.random.default_rng(1), 256 // STRIDE, 0.0, time.time()
  validate(0)
  for s in range(1, args.steps + 1):
    if s == int(0.85 * args.steps):
      optimizer.learning_rate.assign(args.lr / 10)
    xs, lows, fs, ts = [], [], [], []
    for i in rng.integers(len(train), size=8):
      d = train[i]
      hh, ww = d["features"].shape[0] // FACTOR, d["features"].shape[1] // FACTOR
      a, b = rng.integers(hh - n + 1) * STRIDE, rng.integers(ww - n + 1) * STRIDE
      xs.append(d["x"][a:a + 256, b:b + 256])
      lows.append(d["x_lower"][a:a + 256, b:b + 256])
      ts.append(d["teacher"][a:a + 256, b:b + 256])
      fs.append(d["features"][a // FACTOR:(a + 256) // FACTOR,
                              b // FACTOR:(b + 256) // FACTOR])
    total += float(step(np.stack(xs).astype(np.float32), np.stack(lows),
                        np.stack(fs).astype(np.float32),
                        np.stack(ts).astype(np.float32)))
    if s % 100 == 0:
      print(f"{s}: mse {total / 100:.2f} ({time.time() - t0:.0f} s)",
            flush=True)
      total = 0.0
    if s % 500 == 0:
      validate(s)
  return 0


if __name__ == "__main__":
  sys.exit(main())
