"""The mean-scale hyperprior layer (sae.meanscale) inside the cascade."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from sae import checkpoints, codec as sae_codec, meanscale, rangecode
from sae.config import get_preset
from sae.errors import InputError
from sae.meanscale import MeanScaleCodec
from sae.model import ScalableAutoEncoder, to_uint8
from tests.tiny import random_image, tiny_model


@functools.lru_cache(maxsize=None)
def plus_model(seed=0):
  """A tiny sae-plus cascade (mean-scale base, 2 factorized layers)."""
  tf.keras.utils.set_random_seed(seed)
  model = ScalableAutoEncoder(get_preset("tiny", family="sae-plus").layers[:3])
  model.prepare_for_coding()
  return model


def test_the_family_gives_the_base_a_mean_scale_layer():
  model = plus_model()
  assert isinstance(model.codecs[0], MeanScaleCodec)
  assert not any(isinstance(c, MeanScaleCodec) for c in model.codecs[1:])
  assert model.stream_versions == (2,)


@pytest.mark.parametrize("height,width", [(17, 31), (64, 48)])
def test_prefix_decodes_to_cascade_reconstruction(height, width):
  model = plus_model()
  image = random_image(height, width, seed=2)
  expected = model.reconstructions(tf.cast(image, tf.float32)[None])
  strings, shape = model.compress(image, 3)
  for k in range(1, 4):
    decoded = model.decompress(strings[:k], shape).numpy()
    np.testing.assert_array_equal(decoded, to_uint8(expected[k - 1][0]).numpy())


def test_the_encoder_keeps_the_latent_the_decoder_will_have():
  model = plus_model()
  image = tf.cast(random_image(40, 56, seed=5), tf.float32)[None]
  for codec in model.codecs[:2]:  # a mean-scale and a factorized layer
    y = codec.analysis(image)
    string, y_hat = codec.encode_latent(y)
    np.testing.assert_array_equal(
        y_hat.numpy(), codec.decompress_latent(string, tf.shape(y)[1:3]).numpy())
    np.testing.assert_array_equal(y_hat.numpy(), codec.quantize(y).numpy())


def test_a_coarser_step_codes_the_same_latent_in_fewer_bytes():
  # Nested quantization (benchmarks/probe_nested.py): at step 3 the decoder
  # gets y within half a step, in fewer bytes than at step 1.
  codec = plus_model().codecs[0]
  y = codec.analysis(tf.cast(random_image(64, 64, seed=4), tf.float32)[None])
  sizes, errors = [], []
  for step in (1.0, 3.0):
    string, y_hat = codec.encode_latent(y, step=step)
    np.testing.assert_array_equal(
        y_hat.numpy(),
        codec.decompress_latent(string, tf.shape(y)[1:3], step=step).numpy())
    sizes.append(len(string.numpy()[0]))
    errors.append(np.abs(y_hat.numpy() - y.numpy()).max())
  assert sizes[1] < sizes[0]
  assert errors[0] <= 0.5 + 1e-4 < errors[1] <= 1.5 + 1e-4


# The tiny sae-plus model's streams of one image (seeded weights), pinned
# so that a change of the mean-scale layer's stream bytes is seen before a
# model of the family ships (tests/shipped_streams.json pins shipped ones).
PINNED_STREAMS = (
    "56753570125ff5b225f99adf63a3702974079e74dd14834118b39951e15d8321",
    "bf92dcbe17fad8f8f5d8a73147db341993c0825385659eaa04f6ab01faa9c83a",
    "dfe9fff2b64489d9d205160bfdc5fdebccf2fce31257247e7d21e1191eb93c5a",
)


def test_the_streams_bytes_are_those_pinned():
  import hashlib
  strings, _ = plus_model().compress(random_image(40, 56, seed=7), 3)
  assert tuple(hashlib.sha256(s).hexdigest()
               for s in strings.numpy()) == PINNED_STREAMS


def test_stored_tables_code_the_same_bytes_and_ids():
  model = plus_model()
  tables = model.codecs[0].coding_tables()
  assert set(tables) == set(model.codecs[0].table_keys)
  assert set(MeanScaleCodec.table_keys) < set(tables)  # and the exact side's
  other = ScalableAutoEncoder(model.specs)
  for mine, theirs in zip(other.codecs, model.codecs):
    for a, b in zip(mine.weight_variables, theirs.weight_variables):
      a.assign(b)
  other.prepare_for_coding([c.coding_tables() for c in model.codecs])
  assert other.weights_ids() == model.weights_ids()
  image = random_image(40, 56, seed=4)
  np.testing.assert_array_equal(model.compress(image, 2)[0].numpy(),
                                other.compress(image, 2)[0].numpy())
  del tables["gaussian_cdf"]
  with pytest.raises(ValueError, match="gaussian_cdf"):
    MeanScaleCodec(model.specs[0], "base").prepare_for_coding(tables)


def test_the_payload_is_the_side_information_then_the_latent():
  base = plus_model().codecs[0]
  y = base.analysis(tf.cast(random_image(32, 48, seed=6), tf.float32)[None])
  string = base.compress_latent(y)
  np.testing.assert_array_equal(base.decompress_latent(string, [2, 3]),
                                base.quantize(y))


def test_hostile_payloads_end_in_bounded_time():
  base = plus_model().codecs[0]
  rng = np.random.default_rng(0)
  for size in (0, 1, 7, 300):
    payload = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    try:
      y_hat = base.decompress_latent(tf.constant([payload]), [4, 4])
      assert y_hat.shape == (1, 4, 4, base.spec.latent_channels)
    except tf.errors.InvalidArgumentError:
      pass


def test_weights_survive_a_checkpoint(tmp_path):
  model = plus_model()
  checkpoints.save_weights(model.codecs[0], tmp_path, 0)
  fresh = MeanScaleCodec(model.specs[0], "base")
  checkpoints.restore_weights(fresh, tmp_path, 0)
  assert fresh.digest() == model.codecs[0].digest()
  assert len(fresh.weight_variables) > len(
      tiny_model().codecs[0].weight_variables)


def test_streams_of_one_family_are_refused_by_the_other():
  image = random_image(32, 32, seed=8)
  plus_stream = sae_codec.encode(plus_model(), image, 2)
  with pytest.raises(InputError, match="the stream's base was coded with"):
    sae_codec.decode(tiny_model(), plus_stream)
  with pytest.raises(InputError, match="the stream's base was coded with"):
    sae_codec.decode(plus_model(), sae_codec.encode(tiny_model(), image, 2))
  with pytest.raises(InputError, match="version 2 only"):
    sae_codec.encode(plus_model(), image, 2, version=1)


def test_training_moves_only_the_mean_scale_layer():
  model = ScalableAutoEncoder(get_preset("tiny", family="sae-plus").layers[:2])
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
  model = plus_model()
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


def test_enhancement_layers_can_have_their_own_hyperprior():
  tf.keras.utils.set_random_seed(1)
  model = ScalableAutoEncoder(
      get_preset("tiny", family="sae-plus-hyper").layers[:2])
  model.prepare_for_coding()
  assert all(isinstance(c, MeanScaleCodec) for c in model.codecs)
  image = random_image(24, 40, seed=12)
  expected = model.reconstructions(tf.cast(image, tf.float32)[None])
  strings, shape = model.compress(image, 2)
  for k in (1, 2):
    np.testing.assert_array_equal(model.decompress(strings[:k], shape),
                                  to_uint8(expected[k - 1][0]))


def test_a_residual_layer_starts_its_scales_at_one_the_base_at_the_floor():
  # Where a fresh layer prices its latent (sae.meanscale,
  # RESIDUAL_INITIAL_SCALE): at the floor, sending nothing is free and an
  # enhancement layer learned to send nothing for thousands of steps.
  tf.keras.utils.set_random_seed(3)
  model = ScalableAutoEncoder(
      get_preset("tiny", family="sae-plus-hyper").layers[:2])
  image = tf.cast(random_image(64, 64, seed=4), tf.float32)[None]
  indexes = []
  for codec in model.codecs:
    y = codec.analysis(image)
    z_hat = tf.round(codec.hyper_analysis(y))
    _, index = codec._entropy_parameters(z_hat, tf.shape(y)[1:3])
    indexes.append(float(tf.reduce_mean(index)))
  assert indexes[0] < 2
  assert abs(indexes[1] - meanscale.scale_index(1.0)) < 2
  np.testing.assert_allclose(meanscale.scale_fn(meanscale.scale_index(1.0)),
                             1.0, rtol=1e-6)
