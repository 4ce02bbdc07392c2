"""The conditional family (sae.models.conditional): the nested ladder and a
top layer with a latent of its own, coded given the ladder's latent
(sae.entropy.conditional)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from sae import checkpoints
from sae.entropy import conditional
from sae.entropy.conditional import ConditionalCodec
from sae.models import families
from sae.models.conditional import ConditionalNestedAutoEncoder
from sae.models.families import build_model
from tests.tiny import nested_config, nested_model, random_image

FAMILY = "sae-conditional"


def model_of(seed=0):
  return nested_model(seed=seed, family=FAMILY)


def fresh(seed=0, decoder=None):
  tf.keras.utils.set_random_seed(seed)
  return build_model(nested_config(family=FAMILY, decoder=decoder))


def test_the_family_is_the_nested_ladder_and_a_conditional_top():
  model = model_of()
  assert isinstance(model, ConditionalNestedAutoEncoder)
  assert [s.kind for s in model.specs] == [
      "meanscale", "nested", "nested", "conditional"]
  assert model.ladder_layers == 3 and len(model.steps) == 3
  assert isinstance(model.top, ConditionalCodec)
  paper = families.get(FAMILY).preset("paper").layers
  nested = families.get("sae-nested").preset("paper").layers
  assert paper[:3] == nested[:3]
  assert (paper[3].conv_filters, paper[3].latent_channels) == (128, 192)
  assert paper[3].lmbda == nested[3].lmbda
  assert conditional.conditional_filters(paper[3]) == (64, 96, 128)


# Every prefix decodes to its reconstruction: tests/test_nested.py, for
# every nested family.


def test_the_top_refines_the_ladder_and_the_ladder_codes_without_it():
  model = model_of()
  image = random_image(32, 48, seed=4)
  four, _ = model.compress(image, 4)
  three, _ = model.compress(image, 3)
  assert list(three.numpy()[:3]) == list(four.numpy()[:3])
  assert three.numpy()[3] == b""
  # The same layer table without the top decodes the ladder's strings to
  # the same image: the ladder does not depend on what is above it.
  ladder = ConditionalNestedAutoEncoder(model.specs[:3])
  for mine, theirs in zip(ladder.codecs, model.codecs):
    for a, b in zip(mine.weight_variables, theirs.weight_variables):
      a.assign(b)
  ladder.prepare_for_coding([c.coding_tables() for c in model.codecs[:3]])
  np.testing.assert_array_equal(
      ladder.decompress(three[:3], tf.constant([32, 48])).numpy(),
      model.decompress(three[:3], tf.constant([32, 48])).numpy())


@pytest.mark.parametrize("decoder", list(conditional.DECODERS))
def test_large_images_code_band_by_band_to_the_same_reconstruction(decoder):
  model = fresh(1, decoder)
  model.prepare_for_coding()
  model.band_latent_pixels = 8  # a 150x120 image: one latent row a band
  image = random_image(150, 120, seed=5)
  expected = model.reconstructions(tf.cast(image, tf.float32)[None])
  strings, shape = model.compress(image, 4)
  decoded = model.decompress_float(strings, shape)
  np.testing.assert_allclose(decoded, expected[3][0], atol=1e-2)


def test_the_ladder_latent_the_top_reads_is_exact():
  """ŷₗ selects the top's tables: its means come from the exact
  hyper-synthesis, multiples of 2^-14, and the steps are integers, so ŷₗ
  is the same everywhere, fused multiply-adds or not."""
  tf.keras.utils.set_random_seed(0)
  model = build_model(nested_config(scale=1.0, family=FAMILY))
  model.prepare_for_coding()
  assert model.base.float_means is False
  x = tf.cast(random_image(32, 32, seed=6), tf.float32)[None]
  y_lower, _ = model._ladder_top(x)
  scaled = y_lower.numpy().astype(np.float64) * 2.0 ** 14
  np.testing.assert_array_equal(scaled, np.round(scaled))
  # sae-nested's own means stay float (its streams are unchanged).
  assert nested_model().base.float_means is True


def test_the_top_codes_with_its_stored_integers_not_its_float_weights():
  """A decoder whose float context differs (another machine's arithmetic,
  here a perturbation) decodes the encoder's image: the tables and the
  indexes come from the stored integer context."""
  def built(noise=0.0):
    model = fresh(0)
    last = model.top.context.layers[-1]
    # Scales mid-grid, where an index is near a rounding boundary often.
    half = last.bias.shape[0] // 2
    last.bias_parameter.assign(last.bias + np.r_[np.zeros(half), np.full(
        half, 20.5)].astype(np.float32))
    rng = np.random.default_rng(3)
    for v in model.top.context.weights:
      v.assign(v * (1 + noise * rng.standard_normal(v.shape)).astype(
          np.float32))
    return model

  encoder = built()
  encoder.prepare_for_coding()
  decoder = built(noise=1e-2)
  decoder.prepare_for_coding([c.coding_tables() for c in encoder.codecs])
  image = random_image(48, 64, seed=7)
  strings, shape = encoder.compress(image, 4)
  np.testing.assert_array_equal(decoder.decompress(strings, shape).numpy(),
                                encoder.decompress(strings, shape).numpy())
  # The test has teeth: the float contexts choose other tables.
  y_lower, _ = encoder._ladder_top(
      tf.cast(random_image(48, 64, seed=7), tf.float32)[None])
  rows = [tf.round(m.top.entropy_parameters(y_lower)[1]).numpy()
          for m in (encoder, decoder)]
  assert np.any(rows[0] != rows[1])


def test_stored_tables_give_the_same_ids_and_damaged_ones_are_refused():
  model = model_of()
  tables = [c.coding_tables() for c in model.codecs]
  assert any(k.startswith(conditional.CONTEXT_PREFIX) for k in tables[3])
  again = fresh(0)
  again.prepare_for_coding(tables)
  assert again.weights_ids() == model.weights_ids()
  short = {k: v for k, v in tables[3].items()
           if not k.startswith(conditional.CONTEXT_PREFIX)}
  with pytest.raises(ValueError, match="lack"):
    again.top.prepare_for_coding(short)
  damaged = dict(tables[3], gaussian_cdf_offset=tables[3][
      "gaussian_cdf_offset"][:-1])
  with pytest.raises(ValueError, match="rows"):
    again.top.prepare_for_coding(damaged)


def test_the_top_trains_alone_on_the_frozen_ladder():
  model = fresh(2)
  for codec in model.codecs[:3]:
    codec.prepare_for_coding()
  variables = model.set_trainable_layer(3)
  assert [v.ref() for v in variables] == [
      v.ref() for v in model.top.weight_variables]
  x = tf.cast(random_image(32, 32, seed=9), tf.float32)[None]
  with tf.GradientTape() as tape:
    out = model.forward(x, 3)
    loss = tf.reduce_mean(out.loss)
  lower = [v for c in model.codecs[:3] for v in c.weight_variables]
  grads = tape.gradient(loss, variables + lower)
  assert all(g is not None for g in grads[:len(variables)])
  assert all(g is None for g in grads[len(variables):])
  # Its bpp is the top's own rate: the decoded forward's, as coded.
  decoded = model.forward_decoded(x, 3)
  assert float(decoded.bpp[0]) > 0
  assert model.start_layer(3) is None and model.finish(3) is None


def test_the_rate_reaches_the_new_latent_only_after_the_warm_up():
  model = fresh(3)
  x = tf.cast(random_image(32, 32, seed=10), tf.float32)[None]
  analysis = model.top.analysis.trainable_variables

  def rate_gradient():
    with tf.GradientTape() as tape:
      bpp = tf.reduce_sum(model.forward(x, 3).bpp)
    return max(float(tf.reduce_max(tf.abs(g))) for g in
               tape.gradient(bpp, analysis) if g is not None)

  assert int(model.top.steps_trained) == 0
  assert rate_gradient() == 0.0  # the context learns; w does not pay yet
  assert int(model.top.steps_trained) == 1
  model.top.steps_trained.assign(conditional.RATE_WARMUP_STEPS)
  assert rate_gradient() > 0.0
  # Validation does not count as a training step.
  model.forward(x, 3, training=False)
  assert int(model.top.steps_trained) == conditional.RATE_WARMUP_STEPS + 1


def test_the_joint_loss_adds_the_top_to_the_ladder():
  model = fresh(4)
  x = tf.cast(random_image(32, 32, seed=11), tf.float32)[None]
  ladder = model.forward_joint(x, [1.0, 1.0, 1.0], training=False)
  both = model.forward_joint(x, [1.0, 1.0, 1.0, 1.0], training=False)
  assert float(both.loss[0]) > float(ladder.loss[0])
  assert float(both.bpp[0]) > float(ladder.bpp[0])
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model.forward_joint(x, [0.0, 0.0, 0.0, 1.0]).loss)
  grads = tape.gradient(loss, model.base.analysis.trainable_variables)
  assert all(g is not None for g in grads)  # the analysis learns for the top


def test_the_decoder_changes_the_image_not_the_stream():
  """The sub-pixel decoder was trained on the transposed one's frozen
  analysis and context (research/subpixel_top): the same strings, another
  top weights id, another image."""
  transposed, subpixel = fresh(5, "transposed"), fresh(6, "subpixel")
  for mine, theirs in zip(subpixel.codecs[:3], transposed.codecs[:3]):
    for a, b in zip(mine.weight_variables, theirs.weight_variables):
      a.assign(b)
  for name in ("analysis", "context"):
    for a, b in zip(getattr(subpixel.top, name).weights,
                    getattr(transposed.top, name).weights, strict=True):
      a.assign(b)
  for model in (transposed, subpixel):
    model.prepare_for_coding()
  image = random_image(40, 56, seed=11)
  strings, shape = transposed.compress(image, 4)
  assert list(subpixel.compress(image, 4)[0].numpy()) == list(strings.numpy())
  ids = [m.weights_ids() for m in (transposed, subpixel)]
  assert ids[0][:3] == ids[1][:3] and ids[0][3] != ids[1][3]
  three = [m.decompress(strings[:3], shape).numpy()
           for m in (transposed, subpixel)]
  np.testing.assert_array_equal(three[0], three[1])
  four = [m.decompress(strings, shape).numpy() for m in (transposed, subpixel)]
  assert np.any(four[0] != four[1])
  # Its multiply-adds per pixel are about a tenth of the transposed one's.
  paper = families.get(FAMILY).preset("paper").layers[3]
  costs = [_decoder_macs(dataclasses.replace(paper, decoder=d))
           for d in ("transposed", "subpixel")]
  assert costs[1] < costs[0] / 5


def _decoder_macs(spec):
  """Multiply-adds per image pixel of a conditional layer's synthesis and
  refinement: each kernel's size times its output positions (a transposed
  convolution's kernel spreads over stride² of them; GDNs left out)."""
  codec = ConditionalCodec(spec, "el3", condition_channels=128)
  total, positions = 0.0, 1 / 16 ** 2  # output positions per image pixel
  for layer in codec.synthesis.layers + codec.refine.layers:
    if isinstance(layer, conditional.PixelShuffle):
      positions *= 4
    elif hasattr(layer, "kernel"):
      up = int(np.prod(layer.strides_up))
      positions *= up
      total += np.prod(layer.kernel.shape) * positions / up
  return total


