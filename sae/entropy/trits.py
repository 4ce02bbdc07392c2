"""Nested quantization of one latent, coded layer by layer in trits.

A latent u = y - mean (mean from the hyperprior) is quantized at steps
s_0 > s_1 > ... with s_k = 3 s_{k+1}, so that a bin of step s_k is exactly
three bins of step s_{k+1}: layer k + 1 only says which third of its
parent's bin u is in, one trit per element (the trit-planes of DPICT, Lee,
Jeong, Kim, Kim, "DPICT: Deep Progressive Image Compression Using
Trit-Planes", CVPR 2022, arXiv 2112.06334).  Any prefix of the layers
gives u within half its finest step.

The trit of a child is coded with the parent's Gaussian N(0, sigma)
restricted to the parent's bin: three intervals of one child step each.
Its probabilities depend on sigma in child steps (the hyperprior's scale
row at the child's step) and on where the parent bin lies (its symbol p);
mirrored for p < 0, and for |p| > PARENT_LEVELS - 1 the last row serves (a
valid, slightly flatter code).  By the chain rule the layers together cost
what coding the finest symbols directly with the Gaussian costs, up to the
scale rows' rounding and each layer's few bytes of flush.

The tables are integers derived from the scale grid once, in NumPy; a
model that ships stores them (as the Gaussian's), so that every machine
codes with the same counts.
"""

import numpy as np
import tensorflow as tf
from scipy import special

from sae.entropy import rangecode

RATIO = 3  # children per parent bin
PARENT_LEVELS = 16  # |parent symbol| 0 .. 15 have rows of their own
PRECISION = 16


def nest(u, steps):
  """Symbols of u at each step (a list, coarse to fine), each the parent's
  times 3 plus a trit: round(u / s_k) except where a tie rounds out of the
  parent's bin, then its nearest third."""
  for coarse, fine in zip(steps, steps[1:]):
    if not np.isclose(coarse, RATIO * fine):
      raise ValueError(f"steps {list(steps)}: each must be {RATIO} times the next")
  symbols = [tf.round(u / steps[0])]
  for step in steps[1:]:
    symbols.append(refine(symbols[-1], u, step))
  return symbols


def refine(parent, u, step):
  """The symbols of u at ``step`` that nest in ``parent`` (at 3 ``step``):
  round(u / step), or the nearest third of the parent's bin where a tie
  rounded out of it."""
  centre = RATIO * parent
  return centre + tf.clip_by_value(tf.round(u / step) - centre, -1.0, 1.0)


def trit_cdf(scales):
  """tfc's flat table of the trit rows: row r * PARENT_LEVELS + |p| is the
  code of a child of parent symbol p >= 0 under N(0, scales[r]), in child
  steps: its trits -1, 0, +1 as symbols 0, 1, 2, and an escape interval
  of one count (never used) as range coding tables need."""
  sigma = np.asarray(scales, np.float64)[:, None, None]
  parent = np.arange(PARENT_LEVELS, dtype=np.float64)[None, :, None]
  child = RATIO * parent + np.array([-1.0, 0.0, 1.0])
  # Each child bin's mass, from the upper tail (precise far from the mean),
  # relative to the parent bin's so that far-out parents keep a shape.
  upper = special.log_ndtr(-(child - 0.5) / sigma)
  lower = special.log_ndtr(-(child + 0.5) / sigma)
  log_mass = upper + np.log1p(-np.exp(np.minimum(lower - upper, -1e-12)))
  mass = np.exp(log_mass - log_mass.max(axis=-1, keepdims=True))
  mass /= mass.sum(axis=-1, keepdims=True)
  total = (1 << PRECISION) - 1  # one count for the escape interval
  counts = np.maximum(1, np.floor(mass * (total - 3)).astype(np.int64))
  counts[..., 1] += total - counts.sum(axis=-1)  # the rest to the middle
  cdf = np.concatenate([np.zeros(counts.shape[:-1] + (1,), np.int64),
                        np.cumsum(counts, axis=-1),
                        np.full(counts.shape[:-1] + (1,), 1 << PRECISION)],
                       axis=-1).reshape(-1, RATIO + 2)
  rows = np.concatenate([np.full((len(cdf), 1), -PRECISION), cdf], axis=1)
  return rows.reshape(-1).astype(np.int32)


class TritCoder:
  """Codes a refinement layer: (parent symbols, child symbols, scale rows)
  -> a range code, and back.  ``cdf``: stored tables (trit_cdf's)."""

  def __init__(self, cdf):
    self.cdf = np.asarray(cdf, np.int32)
    self._tables = rangecode.Tables(self.cdf)
    self._rows = self.cdf.size // (RATIO + 3)

  def _rows_and_sign(self, parent, scale_rows):
    parent = tf.cast(tf.reshape(parent, [1, -1]), tf.int32)
    scale_rows = tf.reshape(tf.cast(scale_rows, tf.int32), [1, -1])
    rows = (scale_rows * PARENT_LEVELS +
            tf.minimum(tf.abs(parent), PARENT_LEVELS - 1))
    sign = tf.where(parent < 0, -1, 1)
    return tf.clip_by_value(rows, 0, self._rows - 1), sign, parent

  def encode(self, parent, child, scale_rows):
    """Symbols at the parent's and the child's step and the child's scale
    rows, any equal shapes -> (1,) string.  The children must nest."""
    rows, sign, parent = self._rows_and_sign(parent, scale_rows)
    trit = tf.cast(tf.reshape(child, [1, -1]), tf.int32) - RATIO * parent
    check = tf.debugging.assert_less_equal(
        tf.abs(trit), 1, message="child symbols do not nest in their parents")
    with tf.control_dependencies([check]):
      return rangecode.encode(self._tables, trit * sign + 1, rows)

  def decode(self, string, parent, scale_rows):
    """The inverse of encode: -> (child symbols shaped as ``parent``,
    float32, and tfc's end-of-data check)."""
    rows, sign, flat_parent = self._rows_and_sign(parent, scale_rows)
    symbols, consistent = rangecode.decode(self._tables, string, rows)
    # A hostile string may decode escaped values, beyond the table either
    # way: taken as the nearest trit, so the child stays in its parent.
    trit = (tf.clip_by_value(symbols, 0, 2) - 1) * sign
    child = RATIO * flat_parent + trit
    return tf.reshape(tf.cast(child, tf.float32), tf.shape(parent)), consistent
