"""Analysis and synthesis transforms, sized by a LayerSpec.

``spec.transforms`` names the layout: "bls2017", Balle et al. 2017's (9x9 /4,
5x5 /2, 5x5 /2, ``conv_filters`` each), or "tapered", SAE-2's (four 5x5 /2
convolutions of conv_filters / 4, / 2 and conv_filters, then the latent:
the width grows as the resolution halves, so a wide latent costs about
twice the nested model's step, docs/sae2.md).  Both have a total stride of
16 and receptive fields within BAND_HALO latent rows.

Unlike bls2017 these transforms do not rescale by 255: layers above the base
code residuals, which are signed, so every layer works on the 0..255 scale
minus what lower layers reconstructed and scales internally.
"""

import tensorflow as tf
import tensorflow_compression as tfc

from sae.config import LayerSpec

# 9x9 /4, 5x5 /2, 5x5 /2; or four 5x5 /2.
TOTAL_STRIDE = 16
LAYOUTS = ("bls2017", "tapered")
# The tapered layout's kernels are plain variables.  tfc's default, kernels
# stored as their Fourier coefficients, costs an inverse FFT of every kernel
# and its gradient at each step: on 2 cores the 192 -> 320 layer took
# 392 ms forward and backward against 42 ms plain (docs/sae2.md).  The
# bls2017 layout keeps tfc's default, which its shipped weights hold.
TAPERED_KERNEL = "variable"


