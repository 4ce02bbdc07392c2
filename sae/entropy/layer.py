"""One layer of the cascade: transforms plus a factorized entropy model."""

import hashlib
from typing import NamedTuple

import numpy as np

import tensorflow as tf
import tensorflow_compression as tfc

from sae.entropy import rangecode
from sae.config import LayerSpec
from sae.models.transforms import AnalysisTransform, SynthesisTransform


TABLE_KEYS = ("cdf", "cdf_offset", "quantization_offset")


class LayerOutput(NamedTuple):
  """What one layer returns for one input batch."""

  y: tf.Tensor            # latent before quantization
  y_hat: tf.Tensor        # noisy (training) or quantized (inference) latent
  bits: tf.Tensor         # estimated bits per batch element, shape (B,)
  x_hat: tf.Tensor        # unclipped reconstruction of the layer's input


class CodecDigests:
  """What identifies a layer: hashes of its variables (``weight_variables``)
  and of its range coding tables (``coding_tables()``, keys ``table_keys``,
  once ``is_prepared``)."""

  def digest(self) -> str:
    """SHA-256 of this layer's variable values (frozen-layer check, ids)."""
    h = hashlib.sha256()
    # Values only, in a fixed order: names depend on the enclosing scopes.
    for v in self.weight_variables:
      h.update(np.ascontiguousarray(v.numpy()).tobytes())
    return h.hexdigest()

  def make_portable(self) -> None:
    """Makes every choice of a coding table reproducible on any machine,
    for tables stored before sae.entropy.exact (a new weights id).  A factorized
    prior's or a trit layer's tables depend on nothing computed per image:
    nothing to do; sae.entropy.meanscale overrides it."""

  def tables_digest(self) -> str:
    """SHA-256 of the range coding tables ('' before prepare_for_coding)."""
    if not self.is_prepared:
      return ""
    h = hashlib.sha256()
    tables = self.coding_tables()
    for key in self.table_keys:
      h.update(np.ascontiguousarray(tables[key]).tobytes())
    return h.hexdigest()


