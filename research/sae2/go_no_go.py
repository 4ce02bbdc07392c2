"""SAE-2's diagnostics and go/no-go (issue #39), on the held-out photographs.

    python research/sae2/go_no_go.py --weights checkpoints/sae2/top \
        --corpus DATA/train

For each held-out photograph (train_top.py's split: never a training crop),
whole and at its own size, the single-rate model's rate (the entropy
model's estimate, bits of z and of y at step 1), its PSNR, and its floor:
the synthesis fed the unquantized latent.  JPEG 2000 (OpenJPEG, one quality
layer, sae.eval.classical.Jpeg2000) is coded at each image's rate, with real
bytes.  Printed: the means, the rate per latent channel (the top layer's
bits spread over the 320 channels: how many carry the rate), and the
decision: go when the model's mean PSNR is at least JPEG 2000's at the same
per-image rates.
"""

import argparse
import pathlib
import sys

import numpy as np
import tensorflow as tf

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent.parent))
from model import WideModel, gaussian_model  # noqa: E402
from train_top import split  # noqa: E402
from sae.eval.metrics import psnr  # noqa: E402


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--weights", required=True, help="train_top.py's --out")
  p.add_argument("--corpus", required=True)
  p.add_argument("--averaged", action="store_true",
                 help="the weights' moving average (averaged/) instead of "
                      "the last step's")
  p.add_argument("--limit", type=int, default=None)
  args = p.parse_args(argv)
  from sae.eval import classical
  from sae import images
  from sae.models.transforms import pad_to_stride

  model = WideModel()
  tf.train.Checkpoint(**model.checkpoint_objects()).read(
      str(pathlib.Path(args.weights) /
          ("averaged" if args.averaged else "weights") / "ckpt")
  ).expect_partial()

  @tf.function(input_signature=[tf.TensorSpec([1, None, None, 3])])
  def run(x):
    y = model.analysis(x)
    z = model.hyper_analysis(y)
    import tensorflow_compression as tfc
    z_model = tfc.ContinuousBatchedEntropyModel(model.prior, coding_rank=3,
                                                compression=False)
    z_hat, z_bits = z_model(z, training=False)
    mean, index = model.entropy_parameters(z_hat, tf.shape(y)[1:3])
    # Bits of each latent element, summed per channel.
    bits = gaussian_model(coding_rank=0)(y, tf.round(index), loc=mean,
                                         training=False)[1]
    y_hat = tf.round(y - mean) + mean
    return (model.synthesis(y_hat), model.synthesis(y), z_bits,
            tf.reduce_sum(bits, axis=(0, 1, 2)))

  jpeg2000 = classical.Jpeg2000()
  _, held = split(args.corpus)
  rows, channel_bits = [], 0
  for path in held[:args.limit]:
    image = images.load_image(path)
    h, w = image.shape[:2]
    x = pad_to_stride(tf.constant(image, tf.float32)[None])
    x_hat, floor, z_bits, per_channel = run(x)
    crop = lambda t: np.clip(np.round(t.numpy()[0, :h, :w]), 0, 255)
    bpp = (float(z_bits[0]) + float(tf.reduce_sum(per_channel))) / (h * w)
    channel_bits = channel_bits + per_channel.numpy() / (h * w)
    # JPEG 2000 at (at most) this image's rate, real bytes.
    data = jpeg2000.encode(image, bpp)
    rows.append((bpp, psnr(image, crop(x_hat)), psnr(image, crop(floor)),
                 8 * len(data) / (h * w), psnr(image, jpeg2000.decode(data))))
    print(f"{pathlib.Path(path).name}: {rows[-1][0]:.3f} bpp {rows[-1][1]:.2f} "
          f"dB (floor {rows[-1][2]:.2f}); JPEG 2000 {rows[-1][3]:.3f} bpp "
          f"{rows[-1][4]:.2f} dB", flush=True)
  m = np.mean(rows, axis=0)
  share = np.sort(channel_bits)[::-1] / channel_bits.sum()
  print(f"\nmean of {len(rows)} held-out photographs: {m[0]:.3f} bpp, "
        f"{m[1]:.2f} dB, floor {m[2]:.2f} dB; JPEG 2000 {m[3]:.3f} bpp "
        f"{m[4]:.2f} dB: {m[1] - m[4]:+.2f} dB")
  print(f"rate per latent channel: the top 32 channels carry "
        f"{share[:32].sum():.0%}, the top 128 {share[:128].sum():.0%}; "
        f"{int((share > 1e-3).sum())} of {share.size} carry over 0.1 %")
  print("decision:", "GO (at or above JPEG 2000 at its rates)" if m[1] >= m[4]
        else "NO-GO yet (below JPEG 2000 at its rates)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
