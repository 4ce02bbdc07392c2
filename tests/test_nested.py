"""The nested family (sae.models.nested): one latent refined in trits by every
layer, a prefix of any length decoded by one synthesis."""

import dataclasses
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from sae import checkpoints
from sae.models.families import build_model
from sae.models.base import to_uint8
from sae.models.nested import NestedAutoEncoder
from tests.tiny import nested_config, nested_model, random_image, write_corpus


def test_the_family_builds_a_nested_model_of_four_steps():
  model = nested_model()
  assert isinstance(model, NestedAutoEncoder)
  assert model.steps == pytest.approx((0.27, 0.09, 0.03, 0.01))


@pytest.mark.parametrize("family,decoder", [
    ("sae-nested", None), ("sae2", None), ("sae-conditional", "transposed"),
    ("sae-conditional", "subpixel")])
@pytest.mark.parametrize("height,width", [(17, 31), (64, 48)])
def test_each_prefix_decodes_to_its_layers_reconstruction(height, width, family,
                                                          decoder):
  model = nested_model(family=family, decoder=decoder)
  image = random_image(height, width, seed=3)
  expected = model.reconstructions(tf.cast(image, tf.float32)[None])
  strings, shape = model.compress(image, 4)
  for k in range(1, 5):
    decoded = model.decompress(strings[:k], shape).numpy()
    np.testing.assert_array_equal(decoded, to_uint8(expected[k - 1][0]).numpy())
    one_band = model.decompress_one_band(strings[:k], shape).numpy()
    np.testing.assert_array_equal(one_band, decoded)


def test_fewer_layers_coded_are_the_first_layers_of_more():
  model = nested_model()
  image = random_image(32, 48, seed=4)
  four, _ = model.compress(image, 4)
  two, _ = model.compress(image, 2)
  assert list(two.numpy()[:2]) == list(four.numpy()[:2])
  assert list(two.numpy()[2:]) == [b"", b""]


def test_every_layer_sends_trits():
  sizes = [len(s) for s in
           nested_model().compress(random_image(64, 64, seed=5), 4)[0].numpy()]
  assert all(size > 8 for size in sizes)


def test_steps_that_do_not_nest_or_latents_that_differ_are_refused():
  layers = list(nested_config().layers)
  with pytest.raises(ValueError, match="3 times"):
    NestedAutoEncoder([layers[0], dataclasses.replace(layers[1], step=0.1)])
  with pytest.raises(ValueError, match="latent channels"):
    NestedAutoEncoder([layers[0], dataclasses.replace(
        layers[1], latent_channels=layers[1].latent_channels + 1)])
  with pytest.raises(ValueError, match="width"):
    NestedAutoEncoder([layers[0], dataclasses.replace(
        layers[1], conv_filters=layers[1].conv_filters + 1)])


def test_a_new_layer_starts_from_the_synthesis_below_it():
  tf.keras.utils.set_random_seed(1)
  model = build_model(nested_config())
  model.start_layer(2)
  for mine, below in zip(model.codecs[2].synthesis.get_weights(),
                         model.codecs[1].synthesis.get_weights()):
    np.testing.assert_array_equal(mine, below)


def test_base_training_codes_the_crops_at_the_layers_steps_in_turn():
  # Eight copies of one crop: each layer's step twice, crop b as b + 4.
  model = nested_model()
  x = tf.repeat(tf.cast(random_image(32, 32, seed=6), tf.float32)[None], 8, 0)
  at_step = [float(model.at_rung(x, r).bpp[0]) for r in range(4)]
  assert at_step == sorted(at_step) and len(set(at_step)) == 4
  for _ in range(3):  # from a random layer
    bpp = model.forward(x, 0, training=False).bpp.numpy()
    np.testing.assert_allclose(bpp[:4], bpp[4:], rtol=1e-5)
    np.testing.assert_allclose(sorted(bpp[:4]), at_step, rtol=1e-5)


def test_an_enhancement_layer_trains_its_own_synthesis_alone():
  tf.keras.utils.set_random_seed(2)
  model = build_model(nested_config())
  variables = model.set_trainable_layer(2)
  assert [v.ref() for v in variables] == [
      v.ref() for v in model.codecs[2].synthesis.trainable_variables]
  x = tf.cast(random_image(32, 32, seed=7), tf.float32)[None]
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model.forward(x, 2).loss)
  grads = tape.gradient(loss, variables + model.base.weight_variables)
  assert all(g is not None for g in grads[:len(variables)])
  assert all(g is None for g in grads[len(variables):])


