"""Quality per layer on photographs whose sides are not multiples of 16.

    python benchmarks/other_sizes.py --images kodak --weights weights/mse

Each photograph of --images is cut to a random size whose height and width
are not multiples of 16 (1 to 15 pixels off, at a random offset; --seed),
coded with every layer by the codec (real bytes, the project's protocol)
and measured.  Prints the mean bpp and PSNR of each cumulative layer, and
how many photographs gain PSNR with every layer; exits 1 if one does not.
"""

import argparse
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import sae  # noqa: E402,F401  before tensorflow: its oneDNN default
import numpy as np  # noqa: E402

from sae import checkpoints  # noqa: E402
from sae.eval import evaluate, kodak
from sae.images import load_image  # noqa: E402
from sae.models.transforms import TOTAL_STRIDE  # noqa: E402


def odd_crop(image, rng):
  """``image`` cut by 1..15 rows and columns: sides not multiples of 16."""
  h, w = image.shape[:2]
  cut_h, cut_w = (int(rng.integers(1, TOTAL_STRIDE)) for _ in range(2))
  cut_h += (h - cut_h) % TOTAL_STRIDE == 0  # the cut itself may land on one
  cut_w += (w - cut_w) % TOTAL_STRIDE == 0
  top, left = int(rng.integers(0, cut_h + 1)), int(rng.integers(0, cut_w + 1))
  return image[top:top + h - cut_h, left:left + w - cut_w]


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--images", default=kodak.DEFAULT_FOLDER,
                 help="folder of PNG/JPEG photographs")
  p.add_argument("--weights", default=str(checkpoints.DEFAULT_WEIGHTS))
  p.add_argument("--seed", type=int, default=0)
  args = p.parse_args(argv)
  print(f"command: python benchmarks/other_sizes.py "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}")
  model = checkpoints.load_model(args.weights)
  layers = model.num_layers
  paths = [pathlib.Path(p) for p in kodak.ensure_images(args.images)]
  rng = np.random.default_rng(args.seed)
  evaluate.warm_up(model, layers)
  rows, rising = [], []
  for path in paths:
    image = odd_crop(load_image(path), rng)
    assert all(side % TOTAL_STRIDE for side in image.shape[:2])
    row, _ = evaluate.evaluate_image(model, image, path.name, layers)
    rows.append(row)
    psnr = row["psnr-rgb"]
    rising.append(all(a < b for a, b in zip(psnr, psnr[1:])))
    print(f"{path.name:<16}{image.shape[0]:>5}x{image.shape[1]:<5}"
          + "".join(f"{b:8.4f}{q:7.2f}" for b, q in zip(row["bpp"], psnr)))
  bpp = np.mean([r["bpp"] for r in rows], axis=0)
  psnr = np.mean([r["psnr-rgb"] for r in rows], axis=0)
  print(f"{'mean':<27}" + "".join(f"{b:8.4f}{q:7.2f}" for b, q in zip(bpp, psnr)))
  print(f"PSNR rises with every layer on {sum(rising)} of {len(rows)} "
        "photographs")
  return 0 if all(rising) else 1


if __name__ == "__main__":
  sys.exit(main())
