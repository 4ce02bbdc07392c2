"""Portable streams (sae.entropy.exact, issue #38): what selects a coding table is
computed exactly, so a stream decodes to the same symbols whatever the
machine's floating point does."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from sae import checkpoints
from sae.entropy import exact
from sae.models.families import build_model
from sae.entropy.meanscale import GAUSSIAN_KEYS, SIDE_PREFIX
from sae.entropy.layer import TABLE_KEYS
from sae.models.transforms import latent_shape, pad_to_stride
from tests.test_nested import nested_config, nested_model
from tests.tiny import random_image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _z_hat(seed=0, shape=(1, 5, 7, 8)):
  rng = np.random.default_rng(seed)
  # As the decoder has it: integers plus the prior's float offset.
  return tf.constant(rng.integers(-6, 7, shape) + 0.3125, tf.float32)


def test_the_exact_transform_is_the_float_one_within_rounding():
  side = nested_model().codecs[0].hyper_synthesis
  transform = exact.ExactTransform(
      side, exact.integer_tables(side, SIDE_PREFIX), SIDE_PREFIX)
  z = _z_hat()
  got, want = transform(z).numpy(), side(z).numpy()
  assert got.dtype == np.float32 and got.shape == want.shape
  np.testing.assert_allclose(got, want, atol=2e-3)
  # Multiples of the activations' grid: fixed-point numbers, not floats.
  grid = got * 2.0 ** exact.ACTIVATION_BITS
  np.testing.assert_array_equal(grid, np.round(grid))


def _channel_split(geometry, a):
  """``geometry``'s convolution summed over two halves of its input
  channels: the same sum in another order, as another kernel library
  might compute it."""
  kernel = geometry.kernel
  half = kernel.shape[2] // 2
  parts = []
  for lo, hi in ((0, half), (half, kernel.shape[2])):
    layer = type(geometry)(
        geometry.filters, geometry.kernel_support, corr=geometry.corr,
        strides_down=geometry.strides_down, strides_up=geometry.strides_up,
        padding=geometry.padding, use_bias=False, dtype=a.dtype,
        kernel_parameter=tf.cast(kernel[:, :, lo:hi], a.dtype))
    parts.append(layer(a[..., lo:hi]))
  return parts[1] + parts[0] + tf.cast(geometry.bias, a.dtype)


def test_another_summation_order_gives_the_same_integers_not_the_same_floats():
  side = nested_model().codecs[0].hyper_synthesis
  transform = exact.ExactTransform(
      side, exact.integer_tables(side, SIDE_PREFIX), SIDE_PREFIX)
  geometry, _ = transform._layers[1]
  rng = np.random.default_rng(1)
  a = rng.integers(-2 ** 16, 2 ** 16, (1, 9, 11, geometry.kernel.shape[2]))
  exact_a = tf.constant(a, tf.float64)
  np.testing.assert_array_equal(geometry(exact_a).numpy(),
                                _channel_split(geometry, exact_a).numpy())
  # The test can fail: the same reordering moves float32 results.
  float_a = tf.constant(a * 1e-4, tf.float32)
  float_geometry = type(geometry)(
      geometry.filters, geometry.kernel_support, corr=geometry.corr,
      strides_down=geometry.strides_down, strides_up=geometry.strides_up,
      padding=geometry.padding, use_bias=True,
      kernel_parameter=tf.cast(geometry.kernel * 1e-4, tf.float32),
      bias_parameter=tf.cast(geometry.bias * 1e-4, tf.float32))
  assert np.any(float_geometry(float_a).numpy() !=
                _channel_split(float_geometry, float_a).numpy())


def _decoded_symbols(model, strings, shape):
  symbols, _, _ = model._decode_symbols(strings, latent_shape(shape))
  return symbols.numpy()


@pytest.mark.parametrize("exact_tables", [True, False])
def test_perturbed_decoder_weights_decode_the_same_symbols_only_when_exact(
    exact_tables):
  """The decoder's float hyper-synthesis perturbed (as another machine's
  arithmetic would): the exact path decodes the encoder's symbols; the
  float path of tables stored before it loses them."""
  def built(noise=0.0):
    tf.keras.utils.set_random_seed(0)
    model = build_model(nested_config())
    layers = model.codecs[0].hyper_synthesis.layers
    # Scales mid-grid, where an index is near a rounding boundary often.
    half = layers[-1].bias.shape[0] // 2
    layers[-1].bias_parameter.assign(layers[-1].bias + np.r_[np.zeros(half), np.full(
        half, 20.5)].astype(np.float32))
    rng = np.random.default_rng(2)
    for v in model.codecs[0].hyper_synthesis.weights:
      v.assign(v * (1 + noise * rng.standard_normal(v.shape)).astype(np.float32))
    return model

  image = random_image(128, 160, seed=5)
  encoder = built()
  encoder.prepare_for_coding()
  tables = [codec.coding_tables() for codec in encoder.codecs]
  if not exact_tables:
    tables[0] = {k: v for k, v in tables[0].items()
                 if not k.startswith(SIDE_PREFIX)}
    encoder.prepare_for_coding(tables)
  decoder = built(noise=1e-2)
  decoder.prepare_for_coding(tables)
  base = encoder.codecs[0]
  y = base.analysis(pad_to_stride(tf.cast(image, tf.float32)[None]))
  z = base.hyper_analysis(y)
  z_hat = base._prior_values(base._prior_symbols(z), tf.shape(z)[1:3])
  rows = [tf.round(model.codecs[0]._coded_parameters(z_hat, tf.shape(y)[1:3])[1])
          .numpy() for model in (encoder, decoder)]
  strings, shape = encoder.compress(image, 4)
  if exact_tables:
    np.testing.assert_array_equal(rows[1], rows[0])
    np.testing.assert_array_equal(_decoded_symbols(decoder, strings, shape),
                                  _decoded_symbols(encoder, strings, shape))
  else:  # the test has teeth: the float path's decoder takes other rows
    assert np.any(rows[1] != rows[0])


def test_tables_stored_before_the_exact_path_keep_the_float_path_and_ids():
  model = nested_model()
  tables = [codec.coding_tables() for codec in model.codecs]
  side_keys = exact.table_keys(model.codecs[0].hyper_synthesis, SIDE_PREFIX)
  assert set(side_keys) < set(tables[0])
  legacy = [dict(tables[0])] + tables[1:]
  for key in side_keys:
    del legacy[0][key]
  tf.keras.utils.set_random_seed(0)
  old = build_model(nested_config())
  old.prepare_for_coding(legacy)
  assert old.codecs[0]._exact_side is None
  assert set(old.codecs[0].table_keys) == set(TABLE_KEYS + GAUSSIAN_KEYS)
  # Another arithmetic, another id: a stream says which one coded it.
  assert old.weights_ids()[0] != model.weights_ids()[0]
  assert old.weights_ids()[1:] != model.weights_ids()[1:]


def test_weights_too_large_for_exact_sums_are_refused():
  side = nested_model().codecs[0].hyper_synthesis
  tables = exact.integer_tables(side, SIDE_PREFIX)
  tables[f"{SIDE_PREFIX}_kernel_2"] = tables[f"{SIDE_PREFIX}_kernel_2"] * 2 ** 30
  with pytest.raises(ValueError, match="too large"):
    exact.ExactTransform(side, tables, SIDE_PREFIX)
  with pytest.raises(ValueError, match="do not fit"):
    exact.ExactTransform(
        side, dict(tables, side_bias_0=np.zeros(3, np.int64)), SIDE_PREFIX)


_DECODE_ELSEWHERE = """
import sys, numpy as np, tensorflow as tf
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
from sae import checkpoints
from sae.stream import bitstream
model = checkpoints.load_model(sys.argv[1])
stream = bitstream.unpack(open(sys.argv[2], "rb").read())
strings = tf.constant(list(stream.payloads))
shape = tf.constant([stream.height, stream.width])
from sae.models.transforms import latent_shape
symbols, _, _ = model._decode_symbols(strings, latent_shape(shape))
np.save(sys.argv[3], symbols.numpy())
np.save(sys.argv[4], model.decompress(strings, shape).numpy())
"""


def test_other_kernel_options_and_one_thread_decode_the_same_symbols(tmp_path):
  """Encoded here; decoded in a process with oneDNN's kernels switched the
  other way and one thread: the same symbols, the same pixels within
  rounding."""
  from sae import codec
  model = nested_model()
  folder = tmp_path / "w"
  checkpoints.write_config(folder, nested_config())
  for k, layer in enumerate(model.codecs):
    checkpoints.save_weights(layer, folder, k)
    checkpoints.save_tables(layer, folder, k)
  image = random_image(80, 112, seed=6)
  (tmp_path / "a.sae").write_bytes(codec.encode(model, image, 4))
  strings, shape = model.compress(image, 4)
  want = _decoded_symbols(model, strings, shape)
  here = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1")
  env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0" if here == "1" else "1",
             PYTHONPATH=ROOT)
  subprocess.run([sys.executable, "-c", _DECODE_ELSEWHERE, str(folder),
                  str(tmp_path / "a.sae"), str(tmp_path / "s.npy"),
                  str(tmp_path / "x.npy")], env=env, check=True, cwd=ROOT)
  np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), want)
  pixels = model.decompress(strings, shape).numpy().astype(int)
  assert np.abs(np.load(tmp_path / "x.npy").astype(int) - pixels).max() <= 1


def test_streams_of_the_float_weights_are_sent_to_the_legacy_folder():
  """weights/sae-nested was re-shipped with the exact path (a new id);
  its streams before that name the folder that keeps the float path."""
  from sae.stream import bitstream
  from sae import codec
  from sae.errors import InputError
  legacy = checkpoints.load_model(
      os.path.join(ROOT, "weights/legacy/sae-nested-1ba8bfab"))
  assert legacy.weights_ids()[-1].hex() == "1ba8bfab"
  assert legacy.codecs[0]._exact_side is None
  current = checkpoints.load_model(os.path.join(ROOT, "weights/sae-nested"))
  assert current.codecs[0]._exact_side is not None
  data = bitstream.pack(24, 40, [b"\x00\x01"] * 4, legacy.weights_ids())
  with pytest.raises(InputError, match="weights/legacy/sae-nested-1ba8bfab"):
    codec.decode(current, data)
