"""SAE-2's latent cut into nested layers before the nested phase (issue #39):
what the single-rate model gives at the steps 27, 9, 3, 1, all decoded by
its one synthesis, on the held-out photographs (train_top.py's split), whole.

    python research/sae2/layers.py --weights checkpoints/sae2/top --averaged \
        --corpus DATA/train

A prefix of k layers is the latent at the k-th step (the trits of the
steps nest, so the prefix's bits are those of the latent coded at its
step under the same Gaussians: the entropy model's estimate, with z's
bits in the base).  Beside it, on each photograph: weights/sae-nested's
layers (real stream bytes) and one JPEG 2000 stream with a quality layer
at each of SAE-2's cumulative rates (real bytes of each prefix).
"""

import argparse
import pathlib
import sys

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))
from model import WideModel, gaussian_model, _LOG_SCALE_STEP  # noqa: E402
from train_top import split  # noqa: E402
from sae.eval.metrics import psnr  # noqa: E402

STEPS = (27.0, 9.0, 3.0, 1.0)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--weights", required=True, help="train_top.py's --out")
  p.add_argument("--averaged", action="store_true")
  p.add_argument("--corpus", required=True)
  p.add_argument("--nested", default=str(ROOT / "weights" / "sae-nested"))
  p.add_argument("--limit", type=int, default=None)
  args = p.parse_args(argv)
  import sae
  from sae import images
  from sae.eval import classical
  from sae.models.transforms import pad_to_stride

  model = WideModel()
  tf.train.Checkpoint(**model.checkpoint_objects()).read(
      str(pathlib.Path(args.weights) /
          ("averaged" if args.averaged else "weights") / "ckpt")
  ).expect_partial()

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3])])
  def layers(x):
    y = model.analysis(x)
    z = model.hyper_analysis(y)
    z_model = tfc.ContinuousBatchedEntropyModel(model.prior, coding_rank=3,
                                                compression=False)
    z_hat, z_bits = z_model(z, training=False)
    mean, index = model.entropy_parameters(z_hat, tf.shape(y)[1:3])
    bits, images_ = [], []
    for step in STEPS:
      at_step = tf.clip_by_value(
          tf.round(index - float(np.log(step) / _LOG_SCALE_STEP)), 0.0, 63.0)
      bits.append(z_bits[0] + gaussian_model()(
          y / step, at_step, loc=mean / step, training=False)[1][0])
      images_.append(model.synthesis(tf.round((y - mean) / step) * step + mean))
    return tf.stack(bits), tf.concat(images_, 0)

  jp2 = classical.LayeredJpeg2000()
  _, held = split(args.corpus)
  rows = []
  for path in held[:args.limit]:
    image = images.load_image(path)
    h, w = image.shape[:2]
    bits, decoded = layers(pad_to_stride(tf.constant(image, tf.float32)[None]))
    ours = [(float(b) / (h * w),
             psnr(image, np.clip(np.round(d[:h, :w]), 0, 255)))
            for b, d in zip(bits.numpy(), decoded.numpy())]
    stream = sae.encode(image, weights=args.nested)
    nested = [(8 * len(sae.truncate(stream, k)) / (h * w),
               psnr(image, sae.decode(sae.truncate(stream, k),
                                      weights=args.nested)))
              for k in range(1, 5)]
    data = jp2.encode(image, [b for b, _ in ours])
    ref = [(8 * len(jp2.truncate(data, k)) / (h * w),
            psnr(image, jp2.decode(jp2.truncate(data, k))))
           for k in range(1, 5)]
    rows.append(np.array([ours, nested, ref]))
    print(pathlib.Path(path).name + ": " + "  ".join(
        f"{a:.3f}/{b:.2f}" for a, b in ours), flush=True)
  m = np.mean(rows, axis=0)
  print(f"\nmeans of {len(rows)} held-out photographs, bpp / dB per prefix:")
  for name, r in zip(("SAE-2, one synthesis", "sae-nested",
                      "JPEG 2000 layers at SAE-2's rates"), m):
    print(f"  {name:34s}" + "  ".join(f"{a:.3f}/{b:.2f}" for a, b in r))
  print("  SAE-2 - JPEG 2000 (dB)          " + "  ".join(
      f"{a - b:+.2f}" for a, b in zip(m[0, :, 1], m[2, :, 1])))
  return 0


if __name__ == "__main__":
  sys.exit(main())
