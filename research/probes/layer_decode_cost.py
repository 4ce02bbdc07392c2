"""Decoder-side transform time of one layer at several widths.

    python research/probes/layer_decode_cost.py --family sae --layer 2 \
        --filters 48 96

The diary's measurement (research/sae-plus-probes.md, the el2 width gate)
ran at commit 4047019 with ``--family sae-plus-hyper``, a family removed
from sae/ since (issue #40); the families that remain run as below.

The paper preset's layer ``--layer`` of ``--family``, with ``--filters``
hidden filters, on a latent of a ``--size`` image (default 512x768, a Kodak
image): its synthesis, and for a mean-scale layer its hyper-synthesis,
traced once with frozen kernels as prepare_for_coding freezes them.
Untrained weights (time does not depend on their values); range decoding
is not included.  Prints the median of --runs calls per width.  Pause
background training while measuring.
"""

import argparse
import dataclasses
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import sae  # noqa: E402,F401  before tensorflow: its oneDNN default
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from sae.models import families  # noqa: E402
from sae.entropy.meanscale import HYPER_STRIDE, MeanScaleCodec  # noqa: E402
from sae.models.base import CODECS  # noqa: E402
from sae.models.transforms import TOTAL_STRIDE  # noqa: E402


def measure(spec, size, runs) -> float:
  """Median seconds of one decode-side transform pass."""
  codec = CODECS[spec.kind](spec, name="layer")
  codec.freeze_transforms()
  latent_hw = [-(-n // TOTAL_STRIDE) for n in size]
  y = tf.random.normal([1, *latent_hw, spec.latent_channels])
  hyper = isinstance(codec, MeanScaleCodec)
  z = tf.random.normal([1, *(-(-n // HYPER_STRIDE) for n in latent_hw),
                        spec.conv_filters])

  @tf.function(input_signature=[
      tf.TensorSpec([1, None, None, spec.latent_channels]),
      tf.TensorSpec([1, None, None, spec.conv_filters])])
  def decode(y, z):
    side = codec.hyper_synthesis(z) if hyper else tf.zeros([])
    return tf.reduce_sum(codec.synthesis(y)) + tf.reduce_sum(side)

  decode(y, z).numpy()  # trace
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    decode(y, z).numpy()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__,
                              formatter_class=argparse.RawTextHelpFormatter)
  p.add_argument("--family", choices=tuple(families.FAMILIES), default="sae")
  p.add_argument("--layer", type=int, default=2, help="0 = base")
  p.add_argument("--filters", type=int, nargs="+", default=[48, 96])
  p.add_argument("--size", type=int, nargs=2, default=[512, 768],
                 metavar=("HEIGHT", "WIDTH"))
  p.add_argument("--runs", type=int, default=15)
  args = p.parse_args(argv)
  base_spec = families.get(args.family).preset("paper").layers[args.layer]
  print(f"{args.family} layer {args.layer} ({base_spec.kind}, "
        f"{base_spec.latent_channels} latent channels), "
        f"{args.size[0]}x{args.size[1]} image:")
  for filters in args.filters:
    spec = dataclasses.replace(base_spec, conv_filters=filters)
    seconds = measure(spec, args.size, args.runs)
    print(f"  {filters:4d} filters: {1000 * seconds:6.1f} ms (median of "
          f"{args.runs})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
