"""Classical codecs on the images SAE is tested on: one results JSON per codec.

    python -m sae.eval.bench --images kodak --out-dir results/kodak \
        --codecs jpeg,webp,jpeg2000,jpeg2000-layers,avif,jxl

The protocol is sae.eval.evaluate's (docs/evaluation.md): every image at its own
size; bpp = 8 * bytes / (H * W) of the bytes the codec wrote; PSNR-RGB and
MS-SSIM-RGB (sae.eval.metrics) of the 8-bit decoded image; encode and decode
wall time; means over images per quality point. The JSON schema is
sae.eval.results', plus ``qualities`` (the codec's own setting of
each point).

``jpeg2000-layers`` is encoded once per image with one quality layer per SAE
layer and decoded per prefix of layers: at the paper's true rates (default),
at ``--layer-rates``, or at the cumulative rates of an SAE results JSON
(``--sae-results``: each image at its own SAE rates).
"""

import argparse
import json
import pathlib
import sys
import time

import numpy as np
import tqdm

from sae.eval import classical, kodak, results
from sae.cli import arguments, cli
from sae.errors import InputError

DEFAULT_CODECS = ("jpeg", "webp", "jpeg2000", "jpeg2000-layers", "avif", "jxl")
# Cumulative true bpp of the paper's MSE model, base..+el3 (Jia et al. supp.
# data, docs/rate-correction.md).
PAPER_LAYER_RATES = (0.10, 0.31, 0.78, 1.61)
def measure(codec, images, qualities, progress=False) -> list:
  """Per-image metrics of ``codec`` at each quality.

  Args:
    codec: a ``classical.Codec``.
    images: (name, uint8 HxWx3 array) pairs.
    qualities: the codec's settings, low to high rate.
    progress: show a progress bar.

  Returns:
    The ``per_image`` list of the results JSON.
  """
  per_image = []
  for name, image in tqdm.tqdm(images, desc=codec.name, disable=not progress):
    row = results.new_row(name, image)
    for quality in qualities:
      t0 = time.perf_counter()
      data = codec.encode(image, quality)
      t1 = time.perf_counter()
      decoded = codec.decode(data)
      t2 = time.perf_counter()
      results.record(row, image, data, decoded, t1 - t0, t2 - t1)
    per_image.append(row)
  return per_image


def measure_layers(codec, images, rates, progress=False) -> list:
  """Per-image metrics of each prefix of a layered stream.

  Each image is encoded once; its k-layer point counts the bytes of the
  k-layer stream (``codec.truncate``) and its encoding time is the one
  encode plus the cut.

  Args:
    codec: a ``classical.LayeredJpeg2000``.
    images: (name, uint8 HxWx3 array) pairs.
    rates: cumulative target bpp per layer, or a function of the image name
      that returns them.
    progress: show a progress bar.

  Returns:
    The ``per_image`` list, with each image's ``target_bpp`` added.
  """
  per_image = []
  for name, image in tqdm.tqdm(images, desc=codec.name, disable=not progress):
    targets = [float(r) for r in (rates(name) if callable(rates) else rates)]
    row = results.new_row(name, image)
    row["target_bpp"] = targets
    t0 = time.perf_counter()
    stream = codec.encode(image, targets)
    encoding_time = time.perf_counter() - t0
    for k in range(1, len(targets) + 1):
      t1 = time.perf_counter()
      data = codec.truncate(stream, k)
      t2 = time.perf_counter()
      decoded = codec.decode(data)
      t3 = time.perf_counter()
      results.record(row, image, data, decoded, encoding_time + t2 - t1, t3 - t2)
    per_image.append(row)
  return per_image


def bench_codec(codec, images, qualities=None, progress=False) -> dict:
  """Measures one codec; returns its results JSON as a dict.

  For ``jpeg2000-layers``, ``qualities`` are the layer rates (a sequence, or
  a function of the image name as in ``measure_layers``).
  """
  qualities = codec.qualities if qualities is None else qualities
  description = (f"{codec.description}; {len(images)} images; "
                 "bpp = 8*bytes/(H*W)")
  if isinstance(codec, classical.LayeredJpeg2000):
    per_image = measure_layers(codec, images, qualities, progress)
    num_layers = len(per_image[0]["bpp"])
    labels = [codec.label(k) for k in range(1, num_layers + 1)]
    targets = np.mean([r["target_bpp"] for r in per_image], axis=0).tolist()
    summary = results.summarize(codec.name, description, labels, per_image)
    summary["qualities"] = targets
  else:
    per_image = measure(codec, images, qualities, progress)
    labels = [codec.label(q) for q in qualities]
    summary = results.summarize(codec.name, description, labels, per_image)
    summary["qualities"] = list(qualities)
  return summary