def tapered_filters(spec: LayerSpec) -> tuple:
  """The tapered layout's hidden widths, finest resolution first."""
  return (spec.conv_filters // 4, spec.conv_filters // 2, spec.conv_filters)


def _layout(spec: LayerSpec) -> str:
  if spec.transforms not in LAYOUTS:
    raise ValueError(f"unknown transforms {spec.transforms!r} (one of "
                     f"{', '.join(LAYOUTS)})")
  return spec.transforms


class GDN(tfc.GDN):
  """tfc.GDN whose constant alpha and epsilon are Python numbers.

  tfc.GDN compares them with 1 and 2 in Python ``if``s; as tensors, autograph
  turned each test into a tf.cond whose branches were all traced (and, with
  autograph off, the test cannot run at all).  As numbers, tracing takes the
  one branch the condition selects: the same operations as before.
  """

  @property
  def alpha(self):
    if callable(self.alpha_parameter):
      return super().alpha
    return float(self.alpha_parameter)

  @property
  def epsilon(self):
    if callable(self.epsilon_parameter):
      return super().epsilon
    return float(self.epsilon_parameter)


  # Frozen (see SignalConv2D): the reparameterized beta and gamma, computed
  # once.  None while the weights may change.
  frozen = None

  def freeze(self, on=True):
    self.frozen = ({"beta": tf.constant(super().beta),
                    "gamma": tf.constant(super().gamma)} if on else None)

  @property
  def beta(self):
    return self.frozen["beta"] if self.frozen else super().beta

  @property
  def gamma(self):
    return self.frozen["gamma"] if self.frozen else super().gamma


class SignalConv2D(tfc.SignalConv2D):
  """tfc.SignalConv2D whose kernel can be computed once the weights are final.

  tfc stores the kernel as its real DFT, so every call computes the kernel
  by an inverse FFT: 36 ms of a 130 ms 4-layer decode of a Kodak image, for
  the 12 synthesis kernels alone.  ``freeze()`` (sae.entropy.layer's
  prepare_for_coding) computes it once with the same operations; the
  variables, their checkpoints and digests are unchanged, and so is every
  stream byte and decoded pixel.
  """

  frozen_kernel = None  # the kernel, once frozen

  def freeze(self, on=True):
    """Computes the kernel once (``on``), or again at every call."""
    self.frozen_kernel = tf.constant(super().kernel) if on else None
    if isinstance(self.activation, GDN):
      self.activation.freeze(on)

  @property
  def kernel(self):
    if self.frozen_kernel is not None:
      return self.frozen_kernel
    return super().kernel


class Transform(tf.keras.Sequential):
  """A Sequential of tfc layers built layer by layer, without a traced call.

  Keras builds a Sequential by tracing a call on a symbolic input, which
  took a second or more per transform (most of a cold command's model
  build); building each layer (and its GDN activation) from the shapes
  creates the same variables, under the same names, in the same order.
  """

  def build(self, input_shape=None):
    if input_shape is None:
      raise ValueError("You must provide an `input_shape` argument.")
    shape = tf.TensorShape(input_shape)
    for layer in self.layers:
      with tf.name_scope(layer.name):
        if not layer.built:
          layer.build(shape)
        shape = layer.compute_output_shape(shape)
        activation = getattr(layer, "activation", None)
        if isinstance(activation, tf.keras.layers.Layer) and not activation.built:
          with tf.name_scope(activation.name):
            activation.build(shape)
    self._build_input_shape = tuple(tf.TensorShape(input_shape))
    self.built = True

  def freeze(self, on=True):
    """Computes the reparameterized kernels once: the weights are final
    (``on=False``: again at every call, for weights that change)."""
    for layer in self.layers:
      if isinstance(layer, SignalConv2D):
        layer.freeze(on)

  def call(self, inputs, training=None):
    # What Sequential's graph network computes, layer by layer, without
    # building that network for every new input shape (seconds per trace).
    del training  # no layer here behaves differently in training
    outputs = inputs
    for layer in self.layers:
      outputs = layer(outputs)
    return outputs


class AnalysisTransform(Transform):
  """x (0..255 scale, any sign) -> latent y with ``latent_channels`` channels."""

  def __init__(self, spec: LayerSpec, name: str = "analysis"):
    super().__init__(name=name)
    self.add(tf.keras.layers.Rescaling(1 / 255))
    if _layout(spec) == "tapered":
      for i, filters in enumerate(tapered_filters(spec)):
        self.add(SignalConv2D(
            filters, (5, 5), name=f"layer_{i}", corr=True, strides_down=2,
            padding="same_zeros", use_bias=True, activation=GDN(name=f"gdn_{i}"),
            kernel_parameter=TAPERED_KERNEL))
      self.add(SignalConv2D(
          spec.latent_channels, (5, 5), name="layer_3", corr=True,
          strides_down=2, padding="same_zeros", use_bias=False,
          kernel_parameter=TAPERED_KERNEL))
      return
    self.add(SignalConv2D(
        spec.conv_filters, (9, 9), name="layer_0", corr=True, strides_down=4,
        padding="same_zeros", use_bias=True, activation=GDN(name="gdn_0")))
    self.add(SignalConv2D(
        spec.conv_filters, (5, 5), name="layer_1", corr=True, strides_down=2,
        padding="same_zeros", use_bias=True, activation=GDN(name="gdn_1")))
    self.add(SignalConv2D(
        spec.latent_channels, (5, 5), name="layer_2", corr=True,
        strides_down=2, padding="same_zeros", use_bias=False, activation=None))


class SynthesisTransform(Transform):
  """Latent y -> reconstruction on the 0..255 scale (unclipped)."""

  def __init__(self, spec: LayerSpec, name: str = "synthesis"):
    super().__init__(name=name)
    if _layout(spec) == "tapered":
      for i, filters in enumerate(reversed(tapered_filters(spec))):
        self.add(SignalConv2D(
            filters, (5, 5), name=f"layer_{i}", corr=False, strides_up=2,
            padding="same_zeros", use_bias=True,
            activation=GDN(name=f"igdn_{i}", inverse=True),
            kernel_parameter=TAPERED_KERNEL))
      self.add(SignalConv2D(
          3, (5, 5), name="layer_3", corr=False, strides_up=2,
          padding="same_zeros", use_bias=True, kernel_parameter=TAPERED_KERNEL))
      self.add(tf.keras.layers.Rescaling(255))
      return
    self.add(SignalConv2D(
        spec.conv_filters, (5, 5), name="layer_0", corr=False, strides_up=2,
        padding="same_zeros", use_bias=True,
        activation=GDN(name="igdn_0", inverse=True)))
    self.add(SignalConv2D(
        spec.conv_filters, (5, 5), name="layer_1", corr=False, strides_up=2,
        padding="same_zeros", use_bias=True,
        activation=GDN(name="igdn_1", inverse=True)))
    self.add(SignalConv2D(
        3, (9, 9), name="layer_2", corr=False, strides_up=4,
        padding="same_zeros", use_bias=True, activation=None))
    self.add(tf.keras.layers.Rescaling(255))


def padded_size(size):
  """Rounds a height or width (int or int tensor) up to the total stride."""
  return (size + TOTAL_STRIDE - 1) // TOTAL_STRIDE * TOTAL_STRIDE


def pad_to_stride(x: tf.Tensor) -> tf.Tensor:
  """Edge-pads a (B, H, W, C) batch to a multiple of the total stride.

  Replicating the border (rather than zeros) keeps the padded area cheap to
  code and works for any size, including 1x1, where reflection cannot.
  """
  shape = tf.shape(x)
  rows = tf.minimum(tf.range(padded_size(shape[1])), shape[1] - 1)
  cols = tf.minimum(tf.range(padded_size(shape[2])), shape[2] - 1)
  return tf.gather(tf.gather(x, rows, axis=1), cols, axis=2)


def latent_shape(image_shape):
  """(H, W) of the image -> (h, w) of every layer's latent."""
  return tf.stack([padded_size(image_shape[0]) // TOTAL_STRIDE,
                   padded_size(image_shape[1]) // TOTAL_STRIDE])


# Latent rows of context on each side of a band.  An output row of the
# synthesis depends on latent rows within 2 of it, and a latent row of the
# analysis on pixel rows within 28 (< 2 latent rows); 4 leaves a margin, so
# that a band computes what the whole image would (up to float rounding).
BAND_HALO = 4
# Latent pixels per band: 16,384 is a 4-megapixel slice of the image, which
# keeps the transforms' peak memory near that of a 2048x2048 image at any
# size; smaller images are one band, computed exactly as before.
BAND_LATENT_PIXELS = 16_384


def fits_one_band(height: int, width: int,
                  latent_pixels: int = BAND_LATENT_PIXELS) -> bool:
  """True when the transforms code an image this size in one band."""
  h, w = (-(-side // TOTAL_STRIDE) for side in (height, width))
  return max(latent_pixels // max(w, 1), 1) >= h


def band_rows(latent_width, latent_pixels=BAND_LATENT_PIXELS):
  """Latent rows per band for a latent this wide (an int tensor)."""
  return tf.maximum(latent_pixels // tf.maximum(latent_width, 1), 1)


def _banded(fn, num_rows, rows_per_band, scale_out, dtype):
  """Concatenates ``fn(a, b)`` over bands of latent rows.

  ``fn(a, b)`` computes latent rows [a, b) (the band plus its halo) and
  returns them at ``scale_out`` output rows per latent row; each band's own
  rows are kept.  Runs in a tf.while_loop: one band is in memory at a time.
  """
  count = (num_rows + rows_per_band - 1) // rows_per_band

  def body(i, bands):
    r0 = i * rows_per_band
    r1 = tf.minimum(r0 + rows_per_band, num_rows)
    a = tf.maximum(r0 - BAND_HALO, 0)
    b = tf.minimum(r1 + BAND_HALO, num_rows)
    out = fn(a, b)
    return i + 1, bands.write(i, out[0, (r0 - a) * scale_out:(r1 - a) * scale_out])

  bands = tf.TensorArray(dtype, size=count, infer_shape=False,
                         element_shape=tf.TensorShape([None, None, None]))
  # One band at a time: bands in parallel (the default, 10) would hold
  # several bands' activations at once.
  _, bands = tf.while_loop(lambda i, _: i < count, body, (0, bands),
                           parallel_iterations=1)
  return bands.concat()[None]


def analyze_in_bands(analysis, x, latent_pixels=BAND_LATENT_PIXELS):
  """``analysis(x)`` of a (1, H, W, 3) batch padded to the stride, computed
  in bands of latent rows when the image is large (bounded memory)."""
  shape = tf.shape(x)
  h, w = shape[1] // TOTAL_STRIDE, shape[2] // TOTAL_STRIDE
  rows = band_rows(w, latent_pixels)

  def by_band():
    return _banded(
        lambda a, b: analysis(x[:, a * TOTAL_STRIDE:b * TOTAL_STRIDE],
                              training=False),
        h, rows, 1, x.dtype)

  return tf.cond(rows >= h, lambda: analysis(x, training=False), by_band)


def synthesize_in_bands(synthesis, y, latent_pixels=BAND_LATENT_PIXELS):
  """``synthesis(y)`` of a (1, h, w, C) latent, computed in bands of latent
  rows when the image is large (bounded memory)."""
  return decode_in_bands(lambda a, b: synthesis(y[:, a:b], training=False),
                         tf.shape(y)[1:3], latent_pixels)


def decode_in_bands(decode_rows, latent_hw, latent_pixels=BAND_LATENT_PIXELS):
  """The float image ``decode_rows(a, b)`` gives for latent rows [a, b),
  (1, 16 (b - a), W, 3), of a latent [h, w]: all rows at once, or in bands
  when the image is large (bounded memory).  ``decode_rows`` may read
  anything at those rows (a conditional layer reads the image below it)."""
  h, w = latent_hw[0], latent_hw[1]
  rows = band_rows(w, latent_pixels)

  def by_band():
    return _banded(decode_rows, h, rows, TOTAL_STRIDE, tf.float32)

  return tf.cond(rows >= h, lambda: decode_rows(0, h), by_band)
