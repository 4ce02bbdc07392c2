"""SAE+ candidate layers for the probes (issue #24): probe code, outside the package.

Every layer maps (image, what the decoder already has) to (bits, what the
decoder has after this layer).  What the decoder has is a ``Decoded``: the
cumulative reconstruction, the latent the layers so far decoded, and the
base's decoded side information (entropy parameters).  Four layer kinds:

- ``CascadeLayer``: the faithful SAE layer (sae.entropy.layer.LayerCodec) coding the
  pixel residual with a factorized prior (Jia et al., MIPR 2019).
- ``MeanScaleBase``: a mean-scale hyperprior base (Balle et al., ICLR 2018;
  Minnen et al., NeurIPS 2018, without the autoregressive context): a
  Gaussian conditional whose means and scales come from a hyper-latent coded
  with a factorized prior.
- ``ConditionalLayer``: an enhancement layer coding the pixel residual
  conditionally: its analysis sees the lower reconstruction, its synthesis
  the lower latents and side information, and its Gaussian conditional takes
  its means and scales from them (no side information of its own).
- ``RefinementLayer``: an enhancement layer that codes a latent-domain
  residual on top of the lower latent (cf. Mei et al., IEEE TMM 2021), with
  the same conditional entropy model; the refined latent is decoded by the
  layer's own synthesis alone, so decoding k layers runs one synthesis.

Layers below the one being trained run in inference mode (hard-quantized),
without gradients, as in sae.models.model.  Streams here are for measuring: each
layer's payload is its range-coded strings (``join_strings``), packed by
sae.stream.bitstream like the faithful model's.
"""

import hashlib
import struct
from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from sae.models import losses
from sae.config import LayerSpec, layer_name
from sae.entropy.layer import LayerCodec
from sae.entropy.meanscale import (HYPER_STRIDE, SCALES_LEVELS, conv,
                           hyper_analysis_transform, hyper_synthesis_transform,
                           scale_fn)
from sae.models.transforms import (TOTAL_STRIDE, AnalysisTransform,
                            SynthesisTransform, pad_to_stride)



def scale_index(scale_logits):
  """Network output -> float scale index in [0, SCALES_LEVELS - 1]."""
  return tf.clip_by_value(scale_logits, 0.0, SCALES_LEVELS - 1.0)


class Decoded(NamedTuple):
  """What the decoder holds after some layers (batch B, padded image size)."""

  recon: tf.Tensor   # (B, H, W, 3) cumulative reconstruction, unclipped
  latent: tf.Tensor  # (B, h, w, C) latent(s) decoded so far (C may be 0)
  side: tf.Tensor    # (B, h, w, P) base side information (P may be 0)


class LayerResult(NamedTuple):
  bits: tf.Tensor     # (B,) estimated bits of this layer
  decoded: Decoded    # the decoder's state after this layer


def empty_decoded(x):
  """Before the base: nothing decoded."""
  b = tf.shape(x)[0]
  h, w = tf.shape(x)[1] // TOTAL_STRIDE, tf.shape(x)[2] // TOTAL_STRIDE
  zeros = tf.zeros(tf.stack([b, h, w, 0]))
  return Decoded(tf.zeros_like(x), zeros, zeros)


class FactorizedPrior(tf.Module):
  """The factorized entropy model of sae.entropy.layer.LayerCodec, for a hyper-latent.

  Same noise model and quantization offsets.  Range coding is tfc's own
  (stream version 1's) for every candidate here, so that all probes share one
  coder; a shipped family codes through sae.entropy.rangecode (issue #23).
  """

  def __init__(self, channels, name):
    super().__init__(name=name)
    self.prior = tfc.NoisyDeepFactorized(batch_shape=(channels,))
    self.coder = None

  def entropy_model(self, training):
    if training:
      return tfc.ContinuousBatchedEntropyModel(
          self.prior, coding_rank=3, compression=False, offset_heuristic=False)
    return tfc.ContinuousBatchedEntropyModel(
        self.prior, coding_rank=3, compression=False,
        quantization_offset=(None if self.coder is None
                             else self.coder.quantization_offset))

  def quantize(self, z):
    model = self.coder or self.entropy_model(training=False)
    return model.quantize(z)

  def prepare_for_coding(self):
    prior = self.prior

    @tf.function
    def tables():  # traced: tfc's eager tail search takes seconds
      model = tfc.ContinuousBatchedEntropyModel(
          prior, coding_rank=3, compression=True, stateless=True)
      return model.cdf, model.cdf_offset, model.quantization_offset

    with tf.device("/CPU:0"):
      cdf, cdf_offset, offset = tables()
    self.coder = tfc.ContinuousBatchedEntropyModel(
        prior_shape=prior.batch_shape, coding_rank=3, compression=True,
        stateless=True, cdf=cdf, cdf_offset=cdf_offset,
        quantization_offset=offset)

  def compress(self, z):
    return (self.coder or _no_coder()).compress(z)

  def decompress(self, string, hw):
    return (self.coder or _no_coder()).decompress(string, hw)