def sae_layer_rates(path):
  """Cumulative SAE bpp from a results JSON: a function of the image name.

  An image the JSON has is coded at its own SAE rates, any other at the mean.
  """
  try:
    summary = json.loads(pathlib.Path(path).read_text())
    mean = [float(b) for b in summary["results"]["bpp"]]
    own = {r["image"]: [float(b) for b in r["bpp"]]
           for r in summary.get("per_image", [])}
  except FileNotFoundError:
    raise InputError(f"SAE results {str(path)!r} do not exist") from None
  except (ValueError, KeyError, TypeError) as e:
    raise InputError(f"SAE results {str(path)!r} are not a results JSON "
                     f"({e})") from None
  return lambda name: own.get(name, mean)


def _rates(text):
  try:
    rates = [float(t) for t in text.split(",") if t.strip()]
  except ValueError:
    raise argparse.ArgumentTypeError(f"not a comma list of bpp: {text!r}"
                                     ) from None
  if not rates or rates[0] <= 0 or any(b <= a for a, b in zip(rates,
                                                              rates[1:])):
    raise argparse.ArgumentTypeError(f"need increasing positive bpp, got "
                                     f"{text!r}")
  return rates


def _codecs(text):
  names = [t.strip() for t in text.split(",") if t.strip()]
  unknown = sorted(set(names) - set(classical.CODECS))
  if unknown or not names:
    raise argparse.ArgumentTypeError(
        f"unknown codec(s) {', '.join(unknown) or '(none)'}; choose from "
        f"{','.join(classical.CODECS)}")
  return names


def parser() -> argparse.ArgumentParser:
  p = cli.Parser(
      prog="python -m sae.eval.bench", description="Measure classical codecs with SAE's evaluation protocol; "
      "one results JSON per codec.",
      formatter_class=cli.HelpFormatter)
  p.add_argument("--images", default=kodak.DEFAULT_FOLDER,
                 help="image folder; the default folder gets the 24 Kodak "
                 "images downloaded when it holds none")
  p.add_argument("--codecs", type=_codecs, default=",".join(DEFAULT_CODECS),
                 help="comma list of codecs")
  p.add_argument("--out-dir", default="results/kodak",
                 help="writes <codec>.json here")
  rates = p.add_mutually_exclusive_group()
  rates.add_argument("--layer-rates", type=_rates,
                     default=",".join(map(str, PAPER_LAYER_RATES)),
                     help="cumulative bpp of the JPEG 2000 quality layers")
  rates.add_argument("--sae-results", default=None,
                     help="SAE results JSON: code each image's JPEG 2000 "
                     "layers at its SAE cumulative-layer bpp")
  # pylint: disable-next=protected-access
  p.add_argument("--limit", type=arguments.positive_int, default=None,
                 help="use only the first N images")
  p.add_argument("--no-progress", dest="progress", action="store_false")
  return p


def run(args) -> int:
  """Benchmarks the codecs the options name; writes and prints the results."""
  # pylint: disable=import-outside-toplevel
  from sae import images as image_io
  from sae.fileio import write_json
  # The images the test scripts would read from this folder (their protocol).
  paths = kodak.ensure_images(args.images, progress=args.progress)
  if args.limit:
    paths = paths[:args.limit]
  images = [(pathlib.Path(p).name, image_io.load_image(p)) for p in paths]
  out_dir = pathlib.Path(args.out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  for name in args.codecs:
    codec_class = classical.CODECS[name]
    reason = codec_class.available()
    if reason:
      print(f"notice: skipping {name}: {reason}", file=sys.stderr)
      continue
    qualities = None
    if name == "jpeg2000-layers":
      qualities = (sae_layer_rates(args.sae_results) if args.sae_results
                   else args.layer_rates)
    t0 = time.perf_counter()
    summary = bench_codec(codec_class(), images, qualities, args.progress)
    out = out_dir / f"{name}.json"
    write_json(out, summary)
    print(f"{name}: {summary['description']}\n"
          f"{results.format_table(summary)}\n"
          f"-> {out} ({time.perf_counter() - t0:.0f} s)\n")
  return 0


def main(argv=None) -> int:
  args = parser().parse_args(argv)
  cli.quiet_tensorflow()
  return cli.guarded(run, args)


if __name__ == "__main__":
  sys.exit(main())
