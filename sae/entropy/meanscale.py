"""A layer with a mean-scale hyperprior: the SAE+ base (issue #24).

Balle, Minnen, Singh, Hwang, Johnston, "Variational Image Compression with a
Scale Hyperprior", ICLR 2018 (arXiv 1802.01436), with the Gaussian's means
predicted too, as in Minnen, Balle, Toderici, NeurIPS 2018 (arXiv 1809.02736)
without the autoregressive context:

    x ──analysis──► y ──hyper_analysis──► z ~ factorized prior
                    │                     │
                    │          hyper_synthesis(ẑ) = (mean, scale index)
                    ▼                     ▼
           ŷ = round(y - mean) + mean, coded with N(mean, scale) ──synthesis──► x̂

It is a ``LayerCodec`` whose factorized prior codes the hyper-latent z
instead of y, so the cascade (sae.models.model), checkpoints, training and the
stream container treat it as any layer.  A layer's payload is one range
code (sae.entropy.rangecode.encode_parts): z's symbols and escapes, then y's, whose
table rows (scale indexes) the decoder derives from ẑ.  The Gaussian tables
depend on the scale grid only; like the factorized tables they are stored
with shipped weights so that every machine codes with the same integers.
"""

import functools

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from sae.entropy import exact, rangecode
from sae.entropy.layer import (TABLE_KEYS, LayerCodec, LayerOutput, checked,
                       straight_through)
from sae.models.transforms import TAPERED_KERNEL, SignalConv2D

# The Gaussian's scale grid, as in tfc's models/bmshj2018.py: 64 levels,
# log-spaced from 0.11 to 256.
SCALES_MIN, SCALES_MAX, SCALES_LEVELS = 0.11, 256.0, 64
_LOG_SCALE_STEP = (np.log(SCALES_MAX) - np.log(SCALES_MIN)) / (SCALES_LEVELS - 1)
# z is y downsampled twice by 2.
HYPER_STRIDE = 4


def scale_fn(index):
  """Scale index (0 .. SCALES_LEVELS - 1, float) -> Gaussian scale."""
  return tf.exp(np.log(SCALES_MIN) + _LOG_SCALE_STEP * index)


def scale_index(scale):
  """Gaussian scale -> its (float) index on the grid; inverse of scale_fn."""
  return (np.log(scale) - np.log(SCALES_MIN)) / _LOG_SCALE_STEP


def index_at_step(index, step):
  """Scale indexes of y's Gaussians -> those of (y - mean) / ``step``: the
  grid is log-spaced, so they move down by log(step) / the grid's step
  (kept on the grid; at step 1 unchanged).  ``step``: a number, or a
  tensor that broadcasts against ``index``."""
  if isinstance(step, (int, float)):
    if step == 1:
      return index
    return tf.clip_by_value(index - float(np.log(step) / _LOG_SCALE_STEP),
                            0.0, SCALES_LEVELS - 1.0)
  return tf.clip_by_value(index - tf.math.log(step) / _LOG_SCALE_STEP,
                          0.0, SCALES_LEVELS - 1.0)


def gaussian_rows(index):
  """Float scale indexes -> int32 (1, n) table rows of the Gaussian's
  symbols.  Clipped again after the cast: on a hostile stream a NaN index
  would cast to an arbitrary integer."""
  rows = tf.cast(tf.round(index), tf.int32)
  return tf.reshape(tf.clip_by_value(rows, 0, SCALES_LEVELS - 1), [1, -1])


def conv(filters, kernel, name, down=1, up=1, activation=None,
         bias_initializer="zeros", use_bias=True, kernel_parameter="rdft",
         kernel_initializer="variance_scaling"):
  return SignalConv2D(
      filters, (kernel, kernel), name=name, corr=up == 1, strides_down=down,
      strides_up=up, padding="same_zeros", use_bias=use_bias,
      activation=activation, bias_initializer=bias_initializer,
      kernel_parameter=kernel_parameter,
      kernel_initializer=kernel_initializer)


def hyper_analysis_transform(filters, channels=None,
                             activation=tf.nn.leaky_relu, z_bias=True,
                             **kwargs):
  """y -> z (``channels``, default ``filters``) at 1/HYPER_STRIDE of y's
  resolution; ``kwargs`` for every convolution."""
  return tf.keras.Sequential([
      conv(filters, 3, "layer_0", activation=activation, **kwargs),
      conv(filters, 5, "layer_1", down=2, activation=activation, **kwargs),
      conv(channels or filters, 5, "layer_2", down=2, use_bias=z_bias,
           **kwargs),
  ], name="hyper_analysis")


