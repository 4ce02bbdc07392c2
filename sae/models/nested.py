"""The nested family: one latent, refined by every layer (issue #24).

    x ──analysis──► y ──hyper_analysis──► z                       (base)
                    │   ẑ ──hyper_synthesis──► the Gaussians' means, scales
                    ▼
    layer k: q_k = the symbols of y - mean at step s_k (27, 9, 3, 1), each
             q_{k-1} times 3 plus a trit (sae.entropy.trits)
    k + 1 layers decode to  synthesis_k(q_k · s_k + mean)

The base's payload is z and q_0 (sae.entropy.meanscale); layer k's is the trits of
q_k, coded with the Gaussians restricted to their parent bins (sae.entropy.trits).
A prefix of any length decodes by one synthesis: the base's for the base,
layer k's own (sae.entropy.rung) above it.  The idea is DPICT's (Lee et al., CVPR
2022); docs/models.md tells how the probes chose it.

Training, layer by layer as the cascade (train_base.py, train_el1.py, ..):

- the base learns the latent for every step at once: the crops of a batch
  take the layers' steps in turn, from a random one (uniform noise of that
  step, that layer's lambda), so one synthesis runs per training step;
- the base's last tenth of steps trains its synthesis alone, on the
  latent the decoder has at the base's step (hard-quantized), so that the
  base decodes with a synthesis of its own step as every layer above;
  the latent and every rate are fixed by then (the probes measured
  +0.32 dB at the base for such a synthesis, docs/models.md);
- layer k then trains its own synthesis, started from layer k - 1's, on
  the latent the decoder has at s_k (hard-quantized).  The base fixed every
  rate, so its loss is its lambda times the distortion, plus a constant;
- the joint phase (train_joint.py, optional) then fine-tunes the analysis,
  the prior and every synthesis on the summed loss of the prefixes.

The model is a LayeredModel (sae.models.base) whose layers are the base (a
MeanScaleCodec) and rungs (RungCodec): checkpoints, weights ids, stored
tables, the container and every ``--weights`` consumer are every family's.
"""

import tensorflow as tf

from sae.config import layers_label
from sae.models import losses
from sae.entropy import trits
from sae.entropy.layer import straight_through
from sae.entropy.meanscale import gaussian_model, gaussian_rows, index_at_step
from sae.models.base import CascadeOutput, Finish, LayeredModel
from sae.models.transforms import latent_shape, pad_to_stride


# The kinds of layer that refine the base's latent: the ladder's rungs.
LADDER_KINDS = ("meanscale", "nested")


