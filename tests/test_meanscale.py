"""The mean-scale hyperprior layer (sae.entropy.meanscale), the nested family's base."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from sae import checkpoints, codec as sae_codec
from sae.models import families
from sae.entropy import rangecode
from sae.config import ModelConfig
from sae.errors import InputError
from sae.entropy.meanscale import MeanScaleCodec
from tests.tiny import nested_model, random_image, tiny_model


@functools.lru_cache(maxsize=None)
def mean_scale_layer(seed=0):
  """A tiny mean-scale layer (the tiny nested base), tables built."""
  tf.keras.utils.set_random_seed(seed)
  layer = MeanScaleCodec(families.get("sae-nested").preset("tiny").layers[0],
                         "base")
  layer.prepare_for_coding()
  return layer


def test_the_encoder_keeps_the_latent_the_decoder_will_have():
  layer = mean_scale_layer()
  y = layer.analysis(tf.cast(random_image(40, 56, seed=5), tf.float32)[None])
  string, y_hat = layer.encode_latent(y)
  np.testing.assert_array_equal(
      y_hat.numpy(), layer.decompress_latent(string, tf.shape(y)[1:3]).numpy())
  np.testing.assert_array_equal(y_hat.numpy(), layer.quantize(y).numpy())


def test_a_coarser_step_codes_the_same_latent_in_fewer_bytes():
  # Nested quantization (sae.models.nested): at step 3 the decoder gets y within
  # half a step, in fewer bytes than at step 1.
  layer = mean_scale_layer()
  y = layer.analysis(tf.cast(random_image(64, 64, seed=4), tf.float32)[None])
  sizes, errors = [], []
  for step in (1.0, 3.0):
    string, y_hat = layer.encode_latent(y, step=step)
    np.testing.assert_array_equal(
        y_hat.numpy(),
        layer.decompress_latent(string, tf.shape(y)[1:3], step=step).numpy())
    sizes.append(len(string.numpy()[0]))
    errors.append(np.abs(y_hat.numpy() - y.numpy()).max())
  assert sizes[1] < sizes[0]
  assert errors[0] <= 0.5 + 1e-4 < errors[1] <= 1.5 + 1e-4


def test_stored_tables_code_the_same_bytes_and_digests():
  layer = mean_scale_layer()
  tables = layer.coding_tables()
  assert set(tables) == set(layer.table_keys)
  assert set(MeanScaleCodec.table_keys) < set(tables)  # and the exact side's
  other = MeanScaleCodec(layer.spec, "base")
  for a, b in zip(other.weight_variables, layer.weight_variables):
    a.assign(b)
  other.prepare_for_coding(tables)
  assert other.digest() + other.tables_digest() == (
      layer.digest() + layer.tables_digest())
  y = layer.analysis(tf.cast(random_image(40, 56, seed=4), tf.float32)[None])
  assert (other.compress_latent(y).numpy() ==
          layer.compress_latent(y).numpy()).all()
  del tables["gaussian_cdf"]
  with pytest.raises(ValueError, match="gaussian_cdf"):
    MeanScaleCodec(layer.spec, "base").prepare_for_coding(tables)


def test_the_payload_is_the_side_information_then_the_latent():
  layer = mean_scale_layer()
  y = layer.analysis(tf.cast(random_image(32, 48, seed=6), tf.float32)[None])
  string = layer.compress_latent(y)
  np.testing.assert_array_equal(layer.decompress_latent(string, [2, 3]),
                                layer.quantize(y))


def test_hostile_payloads_decode_only_the_declared_symbols(decoded_symbols):
  """Whatever the payload, the decoder reads z's and y's declared symbols
  (an escape each at most), then decodes or refuses."""
  layer = mean_scale_layer()
  channels = layer.spec.latent_channels
  declared = 4 * 4 * channels + layer.prior_channels  # y at 4x4, z at 1x1
  rng = np.random.default_rng(0)
  for size in (0, 1, 7, 300):
    payload = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    decoded_symbols.clear()
    try:
      y_hat = layer.decompress_latent(tf.constant([payload]), [4, 4])
      assert y_hat.shape == (1, 4, 4, channels)
    except tf.errors.InvalidArgumentError:
      pass
    assert declared <= sum(decoded_symbols) <= 2 * declared


def test_weights_survive_a_checkpoint(tmp_path):
  layer = mean_scale_layer()
  checkpoints.save_weights(layer, tmp_path, 0)
  fresh = MeanScaleCodec(layer.spec, "base")
  checkpoints.restore_weights(fresh, tmp_path, 0)
  assert fresh.digest() == layer.digest()
  assert len(fresh.weight_variables) > len(
      tiny_model().codecs[0].weight_variables)


def test_streams_of_one_family_are_refused_by_the_other():
  image = random_image(32, 32, seed=8)
  nested_stream = sae_codec.encode(nested_model(), image, 2)
  with pytest.raises(InputError, match="the stream's base was coded with"):
    sae_codec.decode(tiny_model(), nested_stream)
  with pytest.raises(InputError, match="the stream's base was coded with"):
    sae_codec.decode(nested_model(), sae_codec.encode(tiny_model(), image, 2))


def test_training_the_base_moves_only_the_mean_scale_layer():
  preset = families.get("sae-nested").preset("tiny")
  model = families.build_model(
      ModelConfig(preset.layers[:2], preset="tiny", family="sae-nested"))
  variables = model.set_trainable_layer(0)
  assert len(variables) == len(model.codecs[0].weight_variables)
  before = model.codecs[1].digest()
  x = tf.cast(random_image(32, 32), tf.float32)[None]
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model.forward(x, 0).loss)
  grads = tape.gradient(loss, variables)
  assert all(g is not None for g in grads)
  hyper = {id(v) for v in model.codecs[0].hyper_synthesis.weights}
  assert any(float(tf.reduce_sum(tf.abs(g))) > 0
             for g, v in zip(grads, variables) if id(v) in hyper)
  assert model.codecs[1].digest() == before


def test_parts_decode_in_order():
  tables = rangecode.Tables(np.array([-8, 0, 100, 200, 256], np.int32))
  first = tf.constant([[0, 1, 5, -2]])
  second = tf.constant([[2, 0, 9]])
  string = rangecode.encode_parts(tables, [(first, tf.zeros_like(first)),
                                           (second, tf.zeros_like(second))])
  handle = rangecode.start_decoding(tables, string)
  handle, a = rangecode.decode_part(tables, handle, tf.zeros_like(first))
  handle, b = rangecode.decode_part(tables, handle, tf.zeros_like(second))
  assert bool(rangecode.finish_decoding(handle))
  np.testing.assert_array_equal(a, first)
  np.testing.assert_array_equal(b, second)


def test_every_decoding_graph_derives_the_same_scale_indexes():
  # The decoder recomputes each latent's table row from the side
  # information; a row computed differently would derail the range decoder.
  from sae import progressive
  model = nested_model()
  image = random_image(48, 80, seed=10)
  data = sae_codec.encode(model, image, 3)   # compress_one_band
  reference = sae_codec.decode(model, data)  # decompress_one_band
  stream = sae_codec.bitstream.unpack(data)
  general = model.decompress(tf.constant(list(stream.payloads)),
                             tf.constant([48, 80])).numpy()
  decoder = progressive.ProgressiveDecoder(model)
  list(decoder.feed(data))
  np.testing.assert_array_equal(general, reference)
  np.testing.assert_array_equal(decoder.image, reference)
