import numpy as np
import pytest
import tensorflow as tf

from sae import codec as sae_codec
from sae.models.base import to_uint8
from sae.models.model import ScalableAutoEncoder
from tests.tiny import random_image, tiny_model, tiny_specs


@pytest.mark.parametrize("height,width", [(17, 31), (48, 32), (64, 80)])
def test_prefix_decodes_to_cascade_reconstruction(height, width):
  model = tiny_model()
  image = random_image(height, width)
  expected = model.reconstructions(tf.cast(image, tf.float32)[None])
  for k in range(1, model.num_layers + 1):
    strings, shape = model.compress(image, k)
    assert all(len(s) > 0 for s in strings.numpy()[:k])
    assert all(len(s) == 0 for s in strings.numpy()[k:])
    decoded = model.decompress(strings[:k], shape).numpy()
    assert decoded.shape == (height, width, 3)
    np.testing.assert_array_equal(decoded, to_uint8(expected[k - 1][0]).numpy())


def test_large_images_code_band_by_band_to_the_same_reconstruction():
  model = ScalableAutoEncoder(tiny_specs())
  model.prepare_for_coding()
  model.band_latent_pixels = 8  # a 150x120 image: one latent row a band
  image = random_image(150, 120)
  expected = model.reconstructions(tf.cast(image, tf.float32)[None])
  for k in (1, 4):
    strings, shape = model.compress(image, k)
    decoded = model.decompress_float(strings[:k], shape)
    np.testing.assert_allclose(decoded, expected[k - 1][0], atol=1e-3)


def test_lower_chunks_do_not_depend_on_upper_layers():
  model = tiny_model()
  image = random_image(40, 40, seed=3)
  all_layers, _ = model.compress(image, 4)
  two, _ = model.compress(image, 2)
  assert list(all_layers.numpy()[:2]) == list(two.numpy()[:2])


def test_residual_chain_uses_inference_reconstructions():
  model = tiny_model()
  x = tf.cast(random_image(32, 32, seed=5), tf.float32)[None]
  lower = model.lower_reconstruction(x, 2)
  np.testing.assert_allclose(lower.numpy(), model.reconstructions(x)[1].numpy(),
                             atol=1e-3)
  assert model.lower_reconstruction(x, 0).numpy().max() == 0


@pytest.mark.parametrize("k,channels", [(0, 3), (1, 3), (3, 3), (2, 6)])
def test_one_step_changes_only_layer_k(k, channels):
  from sae.train import train_steps
  tf.random.set_seed(0)
  model = ScalableAutoEncoder(tiny_specs(4))
  for codec in model.codecs[:k]:
    codec.prepare_for_coding()
  variables = model.set_trainable_layer(k)
  before = [c.digest() for c in model.codecs]
  optimizer = tf.keras.optimizers.Adam(1e-3)
  step = train_steps.make_train_step(train_steps.layer_forward(model, k),
                                   variables, optimizer,
                               tf.distribute.get_strategy(), 2)
  # 6 channels: [image, precomputed reconstruction of the lower layers].
  step(tf.random.uniform((2, 32, 32, channels), 0, 255))
  after = [c.digest() for c in model.codecs]
  for j in range(4):
    assert (before[j] == after[j]) == (j != k), f"layer {j}"


def test_lower_of_image_is_the_cascade_below_k():
  model = tiny_model()
  image = tf.cast(random_image(20, 36, seed=2), tf.float32)
  lower = model.lower_of_image(2)(image)
  expected = model.reconstructions(image[None])[1][0]
  np.testing.assert_allclose(lower.numpy(), expected.numpy(), atol=1e-3)


def test_trainable_set_is_exactly_layer_k():
  model = ScalableAutoEncoder(tiny_specs(3))
  variables = model.set_trainable_layer(1)
  names = {v.name for v in variables}
  assert names == {v.name for v in model.codecs[1].trainable_variables}
  assert len(model.trainable_variables) == len(variables)


