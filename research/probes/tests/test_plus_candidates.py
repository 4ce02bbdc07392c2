"""SAE+ probe layers (research/probes/plus_candidates.py): shapes, frozen lower layers, exact prefixes."""

import numpy as np
import pytest
import tensorflow as tf

from research.probes import plus_candidates as plus
from sae.config import TINY_LAYERS

# The SAE+ candidates (issue #24): minutes of tracing, outside the default
# set (python -m pytest -q research/probes/tests).

CANDIDATES = sorted(plus.CANDIDATES)


def _image(h=40, w=50, seed=0):
  rng = np.random.RandomState(seed)
  # Smooth content plus noise: residuals the upper layers actually code.
  yy, xx = np.mgrid[:h, :w]
  base = 128 + 60 * np.sin(xx / 7.0)[..., None] * np.cos(yy / 5.0)[..., None]
  return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", CANDIDATES)
def test_forward_and_reconstruction_shapes(name):
  model = plus.PlusModel(plus.CANDIDATES[name], TINY_LAYERS)
  x = tf.random.uniform((2, 32, 48, 3), 0, 255, seed=1)
  for k in range(model.num_layers):
    out = model.forward(x, k, training=True)
    assert [t.shape for t in out] == [(2,)] * 3
    assert bool(tf.reduce_all(out.bpp > 0))
  recons = model.reconstructions(tf.random.uniform((1, 21, 35, 3), 0, 255))
  assert [r.shape for r in recons] == [(1, 21, 35, 3)] * model.num_layers


@pytest.mark.parametrize("name", ["c-conditional", "d-refinement"])
def test_training_a_layer_leaves_the_lower_ones_unchanged(name):
  model = plus.PlusModel(plus.CANDIDATES[name][:2], TINY_LAYERS)
  model.plus_layers[0].prepare_for_coding()
  before = [layer.digest() for layer in model.plus_layers]
  variables = model.set_trainable_layer(1)
  assert len(variables) == len(model.plus_layers[1].weight_variables)
  optimizer = tf.keras.optimizers.Adam(1e-2)
  x = tf.random.uniform((2, 32, 32, 3), 0, 255, seed=2)
  for _ in range(2):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(model.forward(x, 1).loss)
    grads = tape.gradient(loss, variables)
    assert all(g is not None for g in grads)
    optimizer.apply_gradients(zip(grads, variables))
  after = [layer.digest() for layer in model.plus_layers]
  assert after[0] == before[0]
  assert after[1] != before[1]


def test_the_base_trains_every_variable_it_has():
  model = plus.PlusModel(("meanscale",), TINY_LAYERS)
  variables = model.set_trainable_layer(0)
  # Transforms, hyper transforms and the hyper-latent's prior.
  assert len(variables) == len(model.plus_layers[0].weight_variables)
  base = model.plus_layers[0]
  assert {id(v) for v in variables} == {id(v) for v in base.weight_variables}
  assert len(base.hyper_prior.prior.trainable_variables) > 0


@pytest.mark.parametrize("name", CANDIDATES)
def test_decoding_k_coded_layers_gives_the_k_layer_reconstruction(name):
  model = plus.PlusModel(plus.CANDIDATES[name], TINY_LAYERS)
  model.prepare_for_coding()
  image = _image()
  recons = model.reconstructions(tf.constant(image, tf.float32)[None])
  sizes = []
  for k in range(1, model.num_layers + 1):
    strings = model.compressor(k)(image)
    counts = [plus.strings_per_layer(l) for l in model.plus_layers[:k]]
    assert strings.shape == (sum(counts),)
    decoded = model.decompressor(k)(strings, tf.constant(image.shape[:2]))
    expected = tf.saturate_cast(tf.round(recons[k - 1][0]), tf.uint8)
    np.testing.assert_array_equal(decoded.numpy(), expected.numpy())
    sizes.append(sum(len(s) for s in strings.numpy()))
  assert sizes == sorted(sizes) and sizes[0] < sizes[-1]


def test_payload_strings_round_trip():
  strings = [b"", b"\x00abc", b"z" * 300]
  for n in (1, 2, 3):
    payload = plus.join_strings(strings[:n])
    assert plus.split_strings(payload, n) == strings[:n]


def test_bad_layer_stacks_are_refused():
  with pytest.raises(ValueError, match="only be the base"):
    plus.PlusModel(("meanscale", "meanscale"), TINY_LAYERS)
  with pytest.raises(ValueError, match="needs a layer below"):
    plus.PlusModel(("refinement",), TINY_LAYERS)
  narrow = (TINY_LAYERS[2], TINY_LAYERS[0])  # 16 latent channels, then 8
  with pytest.raises(ValueError, match="at least the lower"):
    plus.PlusModel(("meanscale", "refinement"), narrow)


def test_refinement_starts_from_the_lower_synthesis():
  model = plus.PlusModel(("meanscale", "refinement"), TINY_LAYERS)
  base, refinement = model.plus_layers
  assert refinement.warm_start(base)
  for mine, theirs in zip(refinement.synthesis.weights, base.synthesis.weights):
    np.testing.assert_array_equal(mine.numpy(), theirs.numpy())
  # A wider refinement cannot copy: it says so and keeps its own weights.
  wide = plus.PlusModel(("meanscale", "refinement"),
                        (TINY_LAYERS[0], TINY_LAYERS[2]))
  assert not wide.plus_layers[1].warm_start(wide.plus_layers[0])
