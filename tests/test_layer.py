import numpy as np
import pytest
import tensorflow as tf

from sae.entropy.layer import LayerCodec
from tests.tiny import tiny_specs


@pytest.fixture(scope="module")
def codec():
  tf.random.set_seed(1)
  layer = LayerCodec(tiny_specs()[2], name="el2")
  layer.prepare_for_coding()
  return layer


def test_compress_before_tables_raises():
  layer = LayerCodec(tiny_specs()[0], name="base")
  with pytest.raises(RuntimeError, match="prepare_for_coding"):
    layer.compress_latent(tf.zeros((1, 2, 2, 8)))


@pytest.mark.parametrize("shape", [(1, 1, 1), (3, 5), (4, 2)])
def test_decompress_compress_equals_quantized_latents(codec, shape):
  x = tf.random.uniform((1, shape[0] * 16, shape[1] * 16, 3), -60, 255, seed=2)
  y = codec.analysis(x) * 20  # spread the latents over many symbols
  string = codec.compress_latent(y)
  y_hat = codec.decompress_latent(string, tf.shape(y)[1:3])
  np.testing.assert_array_equal(y_hat.numpy(), codec.quantize(y).numpy())
  np.testing.assert_array_equal(codec(x, training=False).y_hat.numpy(),
                                codec.quantize(codec.analysis(x)).numpy())


def test_actual_bits_close_to_estimate(codec):
  x = tf.random.uniform((1, 128, 128, 3), 0, 255, seed=4)
  out = codec(x, training=False)
  actual = 8 * len(codec.compress_latent(out.y).numpy()[0])
  estimate = float(out.bits[0])
  assert abs(actual - estimate) < 0.05 * estimate + 64


def test_training_adds_noise_not_rounding(codec):
  x = tf.random.uniform((1, 64, 64, 3), 0, 255, seed=5)
  out = codec(x, training=True)
  assert not np.allclose(out.y_hat.numpy(), codec.quantize(out.y).numpy())
  assert np.all(np.abs(out.y_hat - out.y) <= 0.5 + 1e-5)


def test_stored_tables_code_identically(codec):
  from sae.entropy.layer import TABLE_KEYS
  tables = codec.coding_tables()
  assert set(tables) == set(TABLE_KEYS)
  other = LayerCodec(tiny_specs()[2], name="el2")
  for v, w in zip(codec.weight_variables, other.weight_variables):
    w.assign(v)
  other.prepare_for_coding(tables)
  y = tf.random.normal((1, 3, 4, 16), stddev=8, seed=9)
  assert codec.compress_latent(y).numpy() == other.compress_latent(y).numpy()
  for key in TABLE_KEYS:
    np.testing.assert_array_equal(other.coding_tables()[key], tables[key])
