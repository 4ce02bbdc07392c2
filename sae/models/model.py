"""The scalable auto-encoder: a cascade of layers coding residuals.

Jia, Liu, Wang, Ma, Gao, "Layered Image Compression using Scalable
Auto-encoder", IEEE MIPR 2019 (arXiv 1904.00553).

    x ──► [base] ──► x̂0 ───────────────┐
    │                                   ▼
    └─(-)► r1 = x - x̂0 ──► [el1] ──► x̂1 ──► (+) ...
                                        ▼
          r_k = x - (x̂0 + .. + x̂_{k-1}) ──► [el_k] ──► x̂_k

Decoding the first k chunks and summing their reconstructions gives the
k-layer image.  Layers below the one being trained are frozen and run in
inference mode (hard-quantized latents), so an enhancement layer trains on the
exact residual it will see when coding.
"""

import tensorflow as tf

from sae.models import losses
from sae.models.base import CascadeOutput, LayeredModel
from sae.models.transforms import latent_shape, pad_to_stride


class ScalableAutoEncoder(LayeredModel):
  """The paper's cascade: each layer a LayerCodec coding what the layers
  below left."""

  def lower_reconstruction(self, x, k):
    """Sum of the inference-mode reconstructions of layers 0..k-1 (no grads)."""
    total = tf.zeros_like(x)
    for codec in self.codecs[:k]:
      y = codec.analysis(x - total, training=False)
      total += codec.synthesis(codec.quantize(y), training=False)
    return tf.stop_gradient(total)

  def forward(self, x, k, training=True, lower=None):
    """Loss of layer ``k`` on a batch ``x`` (float, 0..255, multiple of 16).

    ``lower``: the layers below's reconstruction, when precomputed on whole
    images; computed on ``x`` otherwise.
    """
    if lower is None:
      lower = self.lower_reconstruction(x, k)
    out = self.codecs[k](x - lower, training=training)
    total = lower + out.x_hat
    num_pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    bpp = out.bits / num_pixels
    mse = tf.reduce_mean(tf.math.squared_difference(x, total), axis=(1, 2, 3))
    loss = losses.rd_loss(bpp, x, total, self.specs[k].lmbda, self.metric)
    return CascadeOutput(loss, bpp, mse, total)

  def forward_decoded(self, x, k):
    """Layer ``k``'s loss on what the decoder has: its own rate and the
    image of k + 1 layers, quantized as coded (the joint phase validates
    each layer with it)."""
    return self.forward(x, k, training=False)

  def forward_joint(self, x, layer_weights, training=True):
    """Summed loss of every layer, for fine-tuning them jointly:

        sum_k w_k (bpp_k + lmbda_k D(x, x_hat_0 + ... + x_hat_k))

    Each term is the loss layer k was trained with alone; summed, the lower
    layers also learn to leave residuals the layers above code well.  When
    training, rates see noise while reconstructions (and so the residuals
    passed up) are rounded, as in decoding (LayerCodec.call's ``rounded``).
    Returns the summed loss, the total bpp and the top layer's MSE.
    """
    total = tf.zeros_like(x)
    num_pixels = tf.cast(tf.shape(x)[1] * tf.shape(x)[2], tf.float32)
    loss = bits = 0.0
    for codec, spec, weight in zip(self.codecs, self.specs, layer_weights):
      out = codec(x - total, training=training, rounded=True)
      total += out.x_hat
      loss += weight * losses.rd_loss(out.bits / num_pixels, x, total,
                                      spec.lmbda, self.metric)
      bits += out.bits
    mse = tf.reduce_mean(tf.math.squared_difference(x, total), axis=(1, 2, 3))
    return CascadeOutput(loss, bits / num_pixels, mse, total)

  def lower_of_image(self, k):
    """A tf.function: float (H, W, 3) image -> reconstruction by layers < k."""

    @tf.function(autograph=False,
                 input_signature=[tf.TensorSpec((None, None, 3), tf.float32)])
    def lower(image):
      total = self.lower_reconstruction(pad_to_stride(image[None]), k)
      return total[0, :tf.shape(image)[0], :tf.shape(image)[1]]

    return lower

  def _decode_padded(self, strings, image_shape, one_band=False):
    hw = latent_shape(image_shape)
    n = tf.shape(strings)[0]
    total = tf.zeros(tf.concat([[1], hw * 16, [3]], 0))
    for k, codec in enumerate(self.codecs):

      def decode(codec=codec, total=total, k=k):
        y_hat = codec.decompress_latent(strings[k:k + 1], hw)
        return total + self._synthesize(codec, y_hat, one_band)

      total = tf.cond(k < n, decode, lambda total=total: total)
    return total

  def reconstructions(self, x):
    """Cumulative inference reconstructions of a float batch, one per layer.

    Used by tests: decoding a k-layer prefix must equal entry k-1 (cropped).
    """
    x_pad = pad_to_stride(x)
    total = tf.zeros_like(x_pad)
    out = []
    for codec in self.codecs:
      y = codec.analysis(x_pad - total, training=False)
      total += codec.synthesis(codec.quantize(y), training=False)
      out.append(total[:, :tf.shape(x)[1], :tf.shape(x)[2], :])
    return out

  def _code_layers(self, image, num_layers, one_band=False):
    x = pad_to_stride(tf.cast(image, tf.float32)[None])
    total = tf.zeros_like(x)
    strings = []
    for k, codec in enumerate(self.codecs):

      def code(codec=codec, total=total, k=k):
        y = self._analyze(codec, x - total, one_band)
        string, y_hat = codec.encode_latent(y)
        # The layers above code what this one leaves; after the last coded
        # layer nothing needs the reconstruction.
        above = tf.cond(
            k + 1 < num_layers,
            lambda: total + self._synthesize(codec, y_hat, one_band),
            lambda: total)
        return string[0], above

      string, total = tf.cond(k < num_layers, code,
                              lambda total=total: (tf.constant(""), total))
      strings.append(string)
    return tf.stack(strings), tf.shape(image)[:2]

  def _refine(self, k, strings, image_shape, total):
    # The same additions in the same order as _decode_padded: the same
    # pixels.
    hw = latent_shape(image_shape)
    string = strings[k:k + 1]

    def add_layer(codec):
      return lambda: total + self._synthesize(
          codec, codec.decompress_latent(string, hw))

    return tf.switch_case(k, [add_layer(c) for c in self.codecs])
