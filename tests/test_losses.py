import numpy as np
import pytest
import tensorflow as tf

from sae.models.losses import rd_loss


def test_mse_loss_by_hand():
  x = tf.zeros((2, 16, 16, 3))
  total = tf.concat([tf.fill((1, 16, 16, 3), 2.0), tf.fill((1, 16, 16, 3), 10.0)], 0)
  bpp = tf.constant([0.5, 0.25])
  # bpp + lambda * mean squared error on the 0..255 scale.
  np.testing.assert_allclose(rd_loss(bpp, x, total, 0.01).numpy(),
                             [0.5 + 0.01 * 4, 0.25 + 0.01 * 100], rtol=1e-6)


def test_paper_lambda_convention():
  # Authors: channel-summed SE per pixel + lambda_paper * bpp.  Ours divides
  # that by lambda_paper with lmbda = 3 / lambda_paper.
  rng = np.random.default_rng(0)
  x = rng.uniform(0, 255, (1, 16, 16, 3)).astype(np.float32)
  total = x + rng.normal(0, 5, x.shape).astype(np.float32)
  bpp, lambda_paper = 0.3, 1000.0
  paper = np.sum((x - total) ** 2) / (16 * 16) + lambda_paper * bpp
  ours = rd_loss(tf.constant([bpp]), x, total, 3 / lambda_paper).numpy()[0]
  assert ours == pytest.approx(paper / lambda_paper, rel=1e-5)


def test_ms_ssim_loss_of_perfect_reconstruction_is_the_rate():
  x = tf.random.uniform((1, 176, 176, 3), 0, 255, seed=1)
  loss = rd_loss(tf.constant([0.7]), x, x, 100.0, "ms-ssim").numpy()
  assert loss[0] == pytest.approx(0.7, abs=1e-4)


def test_unknown_metric():
  with pytest.raises(ValueError, match="metric"):
    rd_loss(tf.constant([0.0]), tf.zeros((1, 16, 16, 3)), tf.zeros((1, 16, 16, 3)), 1, "l1")