class LayerCodec(CodecDigests, tf.keras.Model):
  """Balle 2017 auto-encoder coding its input (an image or a residual).

  The prior's variables are the only trainable state of the entropy model
  (tfc v2 has no auxiliary loss).  ``prepare_for_coding`` fixes the range
  coding tables once the layer is trained; before that ``compress`` raises.
  """

  def __init__(self, spec: LayerSpec, name: str):
    super().__init__(name=name)
    self.spec = spec
    self.analysis = AnalysisTransform(spec)
    self.synthesis = SynthesisTransform(spec)
    self.prior = tfc.NoisyDeepFactorized(batch_shape=(self.prior_channels,))
    self.coder = None
    self._tables = None  # rangecode.Tables, with the coder
    # The prior's quantization offset once the prior stops training but
    # the rest may not (fix_offset); the coder's takes over once it exists.
    self._fixed_offset = None
    self.build((None, None, None, 3))

  table_keys = TABLE_KEYS  # what coding_tables() holds

  @property
  def prior_channels(self) -> int:
    """Channels of what the factorized prior codes (here: the latent)."""
    return self.spec.latent_channels

  def checkpoint_objects(self) -> dict:
    """The objects whose variables make up this layer, by checkpoint name."""
    return {"analysis": self.analysis, "synthesis": self.synthesis,
            "prior": self.prior}

  def build(self, input_shape):
    self.analysis.build(input_shape)
    self.synthesis.build((None, None, None, self.spec.latent_channels))
    self.built = True  # without a traced call(): nothing to infer

  def _entropy_model(self, training):
    """Noise model while training; otherwise quantizes as the coder does."""
    if training:
      # The quantization offset is unused under noise; estimating it from
      # the prior every step would cost an iterative search per step.
      return tfc.ContinuousBatchedEntropyModel(
          self.prior, coding_rank=3, compression=False, offset_heuristic=False)
    offset = (self._fixed_offset if self.coder is None
              else self.coder.quantization_offset)
    return tfc.ContinuousBatchedEntropyModel(
        self.prior, coding_rank=3, compression=False,
        quantization_offset=offset)

  def call(self, x, training=False, rounded=False):
    """Codes ``x``: additive noise when training, hard quantization otherwise.

    ``rounded`` (training only): the rate still sees noise, the synthesis
    the quantized latent with a straight-through gradient (Minnen and
    Singh, "Channel-wise autoregressive entropy models", ICIP 2020), so
    what the layers above code is what they will code after decoding.
    """
    y = self.analysis(x)
    y_hat, bits = self._entropy_model(training)(y, training=training)
    if training and rounded:
      y_hat = straight_through(y, self.quantize(y))
    return LayerOutput(y, y_hat, bits, self.synthesis(y_hat))

  def quantize(self, y):
    """Inference-mode quantization; identical to decompress(compress(y))."""
    if self.coder is not None:
      return self.coder.quantize(y)
    return self._entropy_model(training=False).quantize(y)

  def prepare_for_coding(self, tables=None):
    """Builds the range coding tables from the (now fixed) prior.

    Args:
      tables: stored tables (``coding_tables()`` of an earlier call); shipped
        weights carry them so that encoder and decoder machines use the very
        same integers, whatever their floating-point arithmetic.

    tfc builds tables eagerly, where its tail search (a while loop) takes
    seconds per layer; tracing it once in a tf.function takes a fraction, and
    the coder is then built from the resulting tables.
    """
    prior = self.prior
    if tables is not None:
      # The class's keys are required; an instance may hold optional ones
      # too (sae.entropy.meanscale's exact hyper-synthesis).
      missing = set(type(self).table_keys) - set(tables)
      if missing:
        raise ValueError(f"{self.name}: stored tables lack {sorted(missing)}")
      cdf, cdf_offset, offset = (tf.constant(tables[key]) for key in TABLE_KEYS)
    else:
      cdf, cdf_offset, offset = self._compute_tables()
    self.coder = tfc.ContinuousBatchedEntropyModel(
        prior_shape=prior.batch_shape, coding_rank=3, compression=True,
        cdf=cdf, cdf_offset=cdf_offset, quantization_offset=offset)
    self._tables = rangecode.Tables(self.coder.cdf.numpy())
    self.freeze_transforms()

  def fix_offset(self):
    """Computes the prior's quantization offset once, for a training that
    no longer changes the prior: otherwise the hard-quantized path searches
    for it (tfc's tail estimate, about 0.1 s) on every step."""
    self._fixed_offset = self._compute_tables()[2]

  def freeze_transforms(self, on=True):
    """Computes the transforms' reparameterized kernels once (the weights
    are final once the layer codes); ``on=False`` undoes it, for weights
    that are restored or trained afterwards."""
    self.analysis.freeze(on)
    self.synthesis.freeze(on)

  def coding_tables(self) -> dict:
    """The range coding tables as NumPy arrays (keys: TABLE_KEYS)."""
    coder = self._require_coder()
    return {"cdf": coder.cdf.numpy(), "cdf_offset": coder.cdf_offset.numpy(),
            "quantization_offset": coder.quantization_offset.numpy()}

  def _compute_tables(self):
    prior = self.prior

    @tf.function
    def tables():
      model = tfc.ContinuousBatchedEntropyModel(
          prior, coding_rank=3, compression=True, stateless=True)
      offset = model.quantization_offset
      if offset is None:
        offset = tf.zeros(prior.batch_shape)
      return model.cdf, model.cdf_offset, offset

    # On the CPU whatever the host has: encoder and decoder machines must
    # derive bit-identical tables from the same weights.
    with tf.device("/CPU:0"):
      return tables()

  def _require_coder(self):
    if self.coder is None:
      raise RuntimeError(
          f"{self.name}: call prepare_for_coding() before compress/decompress")
    return self.coder

  def _symbol_rows(self, num_symbols):
    """Each prior symbol's table row: its channel (channels innermost)."""
    channels = self.prior_channels
    return tf.tile(tf.range(channels), [num_symbols // channels])[None]

  def _prior_symbols(self, y):
    """What the factorized prior codes -> int32 (1, n) row-relative symbols."""
    coder = self._require_coder()
    symbols = tf.cast(tf.round(y - coder.quantization_offset), tf.int32)
    return tf.reshape(symbols - coder.cdf_offset, [1, -1])

  def _prior_values(self, symbols, hw):
    """Inverse of _prior_symbols: the quantized (1, h, w, channels) values."""
    coder = self._require_coder()
    symbols = tf.reshape(symbols, [1, hw[0], hw[1], self.prior_channels])
    return (tf.cast(symbols + coder.cdf_offset, tf.float32) +
            coder.quantization_offset)

  def compress_latent(self, y):
    """(1, h, w, C) latent -> (1,) string (sae.entropy.rangecode)."""
    symbols = self._prior_symbols(y)
    return rangecode.encode(self._tables, symbols,
                            self._symbol_rows(tf.shape(symbols)[1]))

  def encode_latent(self, y):
    """(1, h, w, C) latent -> ((1,) string, the latent the decoder will
    have), in one pass where the layer's coding computes both."""
    return self.compress_latent(y), self.quantize(y)

  def decompress_latent(self, string, latent_hw):
    """(1,) string and [h, w] -> (1, h, w, C) quantized latent.

    Time bounded by h·w·C whatever the string holds.

    Raises (when run):
      tf.errors.InvalidArgumentError: the string does not decode completely.
    """
    num_symbols = latent_hw[0] * latent_hw[1] * self.prior_channels
    symbols, consistent = rangecode.decode(
        self._tables, string, self._symbol_rows(num_symbols))
    return self._prior_values(checked(symbols, consistent), latent_hw)

  @property
  def weight_variables(self):
    """The variables that define this layer, in a fixed order."""
    return (list(self.analysis.weights) + list(self.synthesis.weights) +
            list(self.prior.trainable_variables))

  @property
  def is_prepared(self) -> bool:
    return self.coder is not None


def straight_through(y, quantized):
  """``quantized`` forward, the identity's gradient backward."""
  return y + tf.stop_gradient(quantized - y)


def checked(tensor, consistent):
  """``tensor``, once the decoder's end-of-data check passed.

  Raises (when run):
    tf.errors.InvalidArgumentError: the string does not decode completely.
  """
  check = tf.debugging.assert_equal(
      consistent, True, message="payload does not decode completely")
  with tf.control_dependencies([check]):
    return tf.identity(tensor)
