"""A conditional layer: a latent of its own, coded given the layers below
(issue #39, docs/sae2.md).

The nested family's top layer refines the base's latent by one more trit,
so it can never decode better than that latent's floor.  A conditional
layer codes what the layers below missed with a latent of its own, its
Gaussians predicted from what the decoder already has:

    x, x̂ₗ ──analysis (tapered, /16)──► w
    ŷₗ (the latent of the layers below) ──context──► (mean, scale index) of w
    x̂ = x̂ₗ + refine(x̂ₗ, synthesis(ŵ, ŷₗ))       ŵ = round(w - mean) + mean

x̂ₗ is the float image of the layers below and ŷₗ their latent.  The layer
needs no hyper-latent: every bit it sends is the coded w.  Its scale
indexes choose the range coding tables, so the context is evaluated in
exact integer arithmetic for coding (sae.entropy.exact); its means only
move the reconstruction and stay float.  For the indexes to be the same on
every machine, ŷₗ must be too: the family feeds it integer symbols times a
step plus means of the base's exact hyper-synthesis (all multiples of
2^-14, exact in float32; sae.models.conditional).

Training (sae.models.conditional) puts uniform noise on w for the rate and
for the synthesis.  Two choices keep the new latent from collapsing to
its means (docs/sae2.md, session 29: four starts without them stayed at
the image of the layers below): a fixed gain on the analysis' output, and
the rate's gradient into w ramped in over RATE_WARMUP_STEPS.
"""

import numpy as np
import tensorflow as tf

from sae.config import LayerSpec
from sae.entropy import exact, rangecode
from sae.entropy.layer import CodecDigests, checked
from sae.entropy.meanscale import (GAUSSIAN_KEYS, SCALES_LEVELS,
                                   coding_gaussian_tables, conv,
                                   gaussian_model, gaussian_rows)
from sae.models.transforms import GDN, TAPERED_KERNEL, Transform

# The analysis' output is scaled by this fixed gain.  Fed 0..1 pixels, an
# initialized analysis gives |w| of about 0.007, far below one quantization
# step: under the training noise the synthesis sees noise alone, learns to
# ignore it, and w shrinks on.  With the gain |w| starts near 0.7.
LATENT_GAIN = 100.0
# Channels of the synthesis' output, fused with x̂ₗ by the refinement.
FUSION_FILTERS = 32
# Steps over which the rate's gradient into w rises from 0 to 1 (the
# context learns from the rate from the start): the latent learns to carry
# the residual before it pays for it.
RATE_WARMUP_STEPS = 2000
CONTEXT_PREFIX = "context"


def _conv(filters, kernel, name, down=1, up=1, activation=None, bias=True,
          small=None):
  # ``small``: the residual's last convolution starts near zero (about one
  # grey level: its initial variance scale, set by the features it reads),
  # not at zero, so the distortion's gradient reaches the new latent from
  # the first step.
  return conv(filters, kernel, name, down=down, up=up, activation=activation,
              use_bias=bias, kernel_parameter=TAPERED_KERNEL,
              kernel_initializer=(tf.keras.initializers.VarianceScaling(small)
                                  if small else "variance_scaling"))


def analysis_transform(spec: LayerSpec):
  """[x, x̂ₗ] (6 channels, 0..255) -> w, tapered to ``conv_filters``."""
  layers = [tf.keras.layers.Rescaling(1 / 255)]
  for i, filters in enumerate(conditional_filters(spec)):
    layers.append(_conv(filters, 5, f"layer_{i}", down=2,
                        activation=GDN(name=f"gdn_{i}")))
  layers.append(_conv(spec.latent_channels, 5, "layer_3", down=2, bias=False))
  layers.append(tf.keras.layers.Rescaling(LATENT_GAIN))
  return Transform(layers, name="analysis")


def context_transform(spec: LayerSpec):
  """ŷₗ -> [means, scale indexes] of w: ReLUs and plain convolutions,
  which sae.entropy.exact evaluates in integers."""
  return Transform([
      _conv(spec.latent_channels, 3, "layer_0", activation=tf.nn.relu),
      _conv(spec.latent_channels, 3, "layer_1", activation=tf.nn.relu),
      _conv(2 * spec.latent_channels, 3, "layer_2"),
  ], name="context")


def synthesis_transform(spec: LayerSpec):
  """[ŵ, ŷₗ] -> FUSION_FILTERS features at the image's resolution."""
  layers = []
  for i, filters in enumerate(reversed(conditional_filters(spec))):
    layers.append(_conv(filters, 5, f"layer_{i}", up=2,
                        activation=GDN(name=f"igdn_{i}", inverse=True)))
  layers.append(_conv(FUSION_FILTERS, 5, "layer_3", up=2))
  return Transform(layers, name="synthesis")


def refine_transform():
  """[features, x̂ₗ / 255] -> the residual added to x̂ₗ (0..255 scale)."""
  return Transform([
      _conv(FUSION_FILTERS, 3, "layer_0", activation=tf.nn.relu),
      _conv(3, 3, "layer_1", small=1e-4),
      tf.keras.layers.Rescaling(255),
  ], name="refine")


