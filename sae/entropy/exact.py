"""Exact evaluation of what chooses a coding table (portable streams, #38).

A mean-scale model codes each latent element with the table its scale
index selects, and the decoder computes that index from the side
information with the hyper-synthesis.  Evaluated in float32, the last bits
of that transform depend on the kernel library, the CPU, a GPU or the
TensorFlow build (summation order, fused multiply-adds, Winograd or FFT
convolutions); an index that lands on the other side of a rounding boundary
desynchronises the range decoder.  Ballé, Johnston and Minnen, "Integer
networks for data compression with latent-variable models" (ICLR 2019),
compute such transforms in integer arithmetic.

Here the hyper-synthesis is evaluated in fixed point, with integer kernels
(``WEIGHT_BITS`` fractional bits), integer biases and integer activations
(``ACTIVATION_BITS`` fractional bits), the convolutions computed in float64
on the CPU.  Every product and every partial sum is an integer below 2^53,
so float64 holds it exactly and any summation order, fused or not, gives
the same number; the activations and the rescaling between layers are
integer operations.  The result is the same on every machine that has
IEEE doubles.  A convolution computed by FFT or Winograd would not be
exact: TensorFlow uses neither for float64, and the transform is pinned to
the CPU, as tensorflow-compression pins its table building.

The integers are derived once from the trained float weights (rounding a
float32 times a power of two is exact everywhere) and stored with a
model's coding tables, so the weights id covers them.  With 12 and 10
fractional bits the integer transform differs from the float one by about
1e-3 of an index step: the RD cost is a rounding effect, measured in
docs/portable-streams.md, and no fine-tuning is needed.
"""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

WEIGHT_BITS = 16  # fractional bits of the integer kernels
ACTIVATION_BITS = 14  # fractional bits of the integer activations
# Activations are clipped to this magnitude (in units of 2^-ACTIVATION_BITS)
# so that every partial sum of every layer stays an exact float64 integer;
# real activations are orders of magnitude smaller.
ACTIVATION_LIMIT = 2 ** 26
EXACT_BOUND = 2 ** 53  # float64 integers are exact below this
LEAKY_DIVISOR = 5  # tf.nn.leaky_relu's default slope, 0.2 = 1 / 5

_ACTIVATIONS = {None: None, "linear": None, "relu": "relu",
                "leaky_relu": "leaky_relu"}


def _activation_kind(layer):
  activation = getattr(layer, "activation", None)
  name = None if activation is None else getattr(activation, "__name__", None)
  if name not in _ACTIVATIONS:
    raise ValueError(f"{layer.name}: no exact form for activation {activation!r}"
                     " (linear, relu and leaky_relu have one)")
  return _ACTIVATIONS[name]


def table_keys(transform, prefix):
  """The keys integer_tables stores for ``transform``."""
  return tuple(f"{prefix}_{part}_{i}" for i in range(len(transform.layers))
               for part in ("kernel", "bias"))


def integer_tables(transform, prefix) -> dict:
  """A transform of SignalConv2D layers (linear, ReLU or leaky ReLU) ->
  its integer kernels and biases, int64 NumPy arrays by key."""
  tables = {}
  for i, layer in enumerate(transform.layers):
    _activation_kind(layer)  # refuses a transform it cannot compute exactly
    kernel = np.asarray(layer.kernel.numpy(), np.float64)
    bias = (np.asarray(layer.bias.numpy(), np.float64) if layer.use_bias
            else np.zeros(layer.filters))
    tables[f"{prefix}_kernel_{i}"] = np.round(
        kernel * 2.0 ** WEIGHT_BITS).astype(np.int64)
    tables[f"{prefix}_bias_{i}"] = np.round(
        bias * 2.0 ** (WEIGHT_BITS + ACTIVATION_BITS)).astype(np.int64)
  return tables


