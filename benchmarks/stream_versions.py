"""Stream version 2 against version 1 on genuine images: bytes, pixels, speed.

    python benchmarks/stream_versions.py [--weights weights/mse] [--kodak DIR]
        [--limit N] [--repeats 5]

Codes every image with all layers in both versions and reports, per layer,
how many payloads are byte-identical (version 2 differs only where a latent
falls outside its range coding table), the total size of each version,
whether every prefix decodes to the same pixels, and the median encode and
decode times of the two, measured interleaved so that a busy machine slows
both alike.
"""

import argparse
import pathlib
import statistics
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

import sae  # noqa: E402,F401  before tensorflow (oneDNN default)
from sae.stream import bitstream, legacy  # noqa: E402
from sae import checkpoints, codec, images
from sae.eval import kodak


# Since #40 version 1 is written by sae.stream.legacy (the version-2 latents
# recoded with tfc's coder) and read by turning it into version 2 first:
# its times now include that recoding.
ENCODERS = {1: legacy.encode, 2: codec.encode}


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--weights", default="weights/mse")
  p.add_argument("--kodak", default=kodak.DEFAULT_FOLDER,
                 help="folder of test images (default: %(default)s)")
  p.add_argument("--limit", type=int, default=None, help="first N images")
  p.add_argument("--repeats", type=int, default=5,
                 help="timed runs per image and version")
  args = p.parse_args(argv)
  model = checkpoints.load_model(args.weights)
  paths = images.list_images(args.kodak, recursive=False)[:args.limit]
  if not paths:
    sys.exit(f"error: no images in {args.kodak!r}")
  n = model.num_layers
  identical = [0] * n
  size = {1: 0, 2: 0}
  same_pixels = True
  times = {(what, v): [] for what in ("encode", "decode") for v in (1, 2)}
  for path in paths:
    image = images.load_image(path)
    streams = {v: ENCODERS[v](model, image, n) for v in (1, 2)}
    for v in (1, 2):
      size[v] += len(streams[v])
    old, new = (bitstream.unpack(streams[v]).payloads for v in (1, 2))
    identical = [i + (a == b) for i, a, b in zip(identical, old, new)]
    for k in range(1, n + 1):
      a, b = (codec.decode(model, streams[v], k) for v in (1, 2))
      same_pixels &= bool((a == b).all())
    for _ in range(args.repeats):
      for v in (1, 2):
        t0 = time.perf_counter()
        ENCODERS[v](model, image, n)
        times["encode", v].append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        codec.decode(model, streams[v])
        times["decode", v].append(time.perf_counter() - t0)
  print(f"{len(paths)} images from {args.kodak}, weights {args.weights}, "
        f"{n} layers")
  print("payloads identical in both versions, per layer: " +
        ", ".join(f"{c}/{len(paths)}" for c in identical))
  print(f"bytes: version 1 {size[1]}, version 2 {size[2]} "
        f"({100 * (size[2] - size[1]) / size[1]:+.3f} %)")
  print(f"every prefix decodes to the same pixels: {same_pixels}")
  for what in ("encode", "decode"):
    m1, m2 = (1000 * statistics.median(times[what, v]) for v in (1, 2))
    print(f"{what} all layers, median per image: version 1 {m1:.1f} ms, "
          f"version 2 {m2:.1f} ms ({m2 / m1:.2f}x)")
  print("reproduce: python benchmarks/stream_versions.py --weights "
        f"{args.weights} --kodak {args.kodak}"
        + (f" --limit {args.limit}" if args.limit else "")
        + f" --repeats {args.repeats}")
  return 0 if same_pixels else 1


if __name__ == "__main__":
  sys.exit(main())
