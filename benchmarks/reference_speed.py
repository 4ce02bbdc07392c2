"""SAE's base layer against tensorflow-compression's reference bls2017 model.

    python benchmarks/reference_speed.py --bls2017 PATH/TO/compression/models/bls2017.py

Same architecture (48 filters), same batches (batch 8, 256x256 crops), same
optimizer (Adam): seconds per training step, then milliseconds per Kodak
image to encode and decode one layer (median, warm process).  bls2017.py is
loaded from a tensorflow/compression checkout (not part of this project);
its tensorflow_datasets import is stubbed.  Pause background training first.
"""

import argparse
import importlib.util
import os
import sys
import time
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import sae  # noqa: E402,F401  before tensorflow: its oneDNN default
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_compression as tfc  # noqa: E402

from sae import codec  # noqa: E402
from sae.train import data, train_steps
from sae.config import get_preset  # noqa: E402
from sae.models.model import ScalableAutoEncoder  # noqa: E402


def load_bls2017(path):
  sys.modules.setdefault("tensorflow_datasets", types.ModuleType("tfds"))
  spec = importlib.util.spec_from_file_location("bls2017", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def time_steps(step, batches, n):
  step(batches[0])  # trace
  t0 = time.perf_counter()
  for i in range(n):
    float(step(batches[i % len(batches)]))
  return (time.perf_counter() - t0) / n


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--bls2017", required=True, help="path of models/bls2017.py")
  p.add_argument("--corpus", default="corpus/clic2018",
                 help="training images (any PNG/JPEG folder; see corpus/README.md)")
  p.add_argument("--kodak", default="kodak",
                 help="folder of the Kodak images (python test_el3.py "
                 "downloads them into kodak/)")
  p.add_argument("--steps", type=int, default=40)
  p.add_argument("--rounds", type=int, default=3)
  args = p.parse_args(argv)
  print("command: python benchmarks/reference_speed.py "
        + " ".join(argv if argv is not None else sys.argv[1:]))
  spec = get_preset("paper").layers[0]
  it = iter(data.training_dataset(args.corpus, 256, 8, seed=0))
  batches = [next(it) for _ in range(8)]

  model = ScalableAutoEncoder([spec])
  variables = model.set_trainable_layer(0)
  sae_step = train_steps.make_train_step(model, 0, variables, tf.keras.optimizers.Adam(1e-4),
                                   tf.distribute.get_strategy(), 8)
  sae_step_loss = lambda x: sae_step(x)[0]  # noqa: E731

  bls = load_bls2017(args.bls2017).BLS2017Model(spec.lmbda, spec.conv_filters)
  bls_opt = tf.keras.optimizers.Adam(1e-4)

  @tf.function
  def bls_step(x):
    with tf.GradientTape() as tape:
      loss, _, _ = bls(x, training=True)
    grads = tape.gradient(loss, bls.trainable_variables)
    bls_opt.apply_gradients(zip(grads, bls.trainable_variables))
    return loss

  sae_times, bls_times = [], []
  for _ in range(args.rounds):  # alternate so both see the same machine load
    sae_times.append(time_steps(sae_step_loss, batches, args.steps))
    bls_times.append(time_steps(bls_step, batches, args.steps))
  print(f"train step (s)  SAE base {np.median(sae_times):.3f}   "
        f"bls2017 {np.median(bls_times):.3f}   ratio "
        f"{np.median(sae_times) / np.median(bls_times):.2f}")

  model.prepare_for_coding()
  bls.entropy_model = tfc.ContinuousBatchedEntropyModel(
      bls.prior, coding_rank=3, compression=True)
  images = [data.load_image(p) for p in data.list_images(args.kodak)]
  rows = {"SAE base": [], "bls2017": []}
  for image in [images[0]] + images:  # the first pass traces
    t0 = time.perf_counter()
    stream = codec.encode(model, image, 1)
    t1 = time.perf_counter()
    codec.decode(model, stream)
    t2 = time.perf_counter()
    tensors = bls.compress(image)
    t3 = time.perf_counter()
    bls.decompress(*tensors).numpy()
    t4 = time.perf_counter()
    rows["SAE base"].append((t1 - t0, t2 - t1))
    rows["bls2017"].append((t3 - t2, t4 - t3))
  for name, values in rows.items():
    enc, dec = np.median(np.array(values[1:]), axis=0) * 1000
    print(f"{name:<9} encode {enc:7.1f} ms   decode {dec:7.1f} ms  (median, "
          f"{len(values) - 1} Kodak images)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