class ExactTransform:
  """``transform``'s geometry with the stored integer weights: float32 in,
  float32 out (multiples of 2^-ACTIVATION_BITS), bit-identical everywhere.

  ``float_outputs``: the last layer's output channels that select no table
  (a mean-scale model's means, which only move the reconstruction): they
  are computed in float32 from the exact activations below them, at a
  fifth of a float64 convolution's cost, and may differ across machines
  by float rounding.

  Raises:
    ValueError: the tables do not fit the transform, or a layer's partial
      sums could leave float64's exact integers.
  """

  def __init__(self, transform, tables, prefix, float_outputs=None):
    self._layers = []
    last = len(transform.layers) - 1
    for i, layer in enumerate(transform.layers):
      kernel = np.asarray(tables[f"{prefix}_kernel_{i}"], np.int64)
      bias = np.asarray(tables[f"{prefix}_bias_{i}"], np.int64)
      if (kernel.shape != tuple(layer.kernel.shape) or
          bias.shape != (layer.filters,)):
        raise ValueError(f"{prefix} layer {i}: stored integer weights of "
                         f"shape {kernel.shape}, {bias.shape} do not fit")
      # Every output sums at most sum|kernel| products of activations below
      # ACTIVATION_LIMIT, plus the bias: the largest partial sum's bound.
      fan_in = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
      if (fan_in * ACTIVATION_LIMIT + np.abs(bias)).max() >= EXACT_BOUND:
        raise ValueError(f"{prefix} layer {i}: integer weights too large for "
                         "exact float64 sums")
      exact_out = np.arange(layer.filters)
      if i == last and float_outputs is not None:
        exact_out = np.setdiff1d(exact_out, np.arange(layer.filters)[
            float_outputs])
        rest = np.arange(layer.filters)[float_outputs]
        self._float_head = (_geometry(
            layer, kernel[..., rest] * 2.0 ** -WEIGHT_BITS,
            bias[rest] * 2.0 ** -(WEIGHT_BITS + ACTIVATION_BITS), tf.float32),
                            rest, exact_out)
      self._layers.append((_geometry(layer, kernel[..., exact_out],
                                     bias[exact_out], tf.float64),
                           _activation_kind(layer)))
    if float_outputs is None:
      self._float_head = None

  def __call__(self, x):
    with tf.device("/CPU:0"):
      # Inputs to a multiple of 2^-ACTIVATION_BITS: float32 times a power of
      # two is exact, and so is the rounding.
      a = tf.round(tf.cast(x, tf.float64) * 2.0 ** ACTIVATION_BITS)
      a = tf.clip_by_value(a, -ACTIVATION_LIMIT, ACTIVATION_LIMIT)
      for i, (geometry, activation) in enumerate(self._layers):
        if i == len(self._layers) - 1 and self._float_head is not None:
          below = tf.cast(a * 2.0 ** -ACTIVATION_BITS, tf.float32)
        acc = tf.cast(geometry(a), tf.int64)  # exact: an integer below 2^53
        if activation == "relu":
          acc = tf.maximum(acc, 0)
        elif activation == "leaky_relu":
          acc = tf.where(acc < 0, tf.math.floordiv(acc, LEAKY_DIVISOR), acc)
        # Back to ACTIVATION_BITS, rounding half up: an integer shift.
        acc = tf.math.floordiv(acc + 2 ** (WEIGHT_BITS - 1), 2 ** WEIGHT_BITS)
        a = tf.clip_by_value(tf.cast(acc, tf.float64),
                             -ACTIVATION_LIMIT, ACTIVATION_LIMIT)
      out = tf.cast(a * 2.0 ** -ACTIVATION_BITS, tf.float32)
      if self._float_head is None:
        return out
      head, rest, exact_out = self._float_head
      # Both parts back in the transform's channel order.
      order = np.argsort(np.concatenate([exact_out, rest]))
      return tf.gather(tf.concat([out, head(below)], -1), order, axis=-1)


def _geometry(layer, kernel, bias, dtype):
  """A convolution of ``layer``'s geometry with these weights, no
  activation."""
  return tfc.SignalConv2D(
      kernel.shape[-1], layer.kernel_support, corr=layer.corr,
      strides_down=layer.strides_down, strides_up=layer.strides_up,
      padding=layer.padding, use_bias=True, dtype=dtype,
      kernel_parameter=tf.constant(kernel, dtype),
      bias_parameter=tf.constant(bias, dtype))
