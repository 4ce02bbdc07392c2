"""Incremental decoding (sae.progressive) against one decode of all layers.

    python benchmarks/progressive_speed.py --weights weights/mse \
        --image kodak/kodim01.png --rounds 5

Codes the image with every layer of the weights, then times (median of
``--rounds``, after one warm-up of each):
  full         codec.decode of all layers at once;
  incremental  ProgressiveDecoder fed the stream one layer at a time, an
               image after each layer (1, then 2, .., then all);
  restarts     codec.decode at 1, 2, .., all layers, each from layer 0
               (what showing every layer cost before sae.progressive).
The issue's target: incremental within 1.3x of full.
"""

import argparse
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sae  # noqa: E402,F401  before tensorflow (oneDNN default)
from sae.cli.cli import quiet_tensorflow  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--weights", default=str(ROOT / "weights" / "mse"))
  p.add_argument("--image", default=str(ROOT / "kodak" / "kodim01.png"),
                 help="image to code (default: kodak/kodim01.png, which "
                 "python test_el3.py downloads; "
                 "a generated 768x512 image when absent)")
  p.add_argument("--rounds", type=int, default=5)
  args = p.parse_args(argv)
  quiet_tensorflow()
  import numpy as np
  from sae.stream import bitstream
  from sae import checkpoints, codec, progressive
  from sae.train import data

  if pathlib.Path(args.image).is_file():
    image, source = data.load_image(args.image), args.image
  else:
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(128, 40, (512, 768, 3)), 0, 255).astype(np.uint8)
    source = f"generated 768x512 ({args.image} is absent)"
  model = checkpoints.cached_model(pathlib.Path(args.weights))
  stream = codec.encode(model, image, model.num_layers)
  sizes = bitstream.layer_bytes(stream)
  pieces, start = [], 0
  for size in sizes:
    pieces.append(stream[start:start + size])
    start += size

  def full():
    codec.decode(model, stream)

  def incremental():
    decoder = progressive.ProgressiveDecoder(model)
    steps = [s for piece in pieces for s in decoder.feed(piece)]
    assert len(steps) == model.num_layers

  def restarts():
    for k in range(1, model.num_layers + 1):
      codec.decode(model, stream, k)

  # The same pixels, then timings.
  steps = list(progressive.decode_progressively(model, pieces))
  for s in steps:
    assert np.array_equal(s.image, codec.decode(model, stream, s.layers))
  times = {}
  for name, fn in (("full", full), ("incremental", incremental),
                   ("restarts", restarts)):
    fn()  # warm-up: tracing
    runs = []
    for _ in range(args.rounds):
      t = time.perf_counter()
      fn()
      runs.append(time.perf_counter() - t)
    times[name] = statistics.median(runs)
  print(f"image: {source}, {image.shape[1]}x{image.shape[0]}; weights "
        f"{args.weights}, {model.num_layers} layers, stream version "
        f"{bitstream.unpack(stream).version}, {len(stream)} bytes")
  for name, seconds in times.items():
    print(f"{name:12s} {seconds * 1000:8.1f} ms  "
          f"({seconds / times['full']:.2f}x full)")
  print(f"command: python benchmarks/progressive_speed.py --weights "
        f"{args.weights} --image {args.image} --rounds {args.rounds}")


if __name__ == "__main__":
  main()
