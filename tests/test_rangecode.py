"""sae.entropy.rangecode: exact, tfc-compatible where it can be, bounded always."""

import threading

import numpy as np
import pytest
import tensorflow as tf

from sae.entropy import rangecode
from sae.config import TINY_LAYERS
from sae.entropy.layer import LayerCodec

HW = (6, 5)


@pytest.fixture(scope="module")
def layer():
  tf.keras.utils.set_random_seed(3)
  codec = LayerCodec(TINY_LAYERS[0], name="base")
  codec.prepare_for_coding()
  return codec


def latents(scale, outliers=()):
  rng = np.random.default_rng(0)
  y = rng.normal(0, scale, (1, *HW, TINY_LAYERS[0].latent_channels))
  for i, value in enumerate(outliers):
    y.flat[7 * i + 3] = value
  return tf.constant(y, tf.float32)


def table_span(layer):
  """Per channel, the values the table codes without an escape."""
  tables = rangecode.Tables(layer.coder.cdf.numpy())
  low = layer.coder.cdf_offset.numpy() + layer.coder.quantization_offset.numpy()
  return low, low + tables.escape_symbol.numpy() - 1


def test_escape_table_is_a_cdf():
  cdf = rangecode.ESCAPE_CDF
  assert cdf[0] == rangecode.ESCAPE_PRECISION and cdf[1] == 0
  assert cdf[-1] == 1 << rangecode.ESCAPE_PRECISION
  assert len(cdf) == rangecode.ESCAPE_SYMBOLS + 2
  assert np.all(np.diff(cdf[1:]) >= 1)  # every distance codable


def test_tables_refuse_what_is_not_a_tfc_table():
  with pytest.raises(ValueError):
    rangecode.Tables([16, 0, 65536])      # positive precision: not tfc's
  with pytest.raises(ValueError):
    rangecode.Tables([-16, 0, 100, 200])  # never reaches 1 << 16


def test_latents_inside_the_table_code_byte_for_byte_as_tfc(layer):
  low, high = table_span(layer)
  y = tf.clip_by_value(latents(1.0), low, high)
  string = layer.compress_latent(y)
  assert string.numpy()[0] == layer.coder.compress(y).numpy()[0]
  np.testing.assert_array_equal(layer.decompress_latent(string, HW),
                                layer.quantize(y))


@pytest.mark.parametrize("outliers", [(150.0, -150.0), (2000.0, -2000.0, 9.0)])
def test_latents_outside_the_table_round_trip_exactly(layer, outliers):
  low, high = table_span(layer)
  y = latents(3.0, outliers)
  assert np.any(y.numpy() > high) and np.any(y.numpy() < low)
  string = layer.compress_latent(y)
  np.testing.assert_array_equal(layer.decompress_latent(string, HW),
                                layer.quantize(y))
  # The legacy format (sae.stream.legacy) codes the same values with tfc's
  # escape.
  np.testing.assert_array_equal(
      layer.coder.decompress(layer.coder.compress(y), HW), layer.quantize(y))


def test_latent_beyond_the_escape_table_is_refused(layer):
  with pytest.raises(tf.errors.InvalidArgumentError, match="outside the range"):
    layer.compress_latent(latents(1.0, (1e5,)))


@pytest.mark.parametrize("payload", [
    b"", b"\x00" * 64, b"\xff" * 64, bytes(range(256)) * 4,
    np.random.default_rng(1).bytes(300)])
def test_any_string_decodes_only_the_declared_symbols(layer, payload,
                                                      decoded_symbols):
  """What hangs tfc's overflow decoder (zero bits past the end, the escape
  interval everywhere) ends here after the declared number of symbols, an
  escape each at most."""
  hw = (64, 64)
  declared = hw[0] * hw[1] * TINY_LAYERS[0].latent_channels
  outcome = {}

  def run():
    try:
      outcome["latent"] = layer.decompress_latent(tf.constant([payload]), hw)
    except tf.errors.InvalidArgumentError:
      outcome["refused"] = True

  thread = threading.Thread(target=run, daemon=True)
  thread.start()
  thread.join(120)
  assert not thread.is_alive(), "decoding did not end"
  if "latent" in outcome:
    assert outcome["latent"].shape == (1, *hw, TINY_LAYERS[0].latent_channels)
  assert declared <= sum(decoded_symbols) <= 2 * declared
