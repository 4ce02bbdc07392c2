"""Seconds per training step per layer, and how long the trainer waits for data.

    python benchmarks/train_speed.py --layers 0 3 --steps 50

Paper preset of --family (the cascade: 48 filters), batch 8, 256x256 crops
from --corpus, loss with --metric (mse or ms-ssim); --joint adds the joint
phase's step.  Lower layers use their initial weights (speed does not
depend on their values).
Pause background training while measuring.
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import sae  # noqa: E402,F401  before tensorflow: its oneDNN default
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sae.train import data, train_steps  # noqa: E402
from sae.models import families
from sae.config import ModelConfig, layer_name  # noqa: E402


def measure(k, args):
  """(median seconds per step, share of the time spent waiting for data)
  of training layer ``k`` (None: the joint phase of every layer)."""
  preset = families.get(args.family).preset("paper", args.metric)
  layers = preset.layers if k is None else preset.layers[:k + 1]
  model = families.build_model(ModelConfig(
      layers, preset="paper", metric=args.metric, family=args.family))
  if k is None:
    model.prepare_for_coding()
    variables = model.set_trainable_layers(range(model.num_layers))
    forward = train_steps.joint_forward(model, [1.0] * model.num_layers)
  else:
    for codec in model.codecs[:k]:
      codec.prepare_for_coding()
    model.start_layer(k)
    variables = model.set_trainable_layer(k)
    forward = train_steps.layer_forward(model, k)
  optimizer = tf.keras.optimizers.Adam(1e-4)
  step = train_steps.make_train_step(
      forward, variables, optimizer, tf.distribute.get_strategy(),
      args.batch_size, jit_compile=args.jit)
  if k and model.lower_of_image(k) is not None and not args.lower_per_crop:
    dataset = data.residual_training_dataset(
        args.corpus, args.patch_size, args.batch_size, model.lower_of_image(k))
  else:
    dataset = data.training_dataset(args.corpus, args.patch_size,
                                    args.batch_size, cache=not args.no_cache)
  it = iter(dataset)
  for _ in range(args.warmup):
    step(next(it)).numpy()
  wait, busy = [], []
  for _ in range(args.steps):
    t0 = time.perf_counter()
    x = next(it)
    t1 = time.perf_counter()
    step(x).numpy()
    t2 = time.perf_counter()
    wait.append(t1 - t0)
    busy.append(t2 - t1)
  total = np.sum(wait) + np.sum(busy)
  return np.median(np.add(wait, busy)), np.sum(wait) / total


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--layers", type=int, nargs="+", default=[0, 3])
  p.add_argument("--steps", type=int, default=50)
  p.add_argument("--warmup", type=int, default=5)
  p.add_argument("--batch-size", type=int, default=8)
  p.add_argument("--patch-size", type=int, default=256)
  p.add_argument("--corpus", default="corpus/clic2018",
                 help="training images (any PNG/JPEG folder; see corpus/README.md)")
  p.add_argument("--metric", choices=("mse", "ms-ssim"), default="mse",
                 help="distortion of the loss (its cost is part of a step)")
  p.add_argument("--jit", action="store_true", help="XLA jit_compile")
  p.add_argument("--family", choices=tuple(families.FAMILIES), default="sae",
                 help="model family of the layer table")
  p.add_argument("--joint", action="store_true",
                 help="also the joint phase's step (every layer, train_joint.py)")
  p.add_argument("--lower-per-crop", action="store_true",
                 help="ELs: run the lower layers on every crop (train.py "
                 "--lower-cache off) instead of precomputed residuals")
  p.add_argument("--no-cache", action="store_true",
                 help="decode images every time instead of keeping them")
  args = p.parse_args(argv)
  print(f"command: python benchmarks/train_speed.py {' '.join(argv or sys.argv[1:])}")
  print(f"{'layer':<6}{'s/step':>9}{'steps/s':>9}{'input wait':>12}")
  for k in args.layers + ([None] if args.joint else []):
    seconds, wait = measure(k, args)
    name = "joint" if k is None else layer_name(k)
    print(f"{name:<6}{seconds:>9.3f}{1 / seconds:>9.2f}{wait:>11.1%}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