class GaussianConditional(tf.Module):
  """Mean-scale Gaussian conditional (tfc.LocationScaleIndexedEntropyModel)."""

  def __init__(self, name="gaussian"):
    super().__init__(name=name)
    self.coder = None

  def _model(self, compression=False):
    return tfc.LocationScaleIndexedEntropyModel(
        tfc.NoisyNormal, SCALES_LEVELS, scale_fn, coding_rank=3,
        compression=compression, stateless=True)

  def prepare_for_coding(self):
    # The table depends on the scale grid only (no trained variable).
    with tf.device("/CPU:0"):
      self.coder = self._model(compression=True)

  def __call__(self, y, index, mean, training):
    if training:
      return self._model()(y, index, loc=mean, training=True)
    y_hat = tf.round(y - mean) + mean
    _, bits = self._model()(y, index, loc=mean, training=False)
    return y_hat, bits

  def compress(self, y, index, mean):
    return self.coder.compress(y - mean, index) if self.coder else _no_coder()

  def decompress(self, string, index, mean):
    return self.coder.decompress(string, index) + mean


def _no_coder():
  raise RuntimeError("call prepare_for_coding() before compress/decompress")


# An enhancement layer's scales start at about 2 (index 24), not at the
# smallest scale a zero output gives: there every value but the mean costs
# many bits, and in probes the layer's rate collapsed to ~0.03 bpp within 200
# steps and recovered slowly (research/sae-plus-probes.md).
INITIAL_SCALE_INDEX = 24.0


def _params_net(filters, out_channels, name):
  """Latent-resolution net: lower latents/side info -> means, scale logits."""
  bias = np.concatenate([np.zeros(out_channels),
                         np.full(out_channels, INITIAL_SCALE_INDEX)])
  return tf.keras.Sequential([
      conv(filters, 3, "layer_0", activation=tf.nn.leaky_relu),
      conv(filters, 3, "layer_1", activation=tf.nn.leaky_relu),
      tfc.SignalConv2D(
          2 * out_channels, (3, 3), name="layer_2", corr=True,
          padding="same_zeros", use_bias=True,
          bias_initializer=tf.constant_initializer(bias.astype(np.float32))),
  ], name=name)


def lower_context(lower: Decoded):
  """[lower latent, base means, base scale index / 8]: the decoder's latent-
  resolution knowledge, on comparable scales (raw scale logits reach ~60)."""
  if lower.side.shape[-1] == 0:
    return lower.latent
  mean, logits = tf.split(lower.side, 2, axis=-1)
  return tf.concat([lower.latent, mean, scale_index(logits) / 8], -1)


class PlusLayer(tf.keras.layers.Layer):
  """Interface of an SAE+ layer."""

  kind = ""

  def __init__(self, spec: LayerSpec, name: str):
    super().__init__(name=name)
    self.spec = spec

  def code(self, x, lower: Decoded, training: bool) -> LayerResult:
    raise NotImplementedError

  def compress(self, x, lower: Decoded):
    """Batch-1 x -> (list of (1,) strings, Decoded after this layer)."""
    raise NotImplementedError

  def decompress(self, strings, lower: Decoded, latent_hw) -> Decoded:
    raise NotImplementedError

  def prepare_for_coding(self):
    raise NotImplementedError

  def warm_start(self, lower_layer) -> bool:
    """Initializes from the trained layer below; False when it does not."""
    del lower_layer
    return False

  @property
  def weight_variables(self):
    return list(self.weights)

  def digest(self) -> str:
    h = hashlib.sha256()
    for v in self.weight_variables:
      h.update(np.ascontiguousarray(v.numpy()).tobytes())
    return h.hexdigest()