class NestedAutoEncoder(LayeredModel):
  """The base (a MeanScaleCodec) and RungCodecs, from one LayerSpec table
  whose ``step``s shrink by 3 from layer to layer."""

  def __init__(self, specs, metric="mse"):
    super().__init__(specs, metric)
    ladder = [s for s in self.specs if s.kind in LADDER_KINDS]
    self.steps = tuple(float(s.step) for s in ladder)
    trits.nest(tf.zeros([1, 1]), self.steps)  # refuses steps that do not nest
    if any(s.latent_channels != self.specs[0].latent_channels
           for s in ladder):
      raise ValueError("every layer of a nested model refines the base's "
                       "latent: give them its latent channels")
    if any(s.conv_filters != self.specs[0].conv_filters for s in ladder):
      raise ValueError("every layer of a nested model starts from the base's "
                       "synthesis: give them its width")

  # The part of the base's steps, at the end, that train its synthesis
  # alone (see the module's docstring).
  BASE_SYNTHESIS_FRACTION = 0.1

  @property
  def base(self):
    return self.codecs[0]

  @property
  def ladder_layers(self) -> int:
    """How many layers, from the base, refine its latent: all of them
    here; a family may put other layers on top (sae.models.conditional)."""
    return len(self.steps)

  def start_layer(self, k):
    """A new layer's synthesis starts from the one below it, trained on the
    nearest coarser step (the base's was trained on every step, then on its
    own)."""
    if k > 0:
      self.codecs[k].synthesis.set_weights(
          self.codecs[k - 1].synthesis.get_weights())

  # Training.

  def finish(self, k):
    if k > 0:
      return None  # a rung trains nothing but its synthesis anyway

    def forward(x, training=True):
      return self.forward_synthesis(x, 0, training)

    # The prior is fixed from then on: its offset is computed once.
    return Finish(self.BASE_SYNTHESIS_FRACTION, forward,
                  self.base.synthesis.trainable_variables,
                  self.base.fix_offset)

  def _gaussians(self, x, training):
    """(y, its Gaussians' means and float scale indexes, z's bits)."""
    y = self.base.analysis(x)
    return (y,) + tuple(self.base.gaussians(y, training))

  @staticmethod
  def _at_step(y, mean, index, step, training):
    """(ŷ at ``step``, y's bits at it per example): under noise when
    training, as the coder quantizes otherwise.  ``step`` a number or a
    (B, 1, 1, 1) tensor."""
    model = gaussian_model()
    index = index_at_step(index, step)
    if training:
      u_tilde, bits = model(y / step, index, loc=mean / step, training=True)
      return u_tilde * step, bits
    y_hat = tf.round((y - mean) / step) * step + mean
    _, bits = model(y / step, tf.round(index), loc=mean / step, training=False)
    return y_hat, bits

  def forward(self, x, k, training=True, lower=None):
    """Loss of layer ``k`` on a batch (see the module's docstring); for the
    base, each crop is coded at one layer's step with its lambda, and bpp
    is that crop's total rate."""
    del lower  # nothing below is added to a nested layer's output
    if k == 0:
      # The layers in turn from a random one: balanced in a batch of a
      # multiple of the layers, and every layer trained in any other.
      start = tf.random.uniform([], 0, self.ladder_layers, tf.int32)
      return self._base_forward(
          x, (tf.range(tf.shape(x)[0]) + start) % self.ladder_layers,
          training)
    return self.forward_synthesis(x, k, training)

  def forward_synthesis(self, x, k, training=True):
    """Layer ``k``'s loss with its synthesis trained alone, on the latent
    the decoder has at its step (hard-quantized); bpp is what the layer
    sends (the base: z and its symbols).  The latent and the rates are
    constants here."""
    del training  # nothing but the synthesis learns, on the coder's latent
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    y, mean, index, z_bits = self._gaussians(x, training=False)
    y_hat, bits = self._at_step(y, mean, index, self.steps[k], False)
    if k > 0:
      bits -= self._at_step(y, mean, index, self.steps[k - 1], False)[1]
    else:
      bits += z_bits
    total = self.codecs[k].synthesis(tf.stop_gradient(y_hat))
    bpp = tf.stop_gradient(bits) / pixels
    return self._output(x, bpp, total, self.specs[k].lmbda)

  def forward_decoded(self, x, k):
    return self.forward_synthesis(x, k, training=False)

  def at_rung(self, x, rung, training=False):
    """The base's loss with every crop at layer ``rung``'s step."""
    return self._base_forward(x, tf.fill([tf.shape(x)[0]], rung), training)

  def layer_validations(self, k, forward) -> dict:
    """The base learns the latent of every layer: it validates each
    layer's step decoded by its synthesis, one line each."""
    if k > 0:
      return super().layer_validations(k, forward)
    return {layers_label(r): (lambda batch, training=True, r=r:
                              self.at_rung(batch, r, training))
            for r in range(self.ladder_layers)}

  def _base_forward(self, x, rungs, training):
    """The base's loss, crop b coded at layer rungs[b]'s step with its
    lambda (``rungs`` int32 (B,)); bpp is the crop's total rate there."""
    step = tf.gather(self.steps, rungs)[:, None, None, None]
    lmbda = tf.gather([s.lmbda for s in self.specs], rungs)
    y, mean, index, z_bits = self._gaussians(x, training)
    y_hat, bits = self._at_step(y, mean, index, step, training)
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    return self._output(x, (bits + z_bits) / pixels, self.base.synthesis(y_hat),
                        lmbda)

  def _output(self, x, bpp, total, lmbda):
    mse = tf.reduce_mean(tf.math.squared_difference(x, total), axis=(1, 2, 3))
    loss = losses.rd_loss(bpp, x, total, lmbda, self.metric)
    return CascadeOutput(loss, bpp, mse, total)

  def forward_joint(self, x, layer_weights, training=True):
    """Summed loss of every prefix, each decoded by its own synthesis:

        sum_k w_k (bpp_k + lmbda_k D(x, synthesis_k(ŷ at s_k)))

    bpp_k is the total rate of k + 1 layers (z and the symbols at s_k), as
    the base learned it; so the analysis and the prior, fixed since the
    base's phase, now learn for the syntheses the layers trained.  Rates see
    noise when training; each synthesis gets the latent the decoder has at
    its step (rounded around the means of ẑ quantized as coded), its
    gradient passed straight through to the analysis.
    Returns the summed loss, the total bpp and the top layer's MSE.
    """
    pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    y, mean, index, z_bits = self._gaussians(x, training)
    # Under noise the rates' means differ from the decoder's.
    decoded_mean = self.base.gaussians(y)[0] if training else mean
    loss = 0.0
    for k, weight in enumerate(layer_weights):
      step = self.steps[k]
      _, bits = self._at_step(y, mean, index, step, training)
      y_hat = straight_through(
          y, tf.round((y - decoded_mean) / step) * step + decoded_mean)
      out = self._output(x, (bits + z_bits) / pixels,
                         self.codecs[k].synthesis(y_hat), self.specs[k].lmbda)
      loss += weight * out.loss
    return CascadeOutput(loss, out.bpp, out.mse, out.total)

  # Coding: LayeredModel's compress / decompress (and their one-band forms)
  # and refine call these.

  def _code_layers(self, image, num_layers, one_band=False):
    strings = self._code_ladder(image, num_layers, one_band)[0]
    return tf.stack(strings), tf.shape(image)[:2]

  def _code_ladder(self, image, num_layers, one_band=False):
    """The ladder's strings (empty from ``num_layers`` on), the padded
    float image, and the finest coded symbols and their means."""
    x = pad_to_stride(tf.cast(image, tf.float32)[None])
    y = self._analyze(self.base, x, one_band)
    string, symbols, mean, index = self.base.encode_symbols(y, self.steps[0])
    strings = [string[0]]
    for k in range(1, self.ladder_layers):

      def code(k=k, parent=symbols):
        child = trits.refine(parent, y - mean, self.steps[k])
        rows = gaussian_rows(index_at_step(index, self.steps[k]))
        return self.codecs[k].coder.encode(parent, child, rows)[0], child

      string, symbols = tf.cond(k < num_layers, code,
                                lambda s=symbols: (tf.constant(""), s))
      strings.append(string)
    return strings, x, symbols, mean

  def _decode_symbols(self, strings, hw):
    """(symbols of the finest layer in ``strings``, means, its index)."""
    n = tf.minimum(tf.shape(strings)[0], self.ladder_layers)
    symbols, mean, index = self.base.decode_symbols(
        strings[:1], hw, self.steps[0])
    for k in range(1, self.ladder_layers):

      def decode(k=k, parent=symbols):
        rows = gaussian_rows(index_at_step(index, self.steps[k]))
        child, consistent = self.codecs[k].coder.decode(
            strings[k:k + 1], parent, rows)
        check = tf.debugging.assert_equal(
            consistent, True, message="payload does not decode completely")
        with tf.control_dependencies([check]):
          return tf.identity(child)

      symbols = tf.cond(k < n, decode, lambda s=symbols: s)
    return symbols, mean, n - 1

  def _decode_padded(self, strings, image_shape, one_band=False):
    symbols, mean, top = self._decode_symbols(strings, latent_shape(image_shape))
    y_hat = symbols * tf.gather(self.steps, top) + mean
    return tf.switch_case(top, [
        lambda codec=codec: self._synthesize(codec, y_hat, one_band)
        for codec in self.codecs[:self.ladder_layers]])

  def _refine(self, k, strings, image_shape, total):
    """A prefix decodes by one synthesis: layers 0..k decoded again, the
    image below not needed."""
    del total
    return self._decode_padded(strings[:k + 1], image_shape)

  def reconstructions(self, x):
    """The decoder's image for each prefix of the layers (tests)."""
    x_pad = pad_to_stride(x)
    y = self.base.analysis(x_pad, training=False)
    mean, _, _ = self.base.gaussians(y)
    out = []
    for k, symbols in enumerate(trits.nest(y - mean, self.steps)):
      x_hat = self.codecs[k].synthesis(symbols * self.steps[k] + mean)
      out.append(x_hat[:, :tf.shape(x)[1], :tf.shape(x)[2], :])
    return out