def test_an_unknown_decoder_is_refused():
  spec = dataclasses.replace(nested_config(family=FAMILY).layers[3],
                             decoder="bicubic")
  with pytest.raises(ValueError, match="unknown decoder"):
    ConditionalCodec(spec, "el3", condition_channels=16)


def test_a_conditional_layer_below_the_top_is_refused():
  layers = list(nested_config(family=FAMILY).layers)
  with pytest.raises(ValueError, match="top layer"):
    ConditionalNestedAutoEncoder([layers[0], layers[3], layers[1]])


def test_the_config_round_trips(tmp_path):
  for decoder in conditional.DECODERS:
    config = nested_config(family=FAMILY, decoder=decoder)
    checkpoints.write_config(tmp_path, config)
    assert checkpoints.read_config(tmp_path) == config
    # The default is left out: folders written before it read as they were.
    assert ("decoder" in (tmp_path / "config.json").read_text()) == (
        decoder != "transposed")
  wrong = dataclasses.replace(config, layers=config.layers[:3] + (
      dataclasses.replace(config.layers[3], kind="nested"),))
  checkpoints.write_config(tmp_path, wrong)
  with pytest.raises(Exception, match="conditional"):
    checkpoints.read_config(tmp_path)


# Trains through the scripts (about 40 s): with the full set (-m full).
@pytest.mark.full
def test_a_top_trained_by_train_el3_on_forked_nested_layers_codes(
    tmp_path, capsys):
  """The README's path: sae-nested's three lower layers forked into an
  sae-conditional folder (tools/fork_weights.py --family), train_el3.py
  trains the top on them, frozen; the command line codes with it."""
  import test_el3
  import train_base
  import train_el1
  import train_el2
  import train_el3
  from PIL import Image

  from sae.cli import commands
  from tests.test_checkpoints import _fork_tool
  from tests.tiny import write_corpus
  fork_weights = _fork_tool()
  corpus = write_corpus(tmp_path / "corpus", [(64, 64), (80, 96)])
  nested, ckpt = tmp_path / "nested", tmp_path / "cond"
  common = ["--preset", "tiny", "--corpus", str(corpus), "--steps", "2",
            "--no-progress", "--seed", "1", "--checkpoint-dir"]
  assert train_base.main(common + [str(nested), "--family", "sae-nested"]) == 0
  assert train_el1.main(common + [str(nested)]) == 0
  assert train_el2.main(common + [str(nested)]) == 0
  # A nested el3 cannot start a conditional model: its kind differs.
  assert train_el3.main(common + [str(nested)]) == 0
  assert fork_weights.main([str(nested), str(tmp_path / "no"), "--family",
                            FAMILY]) == 2
  assert "conditional" in capsys.readouterr().err
  assert not (tmp_path / "no").exists()
  assert fork_weights.main([str(nested), str(ckpt), "--layers", "3",
                            "--family", FAMILY]) == 0
  assert train_el3.main(common + [str(ckpt)]) == 0
  config = checkpoints.read_config(ckpt)
  assert config.family == FAMILY and config.layers[3].kind == "conditional"
  state = checkpoints.read_state(ckpt, 3)
  assert state["lower_layer_sha256_before"] == state["lower_layer_sha256_after"]
  assert state["steps"] == 2
  model = checkpoints.load_model(ckpt)
  assert int(model.top.steps_trained) == 2  # the warm-up resumes with it
  out = tmp_path / "r.json"
  assert test_el3.main(["--kodak", str(corpus), "--weights", str(ckpt),
                        "--out", str(out), "--no-progress"]) == 0
  image, stream = corpus / "img1.png", tmp_path / "a.sae"
  assert commands.main(["compress", str(image), str(stream), "--weights",
                        str(ckpt)]) == 0
  for k in (3, 4):
    png = tmp_path / f"{k}.png"
    assert commands.main(["decompress", str(stream), str(png), "--layers",
                          str(k), "--weights", str(ckpt)]) == 0
    assert np.asarray(Image.open(png)).shape == (80, 96, 3)
