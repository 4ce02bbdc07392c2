"""A folder compressed in one command against one cold start plus warm coding.

    nice -n 10 python benchmarks/folder_speed.py [--kodak DIR] [--weights DIR]

Measured in one run, in this order: ``python -m sae compress`` of one image
(a cold start: a fresh process, wall time), ``python -m sae compress DIR
OUT/`` of the whole folder (wall time), and in this process, warm, the
encode time of every image (sae.codec.encode, all layers, after tracing).
Printed: the folder command's wall time and its ratio to one cold start
plus the sum of the warm encode times (the issue's target: at most 1.2).
"""

import argparse
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _wall(argv) -> float:
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  t0 = time.perf_counter()
  subprocess.run(argv, cwd=ROOT, env=env, check=True, capture_output=True)
  return time.perf_counter() - t0


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--kodak", default=str(ROOT / "kodak"),
                 help="image folder (default: kodak/)")
  p.add_argument("--weights", default=str(ROOT / "weights" / "mse"))
  args = p.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  from sae.eval import kodak
  paths = kodak.ensure_images(args.kodak, progress=False)
  py, weights = sys.executable, ["--weights", args.weights]
  load = os.getloadavg()[0]
  with tempfile.TemporaryDirectory() as tmp:
    cold = _wall([py, "-m", "sae", "compress", paths[0],
                  pathlib.Path(tmp) / "one.sae", *weights])
    folder = _wall([py, "-m", "sae", "compress", args.kodak,
                    pathlib.Path(tmp) / "out", "--no-progress", *weights])
  from sae import checkpoints, codec
  from sae.eval import evaluate
  from sae.images import load_image
  model = checkpoints.load_model(args.weights)
  evaluate.warm_up(model, model.num_layers)
  warm = 0.0
  for path in paths:
    image = load_image(path)
    t0 = time.perf_counter()
    codec.encode(model, image, model.num_layers)
    warm += time.perf_counter() - t0
  print("command: python benchmarks/folder_speed.py " + " ".join(
      argv if argv is not None else sys.argv[1:]))
  print(f"{len(paths)} images, {model.num_layers} layers; load (1-minute "
        f"average) {load:.1f} before, {os.getloadavg()[0]:.1f} after")
  print(f"one cold compress (wall)          {cold:8.2f} s")
  print(f"warm encode, sum over the images  {warm:8.2f} s "
        f"({warm / len(paths) * 1e3:.0f} ms per image)")
  print(f"compress of the folder (wall)     {folder:8.2f} s")
  print(f"folder / (cold + warm sum)        {folder / (cold + warm):8.2f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