class CascadeLayer(PlusLayer):
  """The faithful layer: a LayerCodec of the pixel residual."""

  kind = "cascade"

  def __init__(self, spec, name, lower_channels=0, side_channels=0):
    super().__init__(spec, name)
    del lower_channels, side_channels  # blind to them, as in the paper
    self.codec = LayerCodec(spec, name=name)

  def _next(self, lower, x_hat):
    return Decoded(lower.recon + x_hat, lower.latent, lower.side)

  def code(self, x, lower, training):
    out = self.codec(x - lower.recon, training=training)
    return LayerResult(out.bits, self._next(lower, out.x_hat))

  def compress(self, x, lower):
    y = self.codec.analysis(x - lower.recon, training=False)
    x_hat = self.codec.synthesis(self.codec.quantize(y), training=False)
    return [self.codec.coder.compress(y)], self._next(lower, x_hat)

  def decompress(self, strings, lower, latent_hw):
    y_hat = self.codec.coder.decompress(strings[0], latent_hw)
    return self._next(lower, self.codec.synthesis(y_hat, training=False))

  def prepare_for_coding(self):
    self.codec.prepare_for_coding()

  @property
  def weight_variables(self):
    return self.codec.weight_variables


class MeanScaleBase(PlusLayer):
  """Mean-scale hyperprior base: y ~ N(mu(z), sigma(z)), z factorized."""

  kind = "meanscale"

  def __init__(self, spec, name, lower_channels=0, side_channels=0):
    super().__init__(spec, name)
    c, f = spec.latent_channels, spec.conv_filters
    self.hyper_channels = f
    self.analysis = AnalysisTransform(spec)
    self.synthesis = SynthesisTransform(spec)
    self.hyper_analysis = hyper_analysis_transform(f)
    self.hyper_synthesis = hyper_synthesis_transform(f, c)
    self.hyper_prior = FactorizedPrior(f, "hyper_prior")
    self.gaussian = GaussianConditional()
    self.analysis.build((None, None, None, 3))
    self.synthesis.build((None, None, None, c))
    self.hyper_analysis.build((None, None, None, c))
    self.hyper_synthesis.build((None, None, None, f))

  def _side(self, z_hat, hw):
    side = self.hyper_synthesis(z_hat, training=False)
    return side[:, :hw[0], :hw[1]]  # z was padded by the hyper stride

  def _split(self, side):
    mean, logits = tf.split(side, 2, axis=-1)
    return mean, scale_index(logits)

  def code(self, x, lower, training):
    y = self.analysis(x)
    z = self.hyper_analysis(y)
    if training:
      z_hat, z_bits = self.hyper_prior.entropy_model(True)(z, training=True)
    else:
      z_hat = self.hyper_prior.quantize(z)
      _, z_bits = self.hyper_prior.entropy_model(False)(z, training=False)
    side = self._side(z_hat, tf.shape(y)[1:3])
    mean, index = self._split(side)
    y_hat, y_bits = self.gaussian(y, index, mean, training)
    recon = self.synthesis(y_hat)
    return LayerResult(y_bits + z_bits, Decoded(recon, y_hat, side))

  def compress(self, x, lower):
    y = self.analysis(x, training=False)
    z = self.hyper_analysis(y, training=False)
    z_string = self.hyper_prior.compress(z)
    z_hat = self.hyper_prior.quantize(z)
    side = self._side(z_hat, tf.shape(y)[1:3])
    mean, index = self._split(side)
    y_string = self.gaussian.compress(y, index, mean)
    y_hat = tf.round(y - mean) + mean
    recon = self.synthesis(y_hat, training=False)
    return [z_string, y_string], Decoded(recon, y_hat, side)

  def decompress(self, strings, lower, latent_hw):
    z_hw = (latent_hw + HYPER_STRIDE - 1) // HYPER_STRIDE
    z_hat = self.hyper_prior.decompress(strings[0], z_hw)
    side = self._side(z_hat, latent_hw)
    mean, index = self._split(side)
    y_hat = self.gaussian.decompress(strings[1], index, mean)
    recon = self.synthesis(y_hat, training=False)
    return Decoded(recon, y_hat, side)

  def prepare_for_coding(self):
    self.hyper_prior.prepare_for_coding()
    self.gaussian.prepare_for_coding()

  @property
  def weight_variables(self):
    return (list(self.analysis.weights) + list(self.synthesis.weights) +
            list(self.hyper_analysis.weights) +
            list(self.hyper_synthesis.weights) +
            list(self.hyper_prior.prior.trainable_variables))