def hyper_synthesis_transform(filters, latent_channels,
                              activation=tf.nn.leaky_relu, **kwargs):
  """ẑ -> [means, scale logits] of y (2 x latent_channels).  The scales
  start at the grid's floor, the means at 0."""
  return tf.keras.Sequential([
      conv(filters, 5, "layer_0", up=2, activation=activation, **kwargs),
      conv(filters, 5, "layer_1", up=2, activation=activation, **kwargs),
      conv(2 * latent_channels, 3, "layer_2", **kwargs),
  ], name="hyper_synthesis")


def hyper_channels(spec) -> int:
  """Channels of z: the hidden width, or two thirds of it in the tapered
  layout (SAE-2's 128 for 192)."""
  return spec.conv_filters * 2 // 3 if spec.transforms == "tapered" else (
      spec.conv_filters)


def hyper_transforms(spec):
  """(hyper-analysis, hyper-synthesis) of ``spec``'s layout: leaky ReLUs
  and Fourier kernels (bls2017); ReLUs and plain kernels, z without a bias
  (tapered, as SAE-2's single-rate phase trained them)."""
  if spec.transforms != "tapered":
    return (hyper_analysis_transform(spec.conv_filters),
            hyper_synthesis_transform(spec.conv_filters, spec.latent_channels))
  plain = {"kernel_parameter": TAPERED_KERNEL}
  return (hyper_analysis_transform(
              spec.conv_filters, hyper_channels(spec), tf.nn.relu,
              z_bias=False, **plain),
          hyper_synthesis_transform(spec.conv_filters, spec.latent_channels,
                                    tf.nn.relu, **plain))


def gaussian_model(**kwargs):
  return tfc.LocationScaleIndexedEntropyModel(
      tfc.NoisyNormal, SCALES_LEVELS, scale_fn, coding_rank=3, **kwargs)


GAUSSIAN_KEYS = ("gaussian_cdf", "gaussian_cdf_offset")
# The hyper-synthesis's integer weights among the tables (sae.entropy.exact).
SIDE_PREFIX = "side"


@functools.lru_cache(maxsize=None)
def gaussian_tables():
  """The Gaussian's range coding tables (cdf, cdf_offset), NumPy: they
  depend on the scale grid only, so a process builds them once, traced
  (tfc's eager table search takes seconds)."""

  @tf.function
  def build():
    model = gaussian_model(compression=True, stateless=True)
    return model.cdf, model.cdf_offset

  with tf.device("/CPU:0"):  # as the factorized tables
    cdf, offset = build()
  return cdf.numpy(), offset.numpy()


def coding_gaussian_tables(tables, name) -> tuple:
  """The Gaussian's (cdf, cdf_offset), int32 NumPy: from a layer's stored
  ``tables`` (checked), or built from the scale grid when None.

  Raises:
    ValueError: the stored tables are not the grid's.
  """
  if tables is None:
    cdf, offset = gaussian_tables()
  else:
    cdf, offset = (np.asarray(tables[key]) for key in GAUSSIAN_KEYS)
    if offset.shape != (SCALES_LEVELS,):
      raise ValueError(f"{name}: stored Gaussian tables have "
                       f"{offset.size} rows, not {SCALES_LEVELS}")
  return cdf.astype(np.int32), offset.astype(np.int32)


