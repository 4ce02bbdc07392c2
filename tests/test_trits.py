"""The layered trit coder of one nested latent (sae.entropy.trits)."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from sae.entropy import meanscale, rangecode, trits

STEPS = (9.0, 3.0, 1.0)


@functools.lru_cache(maxsize=None)
def coder():
  scales = meanscale.scale_fn(
      np.arange(meanscale.SCALES_LEVELS, dtype=np.float32)).numpy()
  return trits.TritCoder(trits.trit_cdf(scales))


def latent(n=4000, seed=0):
  """u = y - mean and the float scale indexes of its Gaussians."""
  rng = np.random.default_rng(seed)
  sigma = np.exp(rng.uniform(np.log(0.2), np.log(60.0), n)).astype(np.float32)
  u = (rng.standard_normal(n) * sigma).astype(np.float32)
  return tf.constant(u[None]), tf.constant(meanscale.scale_index(sigma)[None])


def rows_at(index, step):
  return tf.cast(tf.round(meanscale.index_at_step(index, step)), tf.int32)


def test_nested_symbols_refine_their_parents_to_half_a_step():
  u, _ = latent()
  symbols = trits.nest(u, STEPS)
  for parent, child in zip(symbols, symbols[1:]):
    assert set(np.unique(child - 3 * parent)) <= {-1.0, 0.0, 1.0}
  for step, q in zip(STEPS, symbols):
    assert np.abs(q.numpy() * step - u.numpy()).max() <= step / 2 + 1e-4


def test_a_tie_stays_in_its_parents_bin():
  # u / 9 = 0.5 rounds to 0 (half to even); u / 3 = 1.5 would round to 2,
  # outside parent 0's children -1, 0, 1.
  symbols = trits.nest(tf.constant([[4.5]]), STEPS)
  assert [float(q[0, 0]) for q in symbols] == [0.0, 1.0, 4.0]


def test_steps_must_shrink_by_three():
  with pytest.raises(ValueError, match="3 times"):
    trits.nest(tf.zeros([1, 4]), (4.0, 2.0, 1.0))


def test_layers_round_trip_exactly_including_far_and_negative_parents():
  u, index = latent(seed=1)
  u = tf.concat([u, [[-400.0, 400.0, -31.0, 0.0]]], axis=1)
  index = tf.concat([index, [[0.0, 0.0, 63.0, 63.0]]], axis=1)
  symbols = trits.nest(u, STEPS)
  for k in (1, 2):
    rows = rows_at(index, STEPS[k])
    string = coder().encode(symbols[k - 1], symbols[k], rows)
    decoded, consistent = coder().decode(string, symbols[k - 1], rows)
    assert bool(consistent)
    np.testing.assert_array_equal(decoded.numpy(), symbols[k].numpy())


def test_layers_cost_what_the_finest_symbols_cost_coded_at_once():
  # The chain rule, in real bytes: a base at step 9 plus two trit layers
  # against the step-1 symbols coded directly with the Gaussian.
  u, index = latent(n=20000, seed=2)
  symbols = trits.nest(u, STEPS)
  cdf, offset = meanscale.gaussian_tables()
  gaussian = rangecode.Tables(cdf)

  def direct(k):
    rows = rows_at(index, STEPS[k])
    values = tf.cast(symbols[k], tf.int32) - tf.gather(offset, rows)
    return len(rangecode.encode(gaussian, values, rows).numpy()[0])

  layered = direct(0) + sum(
      len(coder().encode(symbols[k - 1], symbols[k],
                         rows_at(index, STEPS[k])).numpy()[0]) for k in (1, 2))
  assert abs(layered - direct(2)) <= 0.01 * direct(2) + 8


def test_children_that_do_not_nest_are_refused():
  parent = tf.constant([[0.0, 1.0]])
  with pytest.raises(tf.errors.InvalidArgumentError, match="nest"):
    coder().encode(parent, tf.constant([[0.0, 5.0]]), tf.constant([[10, 10]]))


def test_any_string_decodes_to_trits_of_the_declared_count(decoded_symbols):
  parent = tf.constant(np.arange(-50, 50, dtype=np.float32)[None])
  rows = tf.fill([1, 100], 5)
  for seed in range(5):
    junk = np.random.default_rng(seed).bytes(40)
    decoded_symbols.clear()
    decoded, _ = coder().decode(tf.constant([junk]), parent, rows)
    trit = decoded.numpy() - 3 * parent.numpy()
    assert set(np.unique(trit)) <= {-1.0, 0.0, 1.0}
    assert 100 <= sum(decoded_symbols) <= 200  # an escape each at most