class MeanScaleResidualLayer(MeanScaleBase):
  """An enhancement layer coding the pixel residual as the cascade does,
  with a mean-scale hyperprior of its own instead of a factorized prior
  (side information sent in this layer): the kind sae.entropy.meanscale builds."""

  kind = "meanscale-residual"

  def _next(self, lower, decoded):
    return Decoded(lower.recon + decoded.recon, lower.latent, lower.side)

  def code(self, x, lower, training):
    result = super().code(x - lower.recon, lower, training)
    return LayerResult(result.bits, self._next(lower, result.decoded))

  def compress(self, x, lower):
    strings, decoded = super().compress(x - lower.recon, lower)
    return strings, self._next(lower, decoded)

  def decompress(self, strings, lower, latent_hw):
    return self._next(lower, super().decompress(strings, lower, latent_hw))


class ConditionalLayer(PlusLayer):
  """Conditional coding of the pixel residual.

  Analysis: [x - lower recon, lower recon] -> y.  Entropy model: means and
  scales from ``lower_context`` (lower latents, base side information).
  Synthesis: [y_hat, lower context] -> residual, times a per-channel gain
  that starts at 0.1, added to the lower reconstruction.
  """

  kind = "conditional"

  def __init__(self, spec, name, lower_channels, side_channels):
    super().__init__(spec, name)
    c = spec.latent_channels
    context = lower_channels + side_channels
    self.analysis = AnalysisTransform(spec)
    self.synthesis = SynthesisTransform(spec)
    self.params = _params_net(spec.conv_filters, c, "params")
    self.gaussian = GaussianConditional()
    # The residual starts small: a random synthesis fed the context adds
    # noise of ~1000 MSE at first, which training first removes by dropping
    # the rate (as the refinement layer's gain).
    self.gain = self.add_weight(
        name="gain", shape=(3,),
        initializer=tf.keras.initializers.Constant(0.1))
    self.analysis.build((None, None, None, 6))
    self.synthesis.build((None, None, None, c + context))
    self.params.build((None, None, None, context))

  def _context(self, lower):
    return lower_context(lower)

  def _entropy_params(self, context):
    mean, logits = tf.split(self.params(context, training=False), 2, axis=-1)
    return mean, scale_index(logits)

  def _next(self, lower, y_hat, context):
    residual = self.gain * self.synthesis(tf.concat([y_hat, context], -1),
                                          training=False)
    return Decoded(lower.recon + residual,
                   tf.concat([lower.latent, y_hat], -1), lower.side)

  def _analyze(self, x, lower):
    return self.analysis(tf.concat([x - lower.recon, lower.recon], -1),
                         training=False)

  def code(self, x, lower, training):
    context = self._context(lower)
    mean, index = self._entropy_params(context)
    y_hat, bits = self.gaussian(self._analyze(x, lower), index, mean, training)
    return LayerResult(bits, self._next(lower, y_hat, context))

  def compress(self, x, lower):
    context = self._context(lower)
    mean, index = self._entropy_params(context)
    y = self._analyze(x, lower)
    string = self.gaussian.compress(y, index, mean)
    return [string], self._next(lower, tf.round(y - mean) + mean, context)

  def decompress(self, strings, lower, latent_hw):
    context = self._context(lower)
    mean, index = self._entropy_params(context)
    return self._next(lower, self.gaussian.decompress(strings[0], index, mean),
                      context)

  def prepare_for_coding(self):
    self.gaussian.prepare_for_coding()