class MeanScaleCodec(LayerCodec):
  """Analysis, synthesis and a mean-scale hyperprior (hidden width = the
  spec's conv_filters, for the hyper transforms and z too)."""

  table_keys = TABLE_KEYS + GAUSSIAN_KEYS

  def __init__(self, spec, name):
    super().__init__(spec, name)
    self.hyper_analysis, self.hyper_synthesis = hyper_transforms(spec)
    self.hyper_analysis.build((None, None, None, spec.latent_channels))
    self.hyper_synthesis.build((None, None, None, hyper_channels(spec)))
    self._gaussian_tables = None  # (cdf, cdf_offset) numpy, with the coder
    # The hyper-synthesis in exact integer arithmetic, with the coder: None
    # for tables stored before it existed (their streams were coded with
    # the float transform, and still decode where the arithmetic agrees).
    self._exact_side = None
    self._side_tables = {}
    # The means of the exact hyper-synthesis in float (they select no
    # table); False: exact too, for a layer above whose tables depend on
    # the decoded latent (sae.models.conditional).  Read when prepared.
    self.float_means = True

  @property
  def prior_channels(self) -> int:
    return hyper_channels(self.spec)

  def freeze_transforms(self, on=True):
    super().freeze_transforms(on)
    for transform in (self.hyper_analysis, self.hyper_synthesis):
      for layer in transform.layers:
        layer.freeze(on)

  def checkpoint_objects(self) -> dict:
    return dict(super().checkpoint_objects(),
                hyper_analysis=self.hyper_analysis,
                hyper_synthesis=self.hyper_synthesis)

  @property
  def weight_variables(self):
    return (list(self.analysis.weights) + list(self.synthesis.weights) +
            list(self.hyper_analysis.weights) +
            list(self.hyper_synthesis.weights) +
            list(self.prior.trainable_variables))

  def _entropy_parameters(self, z_hat, latent_hw):
    """ẑ -> (means, float scale indexes clipped to the grid) of y."""
    side = self.hyper_synthesis(z_hat)[:, :latent_hw[0], :latent_hw[1]]
    mean, logits = tf.split(side, 2, axis=-1)
    return mean, tf.clip_by_value(logits, 0.0, SCALES_LEVELS - 1.0)

  def _coded_parameters(self, z_hat, latent_hw):
    """The means and scale indexes the coder uses: from the exact integer
    hyper-synthesis (integer indexes) once prepared with it, so that every
    machine selects the same tables; otherwise _entropy_parameters."""
    if self._exact_side is None:
      return self._entropy_parameters(z_hat, latent_hw)
    side = self._exact_side(z_hat)[:, :latent_hw[0], :latent_hw[1]]
    mean, logits = tf.split(side, 2, axis=-1)
    return mean, tf.clip_by_value(tf.round(logits), 0.0, SCALES_LEVELS - 1.0)

  def call(self, x, training=False, rounded=False):
    """Codes ``x``: additive noise when training, hard quantization otherwise
    (then y's bits are those of the coder's rounded scale indexes);
    ``rounded`` as in LayerCodec.call."""
    y = self.analysis(x)
    z = self.hyper_analysis(y)
    z_hat, z_bits = self._entropy_model(training)(z, training=training)
    mean, index = self._entropy_parameters(z_hat, tf.shape(y)[1:3])
    if training:
      y_hat, y_bits = gaussian_model()(y, index, loc=mean, training=True)
      if rounded:  # the means the decoder computes: from rounded z
        decoded_mean, _ = self._entropy_parameters(
            LayerCodec.quantize(self, z), tf.shape(y)[1:3])
        y_hat = straight_through(y, tf.round(y - decoded_mean) + decoded_mean)
    else:
      mean, index = self._coded_parameters(z_hat, tf.shape(y)[1:3])
      y_hat = tf.round(y - mean) + mean
      _, y_bits = gaussian_model()(y, tf.round(index), loc=mean,
                                   training=False)
    return LayerOutput(y, y_hat, y_bits + z_bits, self.synthesis(y_hat))

  def gaussians(self, y, training=False):
    """(means, float scale indexes, z's bits per example) of y's Gaussians:
    from z under noise when training, otherwise from z quantized as the
    coder quantizes it."""
    z = self.hyper_analysis(y)
    z_hat, z_bits = self._entropy_model(training)(z, training=training)
    parameters = (self._entropy_parameters if training
                  else self._coded_parameters)
    mean, index = parameters(z_hat, tf.shape(y)[1:3])
    return mean, index, z_bits

  def quantize(self, y):
    """Inference-mode quantization; identical to decompress(compress(y))."""
    z_hat = super().quantize(self.hyper_analysis(y))
    mean, _ = self._coded_parameters(z_hat, tf.shape(y)[1:3])
    return tf.round(y - mean) + mean

  def prepare_for_coding(self, tables=None):
    super().prepare_for_coding(tables)
    self._gaussian_tables = coding_gaussian_tables(tables, self.name)
    self._gaussian_offset = tf.constant(self._gaussian_tables[1])
    # One table for the payload: z's rows (its channels), then the
    # Gaussian's (scale indexes, offset by z's channel count).
    self._tables = rangecode.Tables(
        np.concatenate([self.coder.cdf.numpy(), self._gaussian_tables[0]]))
    side_keys = exact.table_keys(self.hyper_synthesis, SIDE_PREFIX)
    if tables is None:
      self._side_tables = exact.integer_tables(self.hyper_synthesis,
                                               SIDE_PREFIX)
    elif all(key in tables for key in side_keys):
      self._side_tables = {key: np.asarray(tables[key]) for key in side_keys}
    else:  # stored before sae.entropy.exact: coded with the float transform
      self._side_tables = {}
    # The means select no table (they move the reconstruction only): float.
    self._exact_side = (exact.ExactTransform(
        self.hyper_synthesis, self._side_tables, SIDE_PREFIX,
        float_outputs=(slice(0, self.spec.latent_channels)
                       if self.float_means else None))
                        if self._side_tables else None)
    # The weights id covers the integer weights too (LayerCodec.tables_digest).
    self.table_keys = (MeanScaleCodec.table_keys +
                       tuple(sorted(self._side_tables)))

  def make_portable(self) -> None:
    """Adds the exact hyper-synthesis to tables stored before it."""
    if self._exact_side is None:
      self.prepare_for_coding(dict(self.coding_tables(), **exact.integer_tables(
          self.hyper_synthesis, SIDE_PREFIX)))

  def coding_tables(self) -> dict:
    tables = super().coding_tables()
    cdf, offset = self._gaussian_tables
    return dict(tables, gaussian_cdf=cdf, gaussian_cdf_offset=offset,
                **self._side_tables)

  def compress_latent(self, y):
    """(1, h, w, C) latent -> (1,) string: z's part, then y's."""
    return self.encode_latent(y)[0]

  def encode_latent(self, y, step=1.0):
    """As LayerCodec.encode_latent; the hyper transforms run once for both
    the string and the quantized latent.  ``step``: y is quantized at this
    step around its means instead of 1, with the same Gaussians (nested
    quantization of one latent, sae.models.nested)."""
    string, symbols, mean, index = self.encode_symbols(y, step)
    return string, symbols * step + mean

  def encode_symbols(self, y, step=1.0):
    """(1, h, w, C) latent -> ((1,) string, float symbols round((y - mean)
    / step), and the Gaussians' means and float scale indexes the decoder
    derives from the side information)."""
    z = self.hyper_analysis(y)
    z_symbols = self._prior_symbols(z)
    z_hat = self._prior_values(z_symbols, tf.shape(z)[1:3])
    mean, index = self._coded_parameters(z_hat, tf.shape(y)[1:3])
    rows = gaussian_rows(index_at_step(index, step))
    y_rounded = tf.round((y - mean) / step)
    y_symbols = tf.reshape(tf.cast(y_rounded, tf.int32), [1, -1])
    y_symbols -= tf.gather(self._gaussian_offset, rows)
    string = rangecode.encode_parts(self._tables, [
        (z_symbols, self._symbol_rows(tf.shape(z_symbols)[1])),
        (y_symbols, rows + self.prior_channels)])
    return string, y_rounded, mean, index

  def decompress_latent(self, string, latent_hw, step=1.0):
    """(1,) string and [h, w] -> (1, h, w, C) quantized latent, in time
    bounded by the symbol counts whatever the string holds (``step`` as in
    encode_latent)."""
    symbols, mean, index = self.decode_symbols(string, latent_hw, step)
    return symbols * step + mean

  def decode_symbols(self, string, latent_hw, step=1.0):
    """The inverse of encode_symbols: (1,) string and [h, w] -> (float
    symbols, means, scale indexes), each (1, h, w, C).

    Raises (when run):
      tf.errors.InvalidArgumentError: the string does not decode completely.
    """
    latent_hw = tf.convert_to_tensor(latent_hw, tf.int32)
    z_hw = (latent_hw + HYPER_STRIDE - 1) // HYPER_STRIDE
    handle = rangecode.start_decoding(self._tables, string)
    num_z = z_hw[0] * z_hw[1] * self.prior_channels
    handle, z_symbols = rangecode.decode_part(
        self._tables, handle, self._symbol_rows(num_z))
    z_hat = self._prior_values(z_symbols, z_hw)
    mean, index = self._coded_parameters(z_hat, latent_hw)
    rows = gaussian_rows(index_at_step(index, step))
    handle, y_symbols = rangecode.decode_part(
        self._tables, handle, rows + self.prior_channels)
    y_symbols = checked(y_symbols, rangecode.finish_decoding(handle))
    y_symbols += tf.gather(self._gaussian_offset, rows)
    shape = tf.concat([[1], latent_hw, [self.spec.latent_channels]], 0)
    return tf.cast(tf.reshape(y_symbols, shape), tf.float32), mean, index
