"""The nested family with a conditional top layer (issue #39, docs/sae2.md).

    layers 0 .. L-1: the nested family's ladder (sae.models.nested): one
                     latent y, refined in trits, x̂ₗ = synthesis_{L-1}(ŷₗ)
    layer L:         a conditional layer (sae.entropy.conditional): a
                     latent w of its own, its Gaussians predicted from ŷₗ,
                     x̂ = x̂ₗ + refine(x̂ₗ, synthesis(ŵ, ŷₗ))

The nested model's top layer refines its latent by one more trit, so it
decodes no better than the latent's floor; at about 1 bpp that left it
4.3 dB under JPEG 2000 on held-out photographs.  A conditional top layer
codes what the ladder missed instead (+2.5 dB at the same rate).

Training is layer by layer, as every family's: the ladder as the nested
family's, then the top on the frozen ladder (train_el3.py), its loss
``bpp + lmbda · MSE`` with bpp the top layer's own rate.  Coding: the
ladder's strings as the nested family's, then the top's.  Any prefix
decodes: up to L layers by the ladder's synthesis of that step, all of
them by the top's.

What selects the top's coding tables is computed from ŷₗ, so ŷₗ is made
the same on every machine: the base's hyper-synthesis gives its means in
exact integer arithmetic too (MeanScaleCodec.float_means), and ŷₗ =
symbols · step + means is a multiple of 2^-14, exact in float32.
"""

import tensorflow as tf

from sae.config import layer_name
from sae.entropy.conditional import ConditionalCodec
from sae.entropy.layer import straight_through
from sae.models import losses
from sae.models.base import CascadeOutput
from sae.models.nested import NestedAutoEncoder
from sae.models.transforms import (BAND_LATENT_PIXELS, decode_in_bands,
                                   latent_shape, pad_to_stride)

TOP_BAND_DIVISOR = 8


