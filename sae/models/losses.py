"""The rate-distortion loss, stated once.

For layer k:  loss_k = bpp_k + lmbda_k * D(x, x_hat_0 + ... + x_hat_k)

- bpp_k: estimated bits of layer k's latent / (H * W) of the (padded) crop;
  only the active layer's rate, lower layers are frozen.
- D = MSE over pixels and channels on the 0..255 scale (``metric="mse"``), or
  1 - MS-SSIM(x, clip(total)) on the 0..255 scale (``metric="ms-ssim"``).

With MSE this is the authors' ``sum_RGB SE / pixels + lambda_paper * bpp``
divided by lambda_paper, with lmbda = 3 / lambda_paper (docs/models.md).
Returns one loss per batch element; the trainer averages.
"""

import tensorflow as tf

from sae.eval import metrics


def rd_loss(bpp, x, total, lmbda, metric="mse"):
  """Per-example loss; ``bpp`` has shape (B,), images (B, H, W, 3) 0..255."""
  if metric == "mse":
    distortion = tf.reduce_mean(tf.math.squared_difference(x, total),
                                axis=(1, 2, 3))
  elif metric == "ms-ssim":
    distortion = 1 - metrics.ms_ssim_float(x, tf.clip_by_value(total, 0, 255))
  else:
    raise ValueError(f"metric must be 'mse' or 'ms-ssim', got {metric!r}")
  return bpp + lmbda * distortion