def test_stored_tables_give_the_same_weights_ids():
  model = nested_model()
  tables = [codec.coding_tables() for codec in model.codecs]
  tf.keras.utils.set_random_seed(0)
  again = build_model(nested_config())
  again.prepare_for_coding(tables)
  assert again.weights_ids() == model.weights_ids()
  damaged = dict(tables[1], trit_cdf=tables[1]["trit_cdf"][:-6])
  with pytest.raises(ValueError, match="trit tables"):
    again.codecs[1].prepare_for_coding(damaged)


@pytest.mark.parametrize("family,damaged", [("sae-nested", 1),
                                            ("sae-conditional", 3)])
def test_a_damaged_layer_is_refused_or_decodes_to_the_image_size(family,
                                                                 damaged):
  model = nested_model(family=family)
  strings, shape = model.compress(random_image(32, 32, seed=8), damaged + 1)
  strings = list(strings.numpy())
  for seed in range(4):
    junk = np.random.default_rng(seed).bytes(len(strings[damaged]))
    try:
      image = model.decompress(tf.constant(strings[:damaged] + [junk]),
                               shape).numpy()
    except tf.errors.InvalidArgumentError as e:
      assert "decode completely" in str(e)
    else:
      assert image.shape == (32, 32, 3)


def test_the_base_finishes_by_training_its_synthesis_alone():
  tf.keras.utils.set_random_seed(3)
  model = build_model(nested_config())
  model.set_trainable_layer(0)
  finish = model.finish(0)
  assert 0 < finish.fraction < 1 and model.finish(1) is None
  synthesis = model.base.synthesis.trainable_variables
  assert [v.ref() for v in finish.variables] == [v.ref() for v in synthesis]
  x = tf.cast(random_image(32, 32, seed=8), tf.float32)[None]
  with tf.GradientTape() as tape:
    out = finish.forward(x)
    loss = tf.reduce_mean(out.loss)
  others = [v for v in model.base.weight_variables
            if all(v is not s for s in synthesis)]
  grads = tape.gradient(loss, synthesis + others)
  assert all(g is not None for g in grads[:len(synthesis)])
  assert all(g is None for g in grads[len(synthesis):])
  # It decodes what the coder sends: the base's rate, hard-quantized.
  np.testing.assert_allclose(out.bpp, model.at_rung(x, 0, False).bpp,
                             rtol=1e-5)
  # The prior no longer trains: its offset is computed once, the same.
  finish.start()
  again = finish.forward(x)
  np.testing.assert_allclose(again.bpp, out.bpp, rtol=1e-6)
  np.testing.assert_allclose(again.total, out.total, atol=1e-3)


def _weights(ckpt, k):
  """{variable name: value} of layer ``k``'s saved weights."""
  path = str(checkpoints.layer_dir(ckpt, k) / "weights")
  return {name: tf.train.load_variable(path, name)
          for name, _ in tf.train.list_variables(path)
          if name.endswith("VARIABLE_VALUE")}


def _changed(before, after):
  return {name for name in before
          if not np.array_equal(before[name], after[name])}


def test_the_base_trains_whole_then_its_synthesis_alone_from_the_recorded_step(
    tmp_path):
  import train_base
  corpus = write_corpus(tmp_path / "corpus", [(64, 64)])
  ckpt = tmp_path / "ckpt"
  common = ["--preset", "tiny", "--corpus", str(corpus), "--checkpoint-dir",
            str(ckpt), "--no-progress", "--seed", "1", "--validate-every", "0"]
  # 10 steps: the last tenth, step 9, trains the synthesis alone.
  assert train_base.main(common + ["--family", "sae-nested", "--steps", "10",
                                   "--stop-at", "8"]) == 0
  at_8 = _weights(ckpt, 0)
  # Resumed with more steps, the boundary stays where the first run put it.
  assert train_base.main(common + ["--steps", "20", "--stop-at", "9"]) == 0
  at_9 = _weights(ckpt, 0)
  assert train_base.main(common + ["--steps", "20", "--stop-at", "11"]) == 0
  state = checkpoints.read_state(ckpt, 0)
  assert state["steps"] == 11 and state["schedule"]["finish_from_step"] == 9
  whole, synthesis = _changed(at_8, at_9), _changed(at_9, _weights(ckpt, 0))
  assert any(name.startswith("analysis/") for name in whole)
  assert any(name.startswith("prior/") for name in whole)
  assert synthesis and all(name.startswith("synthesis/") for name in synthesis)


