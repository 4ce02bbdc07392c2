"""SAE-2 (sae.models.sae2): the nested layers of one wide, tapered latent,
its base trained single-rate at the top layer's step and lambda."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from sae import checkpoints
from sae.config import ModelConfig
from sae.models import families
from sae.models.base import to_uint8
from sae.models.sae2 import WideNestedAutoEncoder
from sae.models.transforms import tapered_filters
from tests.tiny import nested_config, nested_model, random_image


def sae2_model():
  return nested_model(family="sae2")


def test_the_layers_are_tapered_and_the_hyper_latent_narrower():
  model = sae2_model()
  spec = model.specs[0]
  assert isinstance(model, WideNestedAutoEncoder)
  assert all(s.transforms == "tapered" for s in model.specs)
  widths = [layer.filters for layer in model.base.analysis.layers[1:]]
  assert widths == list(tapered_filters(spec)) + [spec.latent_channels]
  assert model.base.prior_channels == spec.conv_filters * 2 // 3
  # Plain kernels: no Fourier coefficients among the variables.
  names = [v.name for v in model.base.weight_variables]
  assert not any("kernel_real" in n or "kernel_imag" in n for n in names)


def test_the_paper_preset_is_the_research_runs_network():
  spec = families.get("sae2").preset("paper").layers[0]
  assert tapered_filters(spec) == (48, 96, 192)
  assert spec.latent_channels == 320
  assert families.get("sae2").preset("paper").layers[-1].lmbda == 0.05


def test_the_base_trains_single_rate_at_the_top_step_and_lambda():
  model = build_sae2(seed=2)
  for k in range(1, 4):
    model.start_layer(k)
  x = tf.cast(random_image(32, 48, seed=7), tf.float32)[None]
  base = model.forward(x, 0, training=False)
  decoded = [model.forward_decoded(x, k) for k in range(4)]
  # Every layer's synthesis is the base's now: the base's loss is the top
  # prefix's, all four layers' bits at the top lambda.
  total = sum(float(d.bpp[0]) for d in decoded)
  np.testing.assert_allclose(float(base.bpp[0]), total, rtol=1e-5)
  np.testing.assert_allclose(float(base.mse[0]), float(decoded[3].mse[0]),
                             rtol=1e-5)
  top = model.specs[3].lmbda
  np.testing.assert_allclose(float(base.loss[0]),
                             total + top * float(base.mse[0]), rtol=1e-5)


def test_the_base_gradient_reaches_the_analysis_through_the_rounding():
  model = build_sae2(seed=3)
  x = tf.cast(random_image(32, 32, seed=8), tf.float32)[None]
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(model.forward(x, 0).loss)
  grads = tape.gradient(loss, model.base.analysis.trainable_variables)
  assert all(g is not None and float(tf.reduce_max(tf.abs(g))) > 0
             for g in grads)


def test_every_layer_starts_from_the_base_synthesis_and_the_base_keeps_it():
  model = build_sae2(seed=4)
  assert model.finish(0) is None
  for k in (1, 2, 3):
    model.start_layer(k)
    for mine, base in zip(model.codecs[k].synthesis.get_weights(),
                          model.base.synthesis.get_weights()):
      np.testing.assert_array_equal(mine, base)


def test_layers_of_the_other_transforms_are_refused():
  layers = list(nested_config(family="sae2").layers)
  with pytest.raises(ValueError, match="tapered"):
    WideNestedAutoEncoder([dataclasses.replace(s, transforms="bls2017")
                           for s in layers])


def test_the_config_round_trips_and_older_configs_stay_as_they_were(tmp_path):
  config = nested_config(family="sae2")
  checkpoints.write_config(tmp_path, config)
  assert checkpoints.read_config(tmp_path) == config
  nested = families.get("sae-nested").preset("tiny").layers[0]
  assert "transforms" not in nested.to_dict()
  assert config.layers[0].to_dict()["transforms"] == "tapered"


def build_sae2(seed):
  tf.keras.utils.set_random_seed(seed)
  return families.build_model(nested_config(family="sae2"))


# Trains through the script (about 20 s): with the full set (-m full).
@pytest.mark.full
def test_a_base_trained_by_train_base_codes_and_decodes(tmp_path):
  import train_base
  from tests.tiny import write_corpus
  corpus = write_corpus(tmp_path / "corpus", [(64, 64)])
  ckpt = tmp_path / "ckpt"
  assert train_base.main(
      ["--preset", "tiny", "--corpus", str(corpus), "--checkpoint-dir",
       str(ckpt), "--no-progress", "--seed", "1", "--validate-every", "0",
       "--family", "sae2", "--steps", "3"]) == 0
  config = checkpoints.read_config(ckpt)
  assert config.family == "sae2" and config.layers[0].transforms == "tapered"
  model = checkpoints.load_model(ckpt)
  image = random_image(40, 56, seed=9)
  strings, shape = model.compress(image, 1)
  decoded = model.decompress(strings, shape).numpy()
  assert decoded.shape == (40, 56, 3)
  expected = model.reconstructions(tf.cast(image, tf.float32)[None])[0]
  np.testing.assert_array_equal(decoded, to_uint8(expected[0]).numpy())
  assert isinstance(config, ModelConfig)
