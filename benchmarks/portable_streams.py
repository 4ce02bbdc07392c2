"""Do a model's streams decode the same under other float arithmetic?

    python benchmarks/portable_streams.py --weights weights/sae-nested \
        [--weights weights/legacy/sae-nested-1ba8bfab] --images KODAK

Every image is encoded once here, with all the model's layers.  The streams
are then decoded in fresh processes, one per setting: TensorFlow's oneDNN
kernels on and off (TF_ENABLE_ONEDNN_OPTS) crossed with TensorFlow's
default thread pools and a single thread.  Each decoded image is compared
with the decode of the encoding process itself: printed per setting, how
many streams decoded, how many to identical pixels, the largest pixel
difference, and the largest PSNR difference (dB) against the original.
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

SETTINGS = [(onednn, threads) for onednn in ("1", "0") for threads in (0, 1)]

_DECODER = """
import sys, pathlib, numpy as np, tensorflow as tf
threads = int(sys.argv[3])
if threads:
  tf.config.threading.set_intra_op_parallelism_threads(threads)
  tf.config.threading.set_inter_op_parallelism_threads(threads)
from sae import checkpoints, codec
from sae.errors import InputError
model = checkpoints.load_model(sys.argv[1])
for path in sorted(pathlib.Path(sys.argv[2]).glob("*.sae")):
  try:
    np.save(path.with_suffix(".npy"), codec.decode(model, path.read_bytes()))
  except InputError as e:
    print(f"{path.name}: {e}", file=sys.stderr)
"""


def psnr(a, b):
  mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
  return 10 * np.log10(255 ** 2 / mse) if mse else float("inf")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--weights", action="append", required=True)
  p.add_argument("--images", required=True)
  p.add_argument("--limit", type=int, default=None)
  args = p.parse_args(argv)
  from sae import checkpoints, codec, images
  paths = images.list_images(args.images)[:args.limit]
  originals = [images.load_image(path) for path in paths]
  for weights in args.weights:
    model = checkpoints.load_model(weights)
    with tempfile.TemporaryDirectory() as tmp:
      here = []
      for i, image in enumerate(originals):
        data = codec.encode(model, image, model.num_layers)
        (pathlib.Path(tmp) / f"{i:03d}.sae").write_bytes(data)
        here.append(codec.decode(model, data))
      print(f"{weights}: {len(paths)} images encoded with "
            f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}")
      for onednn, threads in SETTINGS:
        for old in pathlib.Path(tmp).glob("*.npy"):
          old.unlink()
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=onednn,
                   PYTHONPATH=str(ROOT))
        run = subprocess.run(
            [sys.executable, "-c", _DECODER, weights, tmp, str(threads)],
            env=env, cwd=ROOT, capture_output=True, text=True)
        decoded = same = 0
        diff, dpsnr = 0, 0.0
        for i, (image, mine) in enumerate(zip(originals, here)):
          out = pathlib.Path(tmp) / f"{i:03d}.npy"
          if not out.exists():
            continue
          theirs = np.load(out)
          decoded += 1
          same += int(np.array_equal(theirs, mine))
          diff = max(diff, int(np.abs(theirs.astype(int) - mine).max()))
          dpsnr = max(dpsnr, abs(psnr(image, theirs) - psnr(image, mine)))
        refused = run.stderr.strip().splitlines()
        print(f"  oneDNN {onednn}, threads {threads or 'default'}: "
              f"{decoded}/{len(paths)} decoded, {same} identical pixels, "
              f"max pixel diff {diff}, max PSNR diff {dpsnr:.4f} dB"
              + (f"; first refusal: {refused[0]}" if refused else ""))
  return 0


if __name__ == "__main__":
  sys.exit(main())
