"""Encode / decode time of SAE per layer count, next to JPEG 2000 at the same rate.

    nice -n 19 python benchmarks/codec_speed.py [--weights DIR] [--kodak DIR]
        [--layers K] [--limit N]

One warm process: the model is loaded and both tf.functions are traced on
the first image before any timing.  For every image and layer count k the
SAE file is coded once (encode time), decoded once (decode time), and JPEG
2000 (OpenJPEG via Pillow, sae.eval.classical.Jpeg2000: .j2k code stream, 9/7,
colour transform) is given a rate target found by bisection so that its file
is as close as possible to, and not larger than, the SAE file.  Printed:
medians over the images, and SAE/JPEG 2000 time ratios.

The weights folder is copied first, so a training run that rewrites it
meanwhile cannot hand us a half-written checkpoint.
"""

import argparse
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def snapshot(weights, folder) -> pathlib.Path:
  """Copies config.json, the layers' weights and coding tables (not training
  state), so a shipped folder is measured with its own tables."""
  src, dst = pathlib.Path(weights), pathlib.Path(folder) / "weights"
  dst.mkdir(parents=True)
  shutil.copy2(src / "config.json", dst)
  for layer in sorted(p for p in src.iterdir() if p.is_dir()):
    files = list(layer.glob("weights.*")) + list(layer.glob("tables.npz"))
    if files:
      (dst / layer.name).mkdir()
      for f in files:
        shutil.copy2(f, dst / layer.name)
  return dst


def timed(fn, *args):
  t0 = time.perf_counter()
  out = fn(*args)
  return out, time.perf_counter() - t0


def match_jpeg2000(codec, image, max_bytes, steps=12):
  """The largest JPEG 2000 file not above ``max_bytes`` (bisection on bpp)."""
  pixels = image.shape[0] * image.shape[1]
  lo, hi = 0.0, 8.0 * max_bytes / pixels * 1.5
  best = None
  for _ in range(steps):
    mid = (lo + hi) / 2
    data = codec.encode(image, mid)
    if len(data) <= max_bytes:
      lo = mid
      if best is None or len(data) >= len(best[1]):
        best = (mid, data)
    else:
      hi = mid
  if best is None:  # even the smallest target is too big: take it anyway
    best = (lo, codec.encode(image, max(lo, 1e-3)))
  return best


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--weights", default=str(ROOT / "weights" / "mse"),
                 help="weights folder (default: the shipped weights/mse)")
  p.add_argument("--images", "--kodak", default=str(ROOT / "kodak"),
                 help="image folder (default: kodak/, where the 24 Kodak "
                 "images are downloaded when it holds none)")
  p.add_argument("--layers", type=int, default=None,
                 help="measure 1..K layers (default: all with weights)")
  p.add_argument("--limit", type=int, default=None, help="first N images")
  args = p.parse_args(argv)

  print("command: python benchmarks/codec_speed.py "
        + " ".join(argv if argv is not None else sys.argv[1:]))
  from sae import checkpoints, codec
  from sae.eval import kodak, metrics
  from sae.eval.classical import Jpeg2000
  from sae.images import load_image
  paths = kodak.ensure_images(args.images, progress=False)[:args.limit]
  with tempfile.TemporaryDirectory() as tmp:
    weights = snapshot(args.weights, tmp)
    t0 = time.perf_counter()
    model = checkpoints.load_model(weights, args.layers)
    load_seconds = time.perf_counter() - t0
  layers = range(1, model.num_layers + 1)
  j2k = Jpeg2000()

  first = load_image(paths[0])
  codec.decode(model, codec.encode(model, first, model.num_layers))  # trace

  rows = {k: {key: [] for key in ("bpp", "psnr", "enc", "dec", "j2k_bpp",
                                   "j2k_psnr", "j2k_enc", "j2k_dec")}
          for k in layers}
  for path in paths:
    image = load_image(path)
    pixels = image.shape[0] * image.shape[1]
    for k in layers:
      r = rows[k]
      stream, enc = timed(codec.encode, model, image, k)
      decoded, dec = timed(codec.decode, model, stream)
      rate, _ = match_jpeg2000(j2k, image, len(stream))
      data, j_enc = timed(j2k.encode, image, rate)
      j_decoded, j_dec = timed(j2k.decode, data)
      for key, value in (
          ("bpp", 8 * len(stream) / pixels),
          ("psnr", metrics.psnr(image, decoded)), ("enc", enc), ("dec", dec),
          ("j2k_bpp", 8 * len(data) / pixels),
          ("j2k_psnr", metrics.psnr(image, j_decoded)), ("j2k_enc", j_enc),
          ("j2k_dec", j_dec)):
        r[key].append(value)

  med = statistics.median
  print(f"{len(paths)} images from {args.images}; weights {args.weights} "
        f"(ids {[i.hex() for i in model.weights_ids()]}, load "
        f"{load_seconds:.1f} s); medians per image; TF threads: default, "
        f"{os.cpu_count()} CPUs; OpenJPEG single-threaded")
  print(f"{'layers':>6} | {'SAE bpp':>7} {'PSNR':>6} {'enc ms':>8} "
        f"{'dec ms':>8} | {'J2K bpp':>7} {'PSNR':>6} {'enc ms':>8} "
        f"{'dec ms':>8} | {'enc x':>6} {'dec x':>6}")
  for k in layers:
    r = rows[k]
    enc, dec = med(r["enc"]) * 1e3, med(r["dec"]) * 1e3
    j_enc, j_dec = med(r["j2k_enc"]) * 1e3, med(r["j2k_dec"]) * 1e3
    print(f"{k:>6} | {med(r['bpp']):>7.3f} {med(r['psnr']):>6.2f} "
          f"{enc:>8.1f} {dec:>8.1f} | {med(r['j2k_bpp']):>7.3f} "
          f"{med(r['j2k_psnr']):>6.2f} {j_enc:>8.1f} {j_dec:>8.1f} | "
          f"{enc / j_enc:>6.1f} {dec / j_dec:>6.1f}")
  print("enc x / dec x: SAE time / JPEG 2000 time at the same image and "
        "(at most the same) bytes")
  return 0


if __name__ == "__main__":
  sys.exit(main())
