import numpy as np
import pytest
import tensorflow as tf

from sae.config import get_preset
from sae.models.transforms import (AnalysisTransform, SynthesisTransform,
                            latent_shape, pad_to_stride)


@pytest.mark.parametrize("height,width", [(1, 1), (17, 31), (48, 32), (64, 64)])
def test_transforms_on_odd_and_portrait_sizes(height, width):
  spec = get_preset("tiny").layers[2]
  x = pad_to_stride(tf.random.uniform((1, height, width, 3), 0, 255))
  hp, wp = -(-height // 16) * 16, -(-width // 16) * 16
  assert x.shape == (1, hp, wp, 3)
  y = AnalysisTransform(spec)(x)
  assert y.shape == (1, hp // 16, wp // 16, spec.latent_channels)
  assert list(latent_shape(tf.constant([height, width])).numpy()) == [hp // 16, wp // 16]
  assert SynthesisTransform(spec)(y).shape == (1, hp, wp, 3)


def test_pad_replicates_the_border():
  x = tf.reshape(tf.range(2 * 3 * 3, dtype=tf.float32), (1, 2, 3, 3))
  padded = pad_to_stride(x).numpy()
  np.testing.assert_array_equal(padded[:, :2, :3], x.numpy())
  np.testing.assert_array_equal(padded[0, 15, 15], x.numpy()[0, 1, 2])
  np.testing.assert_array_equal(padded[0, 0, 3:], np.repeat(x.numpy()[0, 0, 2:3], 13, 0))


def _band_case():
  from tests.tiny import random_image, tiny_model
  codec = tiny_model(4).codecs[2]
  # 160x128 after padding: a 10x8 latent, so 8 latent pixels is one row a band.
  x = pad_to_stride(tf.cast(random_image(150, 120), tf.float32)[None]) - 100
  return codec, x


def test_bands_compute_what_the_whole_image_does():
  from sae.models import transforms
  codec, x = _band_case()
  y = codec.analysis(x, training=False)
  for latent_pixels in (8, 24, 10_000):  # 1 and 3 rows a band, one band
    np.testing.assert_allclose(
        transforms.analyze_in_bands(codec.analysis, x, latent_pixels), y,
        atol=1e-5)
    np.testing.assert_allclose(
        transforms.synthesize_in_bands(codec.synthesis, tf.round(y),
                                       latent_pixels),
        codec.synthesis(tf.round(y), training=False), atol=1e-3)


def test_bands_need_their_halo(monkeypatch):
  # The halo is what makes bands exact: with one latent row of context the
  # synthesis at the band borders is visibly wrong.
  from sae.models import transforms
  codec, x = _band_case()
  y = tf.round(codec.analysis(x, training=False))
  monkeypatch.setattr(transforms, "BAND_HALO", 1)
  error = tf.abs(transforms.synthesize_in_bands(codec.synthesis, y, 8) -
                 codec.synthesis(y, training=False))
  assert float(tf.reduce_max(error)) > 1.0