class ConditionalNestedAutoEncoder(NestedAutoEncoder):
  """The nested ladder, and a conditional layer on top when the table's
  last layer is of kind "conditional"."""

  def __init__(self, specs, metric="mse"):
    super().__init__(specs, metric)
    kinds = [s.kind for s in self.specs]
    if "conditional" in kinds[:-1] or kinds.count("conditional") > 1:
      raise ValueError("a conditional layer is the top layer, above the "
                       "nested ones")
    if self.has_top and self.ladder_layers < 1:
      raise ValueError("a conditional layer needs nested layers below it")
    self.base.float_means = False  # the top's tables depend on ŷₗ
    if self.has_top:
      # The top's synthesis and refinement hold 32 to 64 channels at the
      # image's resolution: bands of a quarter of the others' pixels keep a
      # 24-megapixel photo's decoding near the other families' peak
      # (benchmarks/peak_memory.py; docs/sae2.md, session 30).
      self.band_latent_pixels = BAND_LATENT_PIXELS // TOP_BAND_DIVISOR

  def make_codec(self, k, spec):
    if spec.kind == "conditional":
      return ConditionalCodec(spec, layer_name(k),
                              condition_channels=self.specs[0].latent_channels)
    return super().make_codec(k, spec)

  @property
  def has_top(self) -> bool:
    return self.specs[-1].kind == "conditional"

  @property
  def top(self) -> ConditionalCodec:
    return self.codecs[-1]

  def _is_top(self, k) -> bool:
    return self.has_top and k == self.num_layers - 1

  # Training.

  def start_layer(self, k):
    if not self._is_top(k):  # the top starts from its initializers
      super().start_layer(k)

  def finish(self, k):
    return None if self._is_top(k) else super().finish(k)

  def _ladder_top(self, x, straight=False):
    """(ŷₗ, x̂ₗ) of a batch: the ladder's finest latent as the decoder has
    it (rounded around the means of ẑ quantized as coded) and its image.
    ``straight``: the rounding passes the analysis' gradient through."""
    y = self.base.analysis(x)
    mean = self.base.gaussians(y)[0]
    step = self.steps[-1]
    y_lower = tf.round((y - mean) / step) * step + mean
    if straight:
      y_lower = straight_through(y, y_lower)
    return y_lower, self.codecs[self.ladder_layers - 1].synthesis(y_lower)

  def forward(self, x, k, training=True, lower=None):
    if not self._is_top(k):
      return super().forward(x, k, training, lower)
    y_lower, x_lower = (tf.stop_gradient(t) for t in self._ladder_top(x))
    return self._top_output(x, x_lower, y_lower, training)

  def forward_synthesis(self, x, k, training=True):
    if not self._is_top(k):
      return super().forward_synthesis(x, k, training)
    return self.forward(x, k, training=False)

  def _top_output(self, x, x_lower, y_lower, training):
    bits, total = self.top.forward(x, x_lower, y_lower, training)
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    return self._output(x, bits / pixels, total, self.specs[-1].lmbda)

  def forward_joint(self, x, layer_weights, training=True):
    """The ladder's summed loss (NestedAutoEncoder.forward_joint), plus the
    top's weighted loss, its rate added to the ladder's: the analysis
    learns for the top too, through ŷₗ and x̂ₗ."""
    ladder = self.ladder_layers
    out = super().forward_joint(x, layer_weights[:ladder], training)
    if not self.has_top or len(layer_weights) <= ladder:
      return out
    y_lower, x_lower = self._ladder_top(x, straight=True)
    top = self._top_output(x, x_lower, y_lower, training)
    bpp = out.bpp + top.bpp
    loss = layer_weights[ladder] * losses.rd_loss(
        bpp, x, top.total, self.specs[-1].lmbda, self.metric)
    return CascadeOutput(out.loss + loss, bpp, top.mse, top.total)

  # Coding.

  def _code_layers(self, image, num_layers, one_band=False):
    strings, x, symbols, mean = self._code_ladder(image, num_layers, one_band)
    if not self.has_top:
      return tf.stack(strings), tf.shape(image)[:2]

    def code_top():
      y_lower = symbols * self.steps[-1] + mean
      x_lower = self._synthesize(self.codecs[self.ladder_layers - 1],
                                 y_lower, one_band)
      # The analysis reads the image and the image below, row for row.
      w = self._analyze(self.top, tf.concat([x, x_lower], -1), one_band)
      return self.top.encode(w, y_lower)[0]

    strings.append(tf.cond(num_layers > self.ladder_layers, code_top,
                           lambda: tf.constant("")))
    return tf.stack(strings), tf.shape(image)[:2]

  def _decode_padded(self, strings, image_shape, one_band=False):
    if not self.has_top:
      return super()._decode_padded(strings, image_shape, one_band)
    ladder = self.ladder_layers

    def with_top():
      hw = latent_shape(image_shape)
      symbols, mean, _ = self._decode_symbols(strings[:ladder], hw)
      y_lower = symbols * self.steps[-1] + mean
      w_hat = self.top.decode(strings[ladder:ladder + 1], y_lower)
      below = self.codecs[ladder - 1].synthesis

      def rows(a, b):
        x_lower = below(y_lower[:, a:b])
        return self.top.reconstruct(w_hat[:, a:b], y_lower[:, a:b], x_lower)

      if one_band:
        return rows(0, hw[0])
      return decode_in_bands(rows, hw, self.band_latent_pixels)

    return tf.cond(tf.shape(strings)[0] > ladder, with_top,
                   lambda: super(ConditionalNestedAutoEncoder, self)
                   ._decode_padded(strings, image_shape, one_band))

  def reconstructions(self, x):
    out = super().reconstructions(x)
    if not self.has_top:
      return out
    x_pad = pad_to_stride(x)
    y_lower, x_lower = self._ladder_top(x_pad)
    w = self.top.analysis(tf.concat([x_pad, x_lower], -1))
    mean, _ = self.top.coded_parameters(y_lower)
    total = self.top.reconstruct(tf.round(w - mean) + mean, y_lower, x_lower)
    return out + [total[:, :tf.shape(x)[1], :tf.shape(x)[2], :]]

