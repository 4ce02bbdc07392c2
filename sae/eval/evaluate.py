"""Dataset evaluation of cumulative layers: table on stdout, results JSON.

Protocol (docs/evaluation.md): every image at its own size; bpp from the
bytes of the layered file (8 * bytes / (H * W)); PSNR-RGB and MS-SSIM-RGB of
the 8-bit decoded image; means over images.
"""

import os
import pathlib
import time

import numpy as np
import tqdm

from sae import checkpoints, codec
from sae.models import families
from sae.eval import kodak, results
from sae.config import layers_label, model_name
from sae.images import load_image, save_png
from sae.fileio import check_output, write_json


def warm_up(model, num_layers) -> None:
  """Traces the coding functions once so timings exclude graph building:
  those of images of one band (sae.codec's choice for a 16x16 image) and
  the general ones, for larger images."""
  warm = np.zeros((16, 16, 3), np.uint8)
  codec.decode(model, codec.encode(model, warm, num_layers))
  strings, shape = model.compress(warm, num_layers)
  model.decompress(strings[:num_layers], shape)


def evaluate_image(model, image, name, num_layers, recon_dir=None):
  """One image's entry of ``per_image``: layers 1..num_layers each coded,
  decoded and measured (sae.train.beam calls it once per image).

  Returns:
    (the entry, the k-layer streams for k = 1..num_layers).
  """
  row = results.new_row(name, image)
  streams = []
  for k in range(1, num_layers + 1):
    t0 = time.perf_counter()
    stream = codec.encode(model, image, k)
    t1 = time.perf_counter()
    decoded = codec.decode(model, stream)
    t2 = time.perf_counter()
    results.record(row, image, stream, decoded, t1 - t0, t2 - t1)
    streams.append(stream)
    if recon_dir is not None:
      save_png(decoded, pathlib.Path(recon_dir) /
               f"{pathlib.Path(name).stem}_{k}.png")
  return row, streams


def evaluate_model(model, paths, num_layers, recon_dir=None, progress=True):
  """Per-image metrics of layers 1..num_layers; returns the per_image list."""
  warm_up(model, num_layers)
  per_image = []
  for path in tqdm.tqdm(paths, desc="evaluate", disable=not progress):
    row, _ = evaluate_image(model, load_image(path), pathlib.Path(path).name,
                            num_layers, recon_dir)
    per_image.append(row)
  return per_image


def model_summary(model, weights, per_image, folder_name, name=None) -> dict:
  """The results file of the model's layers on the images of ``per_image``
  (read from a folder named ``folder_name``)."""
  config = checkpoints.read_config(weights)
  # Relative to the working directory where possible: results files are
  # committed and must not carry one machine's paths.
  shown = pathlib.Path(os.path.relpath(weights)).as_posix()
  num_layers = len(per_image[0]["bpp"])  # the model may hold more layers
  layers = [layers_label(k) for k in range(num_layers)]
  summary = results.summarize(
      name or model_name(config.family, config.metric),
      f"{families.get(config.family).description} {config.metric} model, "
      f"weights {shown}; {len(per_image)} images from "
      f"{folder_name}; bpp = 8*file bytes/(H*W)", layers, per_image)
  summary["metric"] = config.metric
  summary["weights_ids"] = [i.hex() for i in model.weights_ids()[:num_layers]]
  return summary


def run(num_layers: int, args) -> int:
  """Evaluates layers 0..num_layers-1 as the test scripts' options say."""
  if args.out:
    check_output(args.out)
  # Weights first: a missing layer is named even offline, before a download.
  weights = args.weights or checkpoints.DEFAULT_WEIGHTS
  model = checkpoints.load_model(weights, num_layers)
  paths = kodak.ensure_images(args.kodak, args.kodak_url, args.progress)
  if args.limit:
    paths = paths[:args.limit]
  if args.recon_dir:
    pathlib.Path(args.recon_dir).mkdir(parents=True, exist_ok=True)
  per_image = evaluate_model(model, paths, num_layers, args.recon_dir,
                             args.progress)
  summary = model_summary(model, weights, per_image,
                          pathlib.Path(args.kodak).name, args.name)
  print(results.format_table(summary))
  if args.out:
    write_json(args.out, summary)
  return 0