class PixelShuffle(tf.keras.layers.Layer):
  """Depth to space by 2: the sub-pixel decoder's up-sampling, with its
  output shape for Transform.build."""

  def call(self, x):
    return tf.nn.depth_to_space(x, 2)

  def compute_output_shape(self, shape):
    b, h, w, c = tf.TensorShape(shape).as_list()
    return tf.TensorShape([b, None if h is None else 2 * h,
                           None if w is None else 2 * w, c // 4])


# The sub-pixel decoder (docs/sae2.md, session 31): convolutions at the
# lower resolution, each followed by a depth-to-space, and the refinement
# at half resolution on the image below cut into 2x2 blocks.  Its widths,
# (filters at /16, /8, /4; features at /2; the refinement's hidden width).
# Inverse GDNs only where their input is small: chained after the /8
# shuffle, their x·sqrt(β + γx²) grew the features to hundreds at the start.
SUBPIXEL_WIDTHS = (128, 64, 32, 16, 24)


def subpixel_synthesis_transform(spec: LayerSpec):
  """[ŵ, ŷₗ] -> SUBPIXEL_WIDTHS[3] features at half the image's resolution.
  With the refinement, a seventh of the transposed decoder's multiply-adds
  per pixel (5.8 thousand against 42 thousand at the paper preset)."""
  w16, w8, w4, w2, _ = SUBPIXEL_WIDTHS
  return Transform([
      _conv(w16, 1, "layer_0", activation=GDN(name="igdn_0", inverse=True)),
      _conv(4 * w8, 3, "layer_1"),
      PixelShuffle(name="shuffle_1"),
      GDN(name="igdn_1", inverse=True),
      _conv(4 * w4, 3, "layer_2", activation=tf.nn.relu),
      PixelShuffle(name="shuffle_2"),
      _conv(4 * w2, 3, "layer_3", activation=tf.nn.relu),
      PixelShuffle(name="shuffle_3"),
  ], name="synthesis")


def subpixel_refine_transform():
  """[features, x̂ₗ / 255 in 2x2 blocks] (half resolution) -> the residual
  added to x̂ₗ (0..255 scale, full resolution).

  Its output is not a 0..1 residual times 255 as refine_transform's: Adam
  moves every weight by about its learning rate, and through a factor of
  255 the first steps moved the image by tens of levels and left the ReLUs
  below dead (session 31: 1,000 steps decoded to the three layers' image).
  """
  return Transform([
      _conv(SUBPIXEL_WIDTHS[4], 3, "layer_0", activation=tf.nn.relu),
      _conv(12, 3, "layer_1", small=1e-4),
      PixelShuffle(name="shuffle"),
  ], name="refine")


# spec.decoder -> (synthesis, refinement, the refinement's input channels,
# the factor by which the refinement's input is below the image's size).
DECODERS = {
    "transposed": (synthesis_transform, refine_transform,
                   FUSION_FILTERS + 3, 1),
    "subpixel": (subpixel_synthesis_transform, subpixel_refine_transform,
                 SUBPIXEL_WIDTHS[3] + 12, 2),
}


def conditional_filters(spec: LayerSpec) -> tuple:
  """The analysis' hidden widths, finest first: half, three quarters and
  all of ``conv_filters`` (64, 96, 128 for the paper preset's 128).  The
  image-side layers are the costly ones, so they stay narrow."""
  return (spec.conv_filters // 2, spec.conv_filters * 3 // 4,
          spec.conv_filters)


class ConditionalCodec(CodecDigests, tf.keras.Model):
  """The analysis, context, synthesis and refinement of a conditional
  layer over a latent of ``condition_channels`` channels, and its coder."""

  table_keys = GAUSSIAN_KEYS

  def __init__(self, spec: LayerSpec, name: str, condition_channels: int):
    super().__init__(name=name)
    if spec.decoder not in DECODERS:
      raise ValueError(f"{name}: unknown decoder {spec.decoder!r} (one of "
                       f"{', '.join(DECODERS)})")
    self.spec = spec
    synthesis, refine, refine_channels, self._refine_factor = DECODERS[
        spec.decoder]
    self.analysis = analysis_transform(spec)
    self.context = context_transform(spec)
    self.synthesis = synthesis(spec)
    self.refine = refine()
    self.analysis.build((None, None, None, 6))
    self.context.build((None, None, None, condition_channels))
    self.synthesis.build(
        (None, None, None, spec.latent_channels + condition_channels))
    self.refine.build((None, None, None, refine_channels))
    # Training steps taken, for the rate's warm-up; checkpointed with the
    # layer but not one of its weights (the digest leaves it out).
    self.steps_trained = tf.Variable(
        0, dtype=tf.int64, trainable=False, name="steps_trained",
        aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self._tables = None  # rangecode.Tables, with the coder
    self._gaussian = None  # (cdf, cdf_offset) NumPy, with the coder
    self._context_tables = {}
    self._exact_context = None

  def checkpoint_objects(self) -> dict:
    return dict(analysis=self.analysis, context=self.context,
                synthesis=self.synthesis, refine=self.refine,
                steps_trained=self.steps_trained)

  @property
  def transforms(self):
    return (self.analysis, self.context, self.synthesis, self.refine)

  @property
  def weight_variables(self):
    return [v for t in self.transforms for v in t.weights]

  @property
  def is_prepared(self) -> bool:
    return self._tables is not None

  def freeze_transforms(self, on=True):
    for transform in self.transforms:
      transform.freeze(on)

  # Training.

  def entropy_parameters(self, y_lower):
    """(means, float scale indexes) of w from ŷₗ, in float."""
    mean, index = tf.split(self.context(y_lower), 2, axis=-1)
    return mean, index

  def forward(self, x, x_lower, y_lower, training):
    """(bits per example, x̂) of a batch, under noise when training (and
    then one more step of the rate's warm-up), as coded otherwise."""
    w = self.analysis(tf.concat([x, x_lower], -1))
    if training:
      mean, index = self.entropy_parameters(y_lower)
      ramp = tf.minimum(
          1.0, tf.cast(self.steps_trained, tf.float32) / RATE_WARMUP_STEPS)
      with tf.control_dependencies([self.steps_trained.assign_add(1)]):
        w_rate = tf.stop_gradient(w) + ramp * (w - tf.stop_gradient(w))
      _, bits = gaussian_model()(w_rate, index, loc=mean, training=True)
      # The synthesis sees w plus uniform noise, as the rate does: a
      # continuous path while w is still smaller than a quantization step.
      w_hat = w + tf.random.uniform(tf.shape(w), -0.5, 0.5)
    else:
      mean, index = self.coded_parameters(y_lower)
      _, bits = gaussian_model()(w, index, loc=mean, training=False)
      w_hat = tf.round(w - mean) + mean
    return bits, self.reconstruct(w_hat, y_lower, x_lower)

  def reconstruct(self, w_hat, y_lower, x_lower):
    """x̂ from ŵ and what the layers below decoded."""
    features = self.synthesis(tf.concat([w_hat, y_lower], -1))
    below = x_lower / 255
    if self._refine_factor > 1:  # the refinement reads 2x2 blocks
      below = tf.nn.space_to_depth(below, self._refine_factor)
    return x_lower + self.refine(tf.concat([features, below], -1))

  # Coding.

  def coded_parameters(self, y_lower):
    """The means and integer scale indexes the coder uses: from the exact
    context once prepared, so every machine selects the same tables."""
    if self._exact_context is None:
      mean, index = self.entropy_parameters(y_lower)
    else:
      mean, index = tf.split(self._exact_context(y_lower), 2, axis=-1)
    return mean, tf.clip_by_value(tf.round(index), 0.0, SCALES_LEVELS - 1.0)

  def prepare_for_coding(self, tables=None):
    """The Gaussian tables (the scale grid's, shared with
    sae.entropy.meanscale) and the context's integer weights: stored, or
    derived from the weights."""
    keys = exact.table_keys(self.context, CONTEXT_PREFIX)
    if tables is None:
      self._context_tables = exact.integer_tables(self.context,
                                                  CONTEXT_PREFIX)
    else:
      missing = (set(GAUSSIAN_KEYS) | set(keys)) - set(tables)
      if missing:
        raise ValueError(f"{self.name}: stored tables lack {sorted(missing)}")
      self._context_tables = {key: np.asarray(tables[key]) for key in keys}
    self._gaussian = coding_gaussian_tables(tables, self.name)
    self._gaussian_offset = tf.constant(self._gaussian[1])
    self._tables = rangecode.Tables(self._gaussian[0])
    self._exact_context = exact.ExactTransform(
        self.context, self._context_tables, CONTEXT_PREFIX,
        float_outputs=slice(0, self.spec.latent_channels))
    self.table_keys = GAUSSIAN_KEYS + tuple(sorted(self._context_tables))
    self.freeze_transforms()

  def coding_tables(self) -> dict:
    if self._tables is None:
      raise RuntimeError(f"{self.name}: call prepare_for_coding() first")
    cdf, offset = self._gaussian
    return dict(gaussian_cdf=cdf, gaussian_cdf_offset=offset,
                **self._context_tables)

  def encode(self, w, y_lower):
    """(1, h, w, C) latent and ŷₗ -> (1,) string."""
    mean, index = self.coded_parameters(y_lower)
    rows = gaussian_rows(index)
    symbols = tf.reshape(tf.cast(tf.round(w - mean), tf.int32), [1, -1])
    return rangecode.encode(
        self._tables, symbols - tf.gather(self._gaussian_offset, rows), rows)

  def decode(self, string, y_lower):
    """(1,) string and ŷₗ -> ŵ, in time bounded by ŷₗ's size.

    Raises (when run):
      tf.errors.InvalidArgumentError: the string does not decode completely.
    """
    mean, index = self.coded_parameters(y_lower)
    rows = gaussian_rows(index)
    symbols, consistent = rangecode.decode(self._tables, string, rows)
    symbols = checked(symbols, consistent) + tf.gather(
        self._gaussian_offset, rows)
    return tf.reshape(tf.cast(symbols, tf.float32), tf.shape(mean)) + mean
