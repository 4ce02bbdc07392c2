"""Trains a sub-pixel decoder for weights/sae-conditional's top layer on its
frozen analysis and context: the stream stays byte for byte the same, only
the decoder (synthesis and refinement) changes, and only distortion trains
(to the photograph, and to the shipped decoder's image: without that
target it learnt nothing in 1,000 steps).  A research run, outside the
package; resumable.  Session 31's run missed its gate (docs/sae2.md).

    nohup python research/subpixel_top/train_decoder.py --corpus DATA/train \
        --out checkpoints/subpixel-top > logs/subpixel-top.log 2>&1 &

Why: the shipped top decodes in 3.9x the faithful model's four-layer time,
against a target of 2x; its synthesis and refinement are 16 of its 18
billion multiply-adds on a Kodak image (docs/sae2.md, session 31).
sae.entropy.conditional.subpixel_* is a seventh of that.

The frozen part runs once: every photograph of SAE-2's split (research/
sae2/train_top.py: every 16th held out) is coded whole, as the decoder
sees it (ŵ rounded around the exact context's means, ŷ₃, x̂₂), and cached
in --out/cache.  Training then reads random 16-aligned crops of those
tensors, so a step costs the new decoder alone.  val.csv: PSNR of the 16
held-out photographs whole, beside the shipped decoder's and the three
layers' on the same tensors.  --out/cache holds about 2 GB.
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
from train_top import split, decode  # noqa: E402

from sae.entropy import conditional  # noqa: E402

SAVE_SECONDS = 300
STRIDE = 16


def code_photos(model, paths):
  """Per photograph: x (padded, uint8), x̂₂, and [ŵ, ŷ₃] as decoded."""
  from sae.models.transforms import pad_to_stride
  top = model.top

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3])])
  def frozen(x):
    x = pad_to_stride(x)
    y_lower, x_lower = model._ladder_top(x)
    w = top.analysis(tf.concat([x, x_lower], -1))
    mean, _ = top.coded_parameters(y_lower)
    w_hat = tf.round(w - mean) + mean
    return x, x_lower, tf.concat([w_hat, y_lower], -1)

  out = []
  for i, p in enumerate(paths):
    img = decode(p).numpy()
    x, x_lower, cond = (t.numpy()[0] for t in frozen(
        tf.constant(img[None], tf.float32)))
    out.append(dict(x=x.astype(np.uint8), x_lower=x_lower, cond=cond,
                    hw=np.array(img.shape[:2])))
    if i % 32 == 0:
      print(f"coded {i + 1}/{len(paths)}", flush=True)
  return out


def cached(model, paths, file):
  if file.exists():
    with np.load(file) as f:
      n = int(f["n"])
      return [{k: f[f"{i}_{k}"] for k in ("x", "x_lower", "cond", "hw")}
              for i in range(n)]
  photos = code_photos(model, paths)
  tmp = file.with_suffix(".tmp.npz")
  np.savez(tmp, n=len(photos), **{f"{i}_{k}": v for i, d in enumerate(photos)
                                  for k, v in d.items()})
  tmp.rename(file)
  return photos


def with_teacher(model, photos, file):
  """Adds the shipped decoder's image (float16) to every photograph: the
  distillation target (cached in ``file``)."""
  if file.exists():
    with np.load(file) as f:
      for i, d in enumerate(photos):
        d["teacher"] = f[str(i)]
    return
  top = model.top
  channels = top.spec.latent_channels

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, None]),
                                tf.TensorSpec([1, None, None, 3])])
  def teacher(cond, x_lower):
    return top.reconstruct(cond[..., :channels], cond[..., channels:],
                           x_lower)

  for d in photos:
    d["teacher"] = teacher(d["cond"][None], d["x_lower"][None]).numpy()[
        0].astype(np.float16)
  tmp = file.with_suffix(".tmp.npz")
  np.savez(tmp, **{str(i): d["teacher"] for i, d in enumerate(photos)})
  tmp.rename(file)


def crops(photos, patch, batch, rng):
  """A batch of random crops, 16-aligned, of x, x̂₂, [ŵ, ŷ₃] and the
  shipped decoder's image."""
  xs, lows, conds, teachers = [], [], [], []
  n = patch // STRIDE
  for i in rng.integers(len(photos), size=batch):
    d = photos[i]
    h, w = d["cond"].shape[:2]
    a, b = rng.integers(h - n + 1), rng.integers(w - n + 1)
    xs.append(d["x"][a * STRIDE:(a + n) * STRIDE, b * STRIDE:(b + n) * STRIDE])
    lows.append(d["x_lower"][a * STRIDE:(a + n) * STRIDE,
                             b * STRIDE:(b + n) * STRIDE])
    conds.append(d["cond"][a:a + n, b:b + n])
    teachers.append(d["teacher"][a * STRIDE:(a + n) * STRIDE,
                                 b * STRIDE:(b + n) * STRIDE])
  return (np.stack(xs).astype(np.float32), np.stack(lows), np.stack(conds),
          np.stack(teachers).astype(np.float32))