def test_the_joint_loss_sums_each_prefix_decoded_by_its_own_synthesis():
  model = nested_model()
  x = tf.cast(random_image(32, 48, seed=9), tf.float32)[None]
  weights = [1.0, 0.5, 2.0, 1.0]
  joint = model.forward_joint(x, weights, training=False)
  decoded = [model.forward_decoded(x, k) for k in range(4)]
  # Layer k's term: its rate-distortion loss with the rate of all k + 1
  # layers (each decoded row holds the layer's own rate).
  below = np.cumsum([0.0] + [d.bpp.numpy()[0] for d in decoded[:-1]])
  expected = sum(w * (d.loss.numpy()[0] + b)
                 for w, d, b in zip(weights, decoded, below))
  np.testing.assert_allclose(joint.loss.numpy()[0], expected, rtol=1e-5)
  np.testing.assert_allclose(joint.bpp.numpy()[0], below[-1]
                             + decoded[-1].bpp.numpy()[0], rtol=1e-5)
  np.testing.assert_allclose(joint.total, decoded[-1].total, atol=1e-3)
  # Training: noise in the rates only; the top synthesis decodes the
  # decoder's latent.
  trained = model.forward_joint(x, weights, training=True)
  np.testing.assert_allclose(trained.total, model.reconstructions(x)[-1],
                             atol=1e-3)
  assert np.all(trained.bpp.numpy() != joint.bpp.numpy())


def test_the_joint_phase_teaches_the_analysis_through_each_synthesis():
  model = build_model(nested_config())
  model.prepare_for_coding()
  variables = model.set_trainable_layers(range(4))
  x = tf.cast(random_image(32, 32, seed=10), tf.float32)[None]
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(model.forward_joint(x, [1.0] * 4).loss)
  assert all(g is not None for g in tape.gradient(loss, variables))
  analysis, hyper_analysis, latents = (model.base.analysis,
                                       model.base.hyper_analysis, [])

  def analyse(*args, **kwargs):  # keeps y to differentiate by it
    latents.append(analysis(*args, **kwargs))
    return latents[-1]

  def analyse_hyper(y, *args, **kwargs):  # y's one path left: the latent's
    return hyper_analysis(tf.stop_gradient(y), *args, **kwargs)

  with mock.patch.object(model.base, "analysis", analyse), \
       mock.patch.object(model.base, "hyper_analysis", analyse_hyper):
    with tf.GradientTape(persistent=True) as tape:
      # The top layer's image, which only the top's synthesis makes.
      image = tf.reduce_sum(model.forward_joint(x, [1.0] * 4).total)
  # Through the rounding, straight: y learns from the top's image.
  assert np.any(tape.gradient(image, latents[0]).numpy())
  top, bottom = (model.codecs[k].synthesis.trainable_variables for k in (3, 0))
  assert all(g is not None for g in tape.gradient(image, top))
  assert all(g is None for g in tape.gradient(image, bottom))


@pytest.mark.parametrize("family", ["sae-nested", "sae-conditional"])
def test_progressive_decoding_gives_each_prefix_as_decode_does(family):
  """The contract's refine: a nested model decodes layer by layer through
  the same entry point as a cascade, each step the prefix's image."""
  from sae import codec, progressive
  from sae.stream import bitstream
  model = nested_model(family=family)
  image = random_image(40, 56, seed=8)
  strings, _ = model.compress(image, 4)
  data = bitstream.pack(40, 56, list(strings.numpy()), model.weights_ids())
  steps = list(progressive.decode_progressively(
      model, [data[i:i + 64] for i in range(0, len(data), 64)]))
  assert [s.layers for s in steps] == [1, 2, 3, 4]
  for step in steps:
    np.testing.assert_array_equal(step.image,
                                  codec.decode(model, data, step.layers))


def test_every_family_fulfils_the_contract():
  import inspect
  from sae.models import base, families
  for name in families.FAMILIES:
    cls = families.get(name).model_class()
    assert issubclass(cls, base.LayeredModel)
    assert not inspect.isabstract(cls), name
