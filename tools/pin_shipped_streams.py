"""Pins what each shipped model makes of two small generated images.

    python tools/pin_shipped_streams.py [--out tests/shipped_streams.json]

For each shipped weights folder (``shipped_models()``: every
weights/<model>/ with a config.json) it codes two
small deterministic images with all the model's layers and records the
SHA-256 of each stream, the bytes of each prefix that ``truncate`` cuts
out of it, and the PSNR-RGB and MS-SSIM-RGB of each prefix decoded.
tests/test_shipped_weights.py checks the shipped models against these pins
in seconds: a changed weight, coding table or stream byte fails it.

Run it deliberately, and commit its output with the change that explains
it: when the stream format changes (a new container version), or when a
model is retrained and shipped. The full re-evaluation on Kodak
(``pytest -m full``) then checks the committed results.
"""

import argparse
import hashlib
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

import sae  # noqa: E402,F401  before tensorflow: oneDNN as users get it
from sae.fileio import write_json  # noqa: E402

PINS = ROOT / "tests" / "shipped_streams.json"

# (name, height, width, seed): one a multiple of the stride, one not (the
# border padding is coded too).
IMAGES = (("gradients-64x96", 64, 96, 1), ("odd-45x70", 45, 70, 2))


def shipped_models() -> list:
  """The shipped weights folders, relative to the repository: the one list
  the pins, the fuzzer and the tests of shipped weights use."""
  return sorted(str(p.parent.relative_to(ROOT))
                for p in (ROOT / "weights").glob("*/config.json"))


def results_file(folder) -> str:
  """The committed Kodak results of a shipped weights folder, named as the
  evaluation names the model (sae.config.model_name)."""
  from sae import checkpoints  # pylint: disable=import-outside-toplevel
  from sae.config import model_name  # pylint: disable=import-outside-toplevel
  config = checkpoints.read_config(ROOT / folder)
  return f"results/kodak/{model_name(config.family, config.metric)}.json"


def test_image(height: int, width: int, seed: int) -> np.ndarray:
  """A deterministic uint8 HxWx3 image: gradients, blocks and fine noise.

  Integer arithmetic and numpy's PCG64 integers only, so every platform
  makes the same pixels (their SHA-256 is pinned too).
  """
  rng = np.random.Generator(np.random.PCG64(seed))
  y, x = np.mgrid[0:height, 0:width].astype(np.int64)
  ramp = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                   (x + y) * 255 // max(height + width - 2, 1)], axis=-1)
  blocks = rng.integers(-48, 49, (height // 8 + 1, width // 8 + 1, 3))
  blocks = blocks.repeat(8, axis=0).repeat(8, axis=1)[:height, :width]
  noise = rng.integers(-6, 7, (height, width, 3))
  return np.clip(ramp + blocks + noise, 0, 255).astype(np.uint8)


def sha256(data) -> str:
  return hashlib.sha256(bytes(data)).hexdigest()


def measure(model, image: np.ndarray) -> dict:
  """The stream of all the model's layers and what each prefix decodes to."""
  from sae.stream import bitstream  # pylint: disable=import-outside-toplevel
  from sae import codec
  from sae.eval import metrics
  stream = codec.encode(model, image, model.num_layers)
  row = {"sha256": sha256(stream), "bytes": [], "psnr-rgb": [],
         "ms-ssim-rgb": []}
  for k in range(1, model.num_layers + 1):
    cut = bitstream.truncate(stream, k)
    decoded = codec.decode(model, cut)
    row["bytes"].append(len(cut))
    row["psnr-rgb"].append(metrics.psnr(image, decoded))
    row["ms-ssim-rgb"].append(metrics.ms_ssim(image, decoded))
  return row


def pins() -> dict:
  from sae import checkpoints  # pylint: disable=import-outside-toplevel
  images = {name: test_image(h, w, seed) for name, h, w, seed in IMAGES}
  from sae.stream import bitstream  # pylint: disable=import-outside-toplevel
  out = {
      "about": "What each shipped model makes of two generated images "
               "(tools/pin_shipped_streams.py, which regenerates this file; "
               "checked by tests/test_shipped_weights.py).",
      "stream_version": bitstream.VERSION,
      "images": {name: {"height": h, "width": w, "seed": seed,
                        "pixels_sha256": sha256(images[name].tobytes())}
                 for name, h, w, seed in IMAGES},
      "models": {}}
  for folder in shipped_models():
    model = checkpoints.load_model(ROOT / folder)
    out["models"][folder] = {
        "weights_ids": [i.hex() for i in model.weights_ids()],
        "streams": {name: measure(model, image)
                    for name, image in images.items()}}
  return out


def main(argv=None) -> int:
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--out", default=str(PINS), help="JSON to write")
  args = p.parse_args(argv)
  write_json(args.out, pins())
  print(f"-> {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