class SubpixelDecoder(tf.Module):

  def __init__(self, spec, condition_channels):
    super().__init__(name="subpixel_decoder")
    self.synthesis = conditional.subpixel_synthesis_transform(spec)
    self.refine = conditional.subpixel_refine_transform()
    self.synthesis.build(
        (None, None, None, spec.latent_channels + condition_channels))
    self.refine.build(
        (None, None, None, conditional.SUBPIXEL_WIDTHS[3] + 12))

  def __call__(self, cond, x_lower):
    features = self.synthesis(cond)
    return x_lower + self.refine(
        tf.concat([features, tf.nn.space_to_depth(x_lower / 255, 2)], -1))


def psnr(mse):
  return 10 * np.log10(255 ** 2 / np.asarray(mse))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--corpus", required=True)
  p.add_argument("--out", required=True)
  p.add_argument("--weights", default=str(ROOT / "weights" / "sae-conditional"))
  p.add_argument("--steps", type=int, default=30000)
  p.add_argument("--decay-from", type=int, default=None,
                 help="step from which Adam's rate is a tenth (default: 90 %% "
                 "of --steps)")
  p.add_argument("--patch", type=int, default=256)
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--lr", type=float, default=5e-4,
                 help="Adam's rate (1e-4 left the decoder at the three "
                 "layers' image for 1,000 steps)")
  p.add_argument("--validate-every", type=int, default=1000)
  p.add_argument("--distill", type=float, default=1.0,
                 help="weight of the squared error to the shipped decoder's "
                 "image, added to the error to the photograph (without it "
                 "1,000 steps learnt nothing: docs/sae2.md, session 31)")
  p.add_argument("--seed", type=int, default=1)
  args = p.parse_args(argv)
  decay_from = args.decay_from or int(0.9 * args.steps)

  from sae import checkpoints
  out = pathlib.Path(args.out)
  (out / "cache").mkdir(parents=True, exist_ok=True)
  shipped = checkpoints.load_model(args.weights)
  train_paths, held_paths = split(args.corpus)
  held = cached(shipped, held_paths, out / "cache" / "held.npz")
  train = cached(shipped, train_paths, out / "cache" / "train.npz")
  with_teacher(shipped, train, out / "cache" / "teacher.npz")
  print(f"{len(train)} training and {len(held)} held-out photographs coded",
        flush=True)

  top = shipped.top
  model = SubpixelDecoder(top.spec, shipped.specs[0].latent_channels)
  optimizer = tf.keras.optimizers.Adam(learning_rate=args.lr)
  step = tf.Variable(0, dtype=tf.int64, trainable=False)
  objects = dict(synthesis=model.synthesis, refine=model.refine)
  ckpt = tf.train.Checkpoint(step=step, optimizer=optimizer, **objects)
  manager = tf.train.CheckpointManager(ckpt, out / "train", max_to_keep=1)
  weights = tf.train.Checkpoint(step=step, **objects)
  if manager.latest_checkpoint:
    ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    print(f"resumed at step {int(step)}", flush=True)
  variables = model.trainable_variables
  channels = top.spec.latent_channels + shipped.specs[0].latent_channels
  sig = [tf.TensorSpec([None, None, None, 3]),
         tf.TensorSpec([None, None, None, 3]),
         tf.TensorSpec([None, None, None, channels])]

  @tf.function(input_signature=sig + sig[:1])
  def train_step(x, x_lower, cond, teacher):
    with tf.GradientTape() as tape:
      x_hat = model(cond, x_lower)
      mse = tf.reduce_mean(tf.math.squared_difference(x, x_hat))
      loss = mse + args.distill * tf.reduce_mean(
          tf.math.squared_difference(teacher, x_hat))
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return mse

  @tf.function(input_signature=sig)
  def decoded(x, x_lower, cond):
    del x
    return model(cond, x_lower), top.reconstruct(
        cond[..., :top.spec.latent_channels],
        cond[..., top.spec.latent_channels:], x_lower)

  def err(a, b, hw):
    a, b = a[:hw[0], :hw[1]], np.clip(np.round(b[:hw[0], :hw[1]]), 0, 255)
    return float(np.mean((a.astype(np.float64) - b) ** 2))

  shipped_psnr = []

  def validate():
    mine, theirs, lower = [], [], []
    for d in held:
      x = d["x"].astype(np.float32)[None]
      new, old = (t.numpy()[0] for t in decoded(x, d["x_lower"][None],
                                                d["cond"][None]))
      mine.append(err(d["x"], new, d["hw"]))
      if not shipped_psnr:
        theirs.append(err(d["x"], old, d["hw"]))
        lower.append(err(d["x"], d["x_lower"], d["hw"]))
    if not shipped_psnr:
      shipped_psnr[:] = [psnr(theirs).mean(), psnr(lower).mean()]
    new = not (out / "val.csv").exists()
    with open(out / "val.csv", "a", newline="") as f:
      w = csv.writer(f)
      if new:
        w.writerow(["step", "psnr", "shipped_decoder", "three_layers"])
      w.writerow([int(step), f"{psnr(mine).mean():.3f}",
                  f"{shipped_psnr[0]:.3f}", f"{shipped_psnr[1]:.3f}"])
    print(f"val {int(step)}: {psnr(mine).mean():.3f} dB (shipped decoder "
          f"{shipped_psnr[0]:.3f}, three layers {shipped_psnr[1]:.3f})",
          flush=True)

  def save():
    manager.save()
    weights.write(str(out / "weights" / "ckpt"))

  signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(
      KeyboardInterrupt()))
  if int(step) == 0:
    validate()
  rng = np.random.default_rng(args.seed + int(step))
  total, count, t0, t_save = 0.0, 0, time.time(), time.time()
  try:
    while int(step) < args.steps:
      s = int(step)
      optimizer.learning_rate.assign(
          args.lr * (0.1 if s >= decay_from else 1.0))
      mse = float(train_step(*crops(train, args.patch, args.batch, rng)))
      if not np.isfinite(mse):
        print(f"step {s}: mse {mse}: stopping", flush=True)
        return 1
      total += mse
      count += 1
      step.assign_add(1)
      s += 1
      if s % 100 == 0:
        new = not (out / "log.csv").exists()
        with open(out / "log.csv", "a", newline="") as f:
          w = csv.writer(f)
          if new:
            w.writerow(["step", "seconds", "mse"])
          w.writerow([s, f"{time.time() - t0:.0f}", f"{total / count:.3f}"])
        print(f"{s}: mse {total / count:.3f} ({time.time() - t0:.0f} s)",
              flush=True)
        total, count = 0.0, 0
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
