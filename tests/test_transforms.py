import numpy as np
import pytest
import tensorflow as tf

from sae.config import get_preset
from sae.transforms import (AnalysisTransform, SynthesisTransform,
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