def test_weights_ids_are_chained():
  a, b = tiny_model(seed=0), tiny_model(num_layers=1, seed=1)
  assert len(a.weights_ids()) == 4 and all(len(i) == 4 for i in a.weights_ids())
  assert a.weights_ids()[0] != b.weights_ids()[0]
  # Same values in a model built elsewhere (other name scope): same ids.
  # Its tables are a's (estimating them costs about a second per layer;
  # test_weights_ids_cover_coding_tables covers tables that differ).
  tables = [codec.coding_tables() for codec in a.codecs]
  with tf.name_scope("elsewhere"):
    c = ScalableAutoEncoder(tiny_specs(4))
  for src, dst in zip(a.codecs, c.codecs):
    for v, w in zip(src.weight_variables, dst.weight_variables):
      w.assign(v)
  c.prepare_for_coding(tables)
  assert c.weights_ids() == a.weights_ids()
  # Changing the top layer changes only the top id; a lower one changes
  # its own and all above.
  var = c.codecs[3].weight_variables[0]
  var.assign(var + 1)
  c.prepare_for_coding(tables)
  assert c.weights_ids()[:3] == a.weights_ids()[:3]
  assert c.weights_ids()[3] != a.weights_ids()[3]
  var = c.codecs[1].weight_variables[0]
  var.assign(var + 1)
  c.prepare_for_coding(tables)
  assert c.weights_ids()[0] == a.weights_ids()[0]
  assert all(x != y for x, y in zip(c.weights_ids()[1:], a.weights_ids()[1:]))


def test_weights_ids_cover_coding_tables():
  model = tiny_model(seed=0)
  model.prepare_for_coding()
  tables = [c.coding_tables() for c in model.codecs]
  ids = model.weights_ids()
  # The same weights with one cdf entry off by one (still a valid table): a
  # different id from there up.
  tables[2] = dict(tables[2])
  tables[2]["cdf"] = tables[2]["cdf"].copy()
  tables[2]["cdf"][-2] -= 1
  assert tables[2]["cdf"][-3] <= tables[2]["cdf"][-2]
  model.prepare_for_coding(tables)
  assert model.weights_ids()[:2] == ids[:2]
  assert all(a != b for a, b in zip(model.weights_ids()[2:], ids[2:]))


def test_decode_refuses_other_weights():
  from sae.errors import InputError
  image = random_image(16, 16)
  stream = sae_codec.encode(tiny_model(seed=0), image, 2)
  with pytest.raises(InputError, match="weights"):
    sae_codec.decode(tiny_model(seed=1), stream)


def test_one_band_functions_code_as_the_general_ones():
  model = tiny_model()
  image = random_image(40, 56, seed=9)
  assert model.fits_one_band(40, 56)
  strings, shape = model.compress(image, 4)
  one, _ = model.compress_one_band(image, 4)
  assert list(one.numpy()) == list(strings.numpy())
  np.testing.assert_array_equal(model.decompress_one_band(strings[:3], shape),
                                model.decompress(strings[:3], shape))


def test_one_band_functions_refuse_a_banded_image():
  model = ScalableAutoEncoder(tiny_specs(1))
  model.prepare_for_coding()
  model.band_latent_pixels = 8  # a 64x128 image: 8 latent columns a row
  assert not model.fits_one_band(64, 128) and model.fits_one_band(16, 128)
  with pytest.raises(tf.errors.InvalidArgumentError, match="one band"):
    model.compress_one_band(random_image(64, 128), 1)


def test_frozen_kernels_follow_restored_and_trained_weights(tmp_path):
  from sae import checkpoints
  source = ScalableAutoEncoder(tiny_specs(1))
  checkpoints.save_weights(source.codecs[0], tmp_path, 0)
  model = ScalableAutoEncoder(tiny_specs(1))
  model.prepare_for_coding()  # kernels frozen at the random weights
  checkpoints.restore_weights(model.codecs[0], tmp_path, 0)
  for mine, theirs in zip(model.codecs[0].synthesis.layers,
                          source.codecs[0].synthesis.layers):
    if hasattr(mine, "kernel_parameter"):
      np.testing.assert_array_equal(mine.kernel, theirs.kernel)
  model.prepare_for_coding()
  variables = model.set_trainable_layer(0)  # trained again: not frozen
  x = tf.cast(random_image(32, 32), tf.float32)[None]
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model.forward(x, 0).loss)
  assert all(g is not None for g in tape.gradient(loss, variables))