class RefinementLayer(PlusLayer):
  """Latent-domain residual decoded by one synthesis.

  Analysis: [x, lower recon] -> latent residual r (C >= lower channels),
  scaled by a per-channel gain that starts small (0.1); r is coded with means
  and scales from ``lower_context``; the refined latent (lower latent
  zero-padded to C) + r_hat alone is decoded by this layer's synthesis (the
  lower reconstruction is replaced, not added to).  ``warm_start`` copies
  the lower synthesis, so training starts at the lower layer's point.
  """

  kind = "refinement"

  def __init__(self, spec, name, lower_channels, side_channels):
    super().__init__(spec, name)
    c = spec.latent_channels
    if lower_channels > c:
      raise ValueError(f"{name}: a refinement needs at least the lower "
                       f"latent's {lower_channels} channels, got {c}")
    self.analysis = AnalysisTransform(spec)
    self.synthesis = SynthesisTransform(spec)
    self.params = _params_net(spec.conv_filters, c, "params")
    self.gaussian = GaussianConditional()
    self.gain = self.add_weight(name="gain", shape=(c,),
                                initializer=tf.keras.initializers.Constant(0.1))
    self.analysis.build((None, None, None, 6))
    self.synthesis.build((None, None, None, c))
    self.params.build((None, None, None, lower_channels + side_channels))

  def warm_start(self, lower_layer):
    """Starts from the lower layer's synthesis when shapes allow; True if so."""
    source = getattr(lower_layer, "synthesis", None)
    if source is None or [v.shape for v in source.weights] != [
        v.shape for v in self.synthesis.weights]:
      return False
    for mine, theirs in zip(self.synthesis.weights, source.weights):
      mine.assign(theirs)
    return True

  def _base(self, lower):
    extra = self.spec.latent_channels - lower.latent.shape[-1]
    return tf.pad(lower.latent, [[0, 0], [0, 0], [0, 0], [0, extra]])

  def _entropy_params(self, lower):
    out = self.params(lower_context(lower), training=False)
    mean, logits = tf.split(out, 2, axis=-1)
    return mean, scale_index(logits)

  def _residual(self, x, lower):
    r = self.analysis(tf.concat([x, lower.recon], -1), training=False)
    return r * self.gain

  def _next(self, lower, r_hat):
    latent = self._base(lower) + r_hat
    return Decoded(self.synthesis(latent, training=False), latent, lower.side)

  def code(self, x, lower, training):
    mean, index = self._entropy_params(lower)
    r_hat, bits = self.gaussian(self._residual(x, lower), index, mean,
                                training)
    return LayerResult(bits, self._next(lower, r_hat))

  def compress(self, x, lower):
    mean, index = self._entropy_params(lower)
    r = self._residual(x, lower)
    string = self.gaussian.compress(r, index, mean)
    return [string], self._next(lower, tf.round(r - mean) + mean)

  def decompress(self, strings, lower, latent_hw):
    mean, index = self._entropy_params(lower)
    return self._next(lower, self.gaussian.decompress(strings[0], index, mean))

  def prepare_for_coding(self):
    self.gaussian.prepare_for_coding()


LAYER_KINDS = {cls.kind: cls for cls in (
    CascadeLayer, MeanScaleBase, MeanScaleResidualLayer, ConditionalLayer,
    RefinementLayer)}

# The probe candidates (research/sae-plus-probes.md): layer kinds, base first.
CANDIDATES = {
    "a-cascade": ("cascade", "cascade", "cascade"),
    "b-meanscale": ("meanscale", "cascade", "cascade"),
    "c-conditional": ("meanscale", "conditional", "conditional"),
    "d-refinement": ("meanscale", "refinement", "refinement"),
    "e-meanscale-residual": ("meanscale", "meanscale-residual",
                             "meanscale-residual"),
}


def _latent_channels(kinds, specs):
  """Channels of Decoded.latent and .side after each layer."""
  latent, side, out = 0, 0, []
  for kind, spec in zip(kinds, specs):
    if kind == "meanscale":
      latent, side = spec.latent_channels, 2 * spec.latent_channels
    elif kind == "conditional":
      latent += spec.latent_channels
    elif kind == "refinement":
      latent = spec.latent_channels
    out.append((latent, side))
  return out


class TrainOutput(NamedTuple):
  loss: tf.Tensor
  bpp: tf.Tensor   # (B,) of the active layer
  mse: tf.Tensor   # (B,) of the cumulative reconstruction


