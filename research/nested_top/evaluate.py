"""The conditional top layer against JPEG 2000 on the held-out photographs
(train.py's split: never a training crop), whole, each at its own size.

    python research/nested_top/evaluate.py --weights weights/sae-conditional \
        --corpus DATA/train

For each photograph: weights/sae-nested's three and four layers (real
stream bytes, decoded by the package), the conditional top on the three
(the three layers' bytes plus the top's estimated bits) and JPEG 2000
(OpenJPEG, one layer) at the top's rate, with real bytes.  The gate
(docs/sae2.md) compares the conditional top with the nested model at the
same rate: its PSNR read off the line from its three- to its four-layer
point, per photograph (beyond the four-layer point the line is extended,
which flatters the nested model, since its curve bends down).
"""

import argparse
import pathlib
import sys

import numpy as np
import tensorflow as tf

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE.parent / "sae2"))
sys.path.insert(0, str(HERE))
from train_top import split  # noqa: E402
from top_model import load_top  # noqa: E402
from train import nested_lower  # noqa: E402
from sae.eval.metrics import psnr  # noqa: E402


def at_rate(bpp, points):
  """PSNR at ``bpp`` on the straight line through two (bpp, PSNR) points."""
  (b0, q0), (b1, q1) = points
  return q0 + (q1 - q0) * (bpp - b0) / (b1 - b0)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--weights", required=True,
                 help="train.py's --out, or a weights folder of the "
                 "sae-conditional family")
  p.add_argument("--corpus", required=True)
  p.add_argument("--nested", default=str(ROOT / "weights" / "sae-nested"))
  p.add_argument("--limit", type=int, default=None)
  args = p.parse_args(argv)
  import sae
  from sae import images
  from sae.eval import classical
  from sae.models.transforms import pad_to_stride

  lower = nested_lower(args.nested)
  model, step = load_top(args.weights)
  print(f"conditional top at step {step}", flush=True)

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3])])
  def top(x):
    x2, y3, _ = lower(x)
    bits, x_hat, _ = model(x, x2, y3, training=False)
    return bits[0], x_hat

  jpeg2000 = classical.Jpeg2000()
  _, held = split(args.corpus)
  rows = []
  for path in held[:args.limit]:
    image = images.load_image(path)
    h, w = image.shape[:2]
    pixels = h * w
    coded = {k: sae.encode(image, layers=k, weights=args.nested)
             for k in (3, 4)}
    decoded = {k: sae.decode(data, weights=args.nested)
               for k, data in coded.items()}
    bits, x_hat = top(pad_to_stride(tf.constant(image, tf.float32)[None]))
    x_hat = np.clip(np.round(x_hat.numpy()[0, :h, :w]), 0, 255)
    bpp = 8 * len(coded[3]) / pixels + float(bits) / pixels
    data = jpeg2000.encode(image, bpp)
    nested = [(8 * len(coded[k]) / pixels, psnr(image, decoded[k]))
              for k in (3, 4)]
    rows.append(nested[0] + nested[1] + (bpp, psnr(image, x_hat)) +
                (8 * len(data) / pixels, psnr(image, jpeg2000.decode(data))) +
                (bpp, at_rate(bpp, nested)))
    print(pathlib.Path(path).name + ": " + "  ".join(
        f"{b:.3f}/{q:.2f}" for b, q in zip(rows[-1][::2], rows[-1][1::2])),
        flush=True)
  m = np.mean(rows, axis=0)
  print(f"\nmean of {len(rows)} held-out photographs (bpp / dB):\n"
        f"  nested, 3 layers      {m[0]:.3f} / {m[1]:.2f}\n"
        f"  nested, 4 layers      {m[2]:.3f} / {m[3]:.2f}\n"
        f"  conditional top on 3  {m[4]:.3f} / {m[5]:.2f}\n"
        f"  JPEG 2000 at its rate {m[6]:.3f} / {m[7]:.2f}: "
        f"{m[5] - m[7]:+.2f} dB\n"
        f"  nested at its rate    {m[8]:.3f} / {m[9]:.2f}: "
        f"{m[5] - m[9]:+.2f} dB (the gate asks +2.00)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
