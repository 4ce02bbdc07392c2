import numpy as np
import pytest
import tensorflow as tf

from sae.eval import metrics


def test_bits_per_pixel_counts_bytes_over_pixels():
  assert metrics.bits_per_pixel(1000, 100, 80) == pytest.approx(1.0)
  assert metrics.bits_per_pixel(49152, 512, 768) == pytest.approx(1.0)
  with pytest.raises(ValueError):
    metrics.bits_per_pixel(1, 0, 5)


def test_psnr_known_values():
  a = np.zeros((8, 8, 3), np.uint8)
  assert metrics.psnr(a, a + 1) == pytest.approx(10 * np.log10(255 ** 2), abs=1e-9)
  b = a.copy()
  b[..., 0] = 3  # MSE = 9 / 3 = 3 over pixels and channels
  assert metrics.psnr(a, b) == pytest.approx(10 * np.log10(255 ** 2 / 3))
  assert metrics.psnr(a, a) == float("inf")


def test_ms_ssim_matches_tf_image():
  rng = np.random.default_rng(0)
  a = rng.integers(0, 256, (192, 200, 3), dtype=np.uint8)
  b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
  expected = float(tf.image.ssim_multiscale(a, b, 255))
  assert metrics.ms_ssim(a, b) == pytest.approx(expected, abs=1e-6)
  assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-6)
  ours = metrics.ms_ssim_float(tf.cast(a, tf.float32)[None], tf.cast(b, tf.float32)[None])
  assert float(ours[0]) == pytest.approx(expected, abs=1e-5)


def test_ms_ssim_gradient_is_finite_on_a_flat_patch():
  x = tf.fill((1, 176, 176, 3), 128.0)  # no structure at all
  for start in (tf.fill(x.shape, 128.0),  # a perfect reconstruction
                128.0 + tf.random.normal(x.shape, stddev=30, seed=4)):
    y = tf.Variable(start)
    with tf.GradientTape() as tape:
      loss = 1 - metrics.ms_ssim_float(x, y)
    assert np.isfinite(loss.numpy()).all()
    assert np.all(np.isfinite(tape.gradient(loss, y).numpy()))


def test_ms_ssim_gradient_is_finite_where_structure_term_is_negative():
  # A reconstruction carrying the opposite structure has cs <= 0; with relu
  # (tf.image) 0 ** p then gives NaN gradients (tensorflow issues 50400,
  # 57493).  The floored metric stays finite.
  detail = tf.random.normal((1, 176, 176, 3), stddev=20, seed=3)
  x = 128.0 + detail
  y = tf.Variable(128.0 - detail)
  with tf.GradientTape() as tape:
    reference = 1 - tf.image.ssim_multiscale(x, y, 255)
  assert np.isnan(tape.gradient(reference, y).numpy()).any()
  with tf.GradientTape() as tape:
    loss = 1 - metrics.ms_ssim_float(x, y)
  grad = tape.gradient(loss, y)
  assert np.all(np.isfinite(grad.numpy())) and np.any(grad.numpy() != 0)
  assert np.isfinite(loss.numpy()).all()


def test_small_images_use_fewer_scales():
  assert metrics.num_scales(256, 256) == 5
  assert metrics.num_scales(64, 64) == 3
  a = np.full((20, 20, 3), 100, np.uint8)
  assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-5)


def test_separable_ssim_matches_tf_image_per_channel():
  # The per-scale statistics every MS-SSIM here is built from, against
  # tf.image's own (2-D window) computation, on a batch of two.
  rng = np.random.default_rng(1)
  x = tf.constant(rng.uniform(0, 255, (2, 40, 33, 3)), tf.float32)
  y = tf.clip_by_value(x + tf.constant(rng.normal(0, 15, x.shape), tf.float32), 0, 255)
  ssim, cs = metrics.ssim_per_channel(x, y)
  assert ssim.shape == cs.shape == (2, 3)
  expected = tf.image.ssim(x, y, 255)  # the mean over channels
  np.testing.assert_allclose(tf.reduce_mean(ssim, -1), expected, atol=1e-5)
  assert not np.allclose(ssim, 1.0)


def test_images_smaller_than_the_window_are_measured():
  a = np.full((5, 7, 3), 100, np.uint8)
  b = a.copy()
  b[2, 3] = 140
  assert metrics.ms_ssim(a, a) == pytest.approx(1.0, abs=1e-5)
  assert 0 < metrics.ms_ssim(a, b) < 1
  assert 0 < metrics.ms_ssim(a[:1, :1], b[:1, :1] + 1) <= 1