class PlusModel(tf.keras.Model):
  """A stack of SAE+ layers of the given kinds."""

  def __init__(self, kinds: Sequence[str], specs: Sequence[LayerSpec],
               metric: str = "mse"):
    super().__init__(name="sae_plus")
    if not kinds or len(kinds) > len(specs):
      raise ValueError(f"need 1..{len(specs)} layer kinds, got {len(kinds)}")
    if any(k == "meanscale" for k in kinds[1:]):
      raise ValueError("a mean-scale layer can only be the base")
    if kinds[0] in ("conditional", "refinement"):
      raise ValueError(f"{kinds[0]!r} needs a layer below it")
    self.kinds, self.specs, self.metric = tuple(kinds), tuple(specs), metric
    channels = [(0, 0)] + _latent_channels(self.kinds, self.specs)
    self.plus_layers = [
        LAYER_KINDS[kind](spec, layer_name(i), *channels[i])
        for i, (kind, spec) in enumerate(zip(self.kinds, self.specs))]

  @property
  def num_layers(self):
    return len(self.plus_layers)

  def decoded_below(self, x, k):
    """Inference-mode state after layers 0..k-1 (no gradients)."""
    state = empty_decoded(x)
    for layer in self.plus_layers[:k]:
      state = layer.code(x, state, training=False).decoded
    return Decoded(*(tf.stop_gradient(t) for t in state))

  def forward(self, x, k, training=True):
    """Loss of layer ``k`` on a batch (0..255, sides multiples of 16)."""
    result = self.plus_layers[k].code(x, self.decoded_below(x, k), training)
    num_pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    bpp = result.bits / num_pixels
    total = result.decoded.recon
    mse = tf.reduce_mean(tf.math.squared_difference(x, total), axis=(1, 2, 3))
    loss = losses.rd_loss(bpp, x, total, self.specs[k].lmbda, self.metric)
    return TrainOutput(loss, bpp, mse)

  def set_trainable_layer(self, k):
    """Freezes every layer but ``k``; returns its trainable variables."""
    for j, layer in enumerate(self.plus_layers):
      layer.trainable = j == k
    variables = self.plus_layers[k].trainable_variables
    if len(self.trainable_variables) != len(variables):
      raise RuntimeError(f"layer {k}: unexpected trainable variables")
    return variables

  def reconstructions(self, x):
    """Cumulative inference reconstructions of a float batch (cropped)."""
    state, out = empty_decoded(pad_to_stride(x)), []
    for layer in self.plus_layers:
      state = layer.code(pad_to_stride(x), state, training=False).decoded
      out.append(state.recon[:, :tf.shape(x)[1], :tf.shape(x)[2]])
    return out

  def prepare_for_coding(self):
    for layer in self.plus_layers:
      layer.prepare_for_coding()

  def compressor(self, num_layers):
    """A tf.function: uint8 (H, W, 3) -> the layers' strings, flat."""

    @tf.function(input_signature=[tf.TensorSpec((None, None, 3), tf.uint8)])
    def compress(image):
      x = pad_to_stride(tf.cast(image, tf.float32)[None])
      state, strings = empty_decoded(x), []
      for layer in self.plus_layers[:num_layers]:
        layer_strings, state = layer.compress(x, state)
        strings += [s[0] for s in layer_strings]
      return tf.stack(strings)

    return compress

  def decompressor(self, num_layers):
    """A tf.function: flat strings, [H, W] -> uint8 (H, W, 3)."""

    @tf.function(input_signature=[tf.TensorSpec((None,), tf.string),
                                  tf.TensorSpec((2,), tf.int32)])
    def decompress(strings, image_shape):
      hw = (image_shape + TOTAL_STRIDE - 1) // TOTAL_STRIDE
      x_shape = tf.concat([[1], hw * TOTAL_STRIDE, [3]], 0)
      state, i = empty_decoded(tf.zeros(x_shape)), 0
      for layer in self.plus_layers[:num_layers]:
        n = strings_per_layer(layer)
        state = layer.decompress(
            [strings[j:j + 1] for j in range(i, i + n)], state, hw)
        i += n
      recon = state.recon[0, :image_shape[0], :image_shape[1]]
      return tf.saturate_cast(tf.round(recon), tf.uint8)

    return decompress


def strings_per_layer(layer) -> int:
  return 2 if isinstance(layer, MeanScaleBase) else 1


def join_strings(strings: Sequence[bytes]) -> bytes:
  """One layer's payload: every string but the last length-prefixed."""
  head = b"".join(struct.pack(">I", len(s)) + s for s in strings[:-1])
  return head + strings[-1]


def split_strings(payload: bytes, count: int) -> list:
  out = []
  for _ in range(count - 1):
    (n,), payload = struct.unpack(">I", payload[:4]), payload[4:]
    out.append(payload[:n])
    payload = payload[n:]
  return out + [payload]
