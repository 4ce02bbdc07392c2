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

import hashlib
from typing import Callable, NamedTuple, Sequence

import tensorflow as tf

from sae.models import losses
from sae.config import LayerSpec, layer_name
from sae.entropy.layer import LayerCodec
from sae.entropy.meanscale import MeanScaleCodec
from sae.entropy.rung import RungCodec
from sae.models.transforms import (BAND_LATENT_PIXELS, TOTAL_STRIDE, analyze_in_bands,
                            latent_shape, pad_to_stride, synthesize_in_bands)


# The class of each layer kind (LayerSpec.kind; families: sae.models.families).
CODECS = {"factorized": LayerCodec, "meanscale": MeanScaleCodec,
          "nested": RungCodec}


class CascadeOutput(NamedTuple):
  """Training forward pass of the active layer."""

  loss: tf.Tensor
  bpp: tf.Tensor          # estimated bits / pixel of the active layer
  mse: tf.Tensor          # of the total (cumulative) reconstruction
  total: tf.Tensor        # cumulative reconstruction, unclipped


class Finish(NamedTuple):
  """The last part of a layer's training when it trains less than the
  layer: from ``fraction`` of the steps before the end, ``forward`` (batch
  -> CascadeOutput) on ``variables`` only, once ``start()`` has run."""
  fraction: float
  forward: Callable
  variables: list
  start: Callable


class ScalableAutoEncoder(tf.keras.Model):
  """A list of LayerCodecs built from one LayerSpec table."""

  def __init__(self, specs: Sequence[LayerSpec], metric: str = "mse"):
    super().__init__(name="sae")
    if not specs:
      raise ValueError("specs must hold at least one layer")
    self.specs = tuple(specs)
    self.metric = metric
    self.codecs = [CODECS[s.kind](s, name=layer_name(k))
                   for k, s in enumerate(self.specs)]
    self._coding_ids = None  # "id0,id1,.." hex, fixed by prepare_for_coding
    # Coding runs the transforms on bands of this many latent pixels, so
    # memory stays bounded at any image size (read when first traced).
    self.band_latent_pixels = BAND_LATENT_PIXELS

  codes_residuals = True  # a layer trains on what the layers below left
  decodes_incrementally = True  # refine() adds a layer to the sum below

  def start_layer(self, k):
    """Prepares layer ``k`` before its training starts afresh (nothing in
    a cascade; sae.models.nested starts a layer from the synthesis below)."""

  def finish(self, k):
    """Layer ``k``'s training's last part, a Finish, or None when the whole
    run trains the whole layer (a cascade; see sae.models.nested)."""
    del k
    return None

  @property
  def num_layers(self) -> int:
    return len(self.codecs)

  @property
  def stream_versions(self) -> tuple:
    """Stream versions that can hold this model's layers: version 1 (tfc's
    coder) predates the mean-scale layer."""
    if all(s.kind == "factorized" for s in self.specs):
      return (1, 2)
    return (2,)

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

  def set_trainable_layer(self, k):
    """Freezes every layer but ``k``; returns the trainable variables."""
    return self.set_trainable_layers([k])

  def set_trainable_layers(self, ks):
    """Freezes every layer not in ``ks``; returns the trainable variables."""
    variables = []
    for j, codec in enumerate(self.codecs):
      codec.trainable = j in ks
      if j in ks:
        codec.freeze_transforms(False)  # its kernels follow its weights
        expected = len(codec.weight_variables)
        if len(codec.trainable_variables) != expected:
          raise RuntimeError(
              f"expected {expected} trainable variables in layer {j}, found "
              f"{len(codec.trainable_variables)}")
        variables += codec.trainable_variables
    if len(self.trainable_variables) != len(variables):
      raise RuntimeError(f"expected {len(variables)} trainable variables, "
                         f"found {len(self.trainable_variables)}")
    return variables

  def weights_ids(self) -> list:
    """4-byte identifier per layer, chained: id_k covers layers 0..k.

    Stored in every stream chunk so a decoder refuses chunks coded by other
    weights, while a retrained upper layer leaves lower chunks decodable.
    Once the model is prepared for coding, the ids also cover the range
    coding tables: tables rebuilt on a machine whose floating point differs
    by one bit would otherwise decode garbage without a word.
    """
    if self._coding_ids is not None:
      return [bytes.fromhex(i) for i in self._coding_ids.split(",")]
    ids, prev = [], b""
    for codec in self.codecs:
      digest = bytes.fromhex(codec.digest() + codec.tables_digest())
      prev = hashlib.sha256(prev + digest).digest()[:4]
      ids.append(prev)
    return ids

  def prepare_for_coding(self, tables=None):
    """Fixes the coding tables and, with them, the weights ids.

    Args:
      tables: optional stored tables, one dict (or None) per layer.

    The weights must not change afterwards: the ids are cached (hashing every
    variable per image would cost milliseconds per call).
    """
    tables = tables or [None] * self.num_layers
    for codec, table in zip(self.codecs, tables):
      codec.prepare_for_coding(table)
    self._coding_ids = None
    self._coding_ids = ",".join(i.hex() for i in self.weights_ids())

  # Coding.  Both functions take the number of layers as a tensor so one
  # traced graph serves every prefix; the Python loop runs over layers only.
  # Large images go through the transforms band by band (transforms.py).
  # No autograph: the control flow is explicit (tf.cond, tf.while_loop), and
  # converting every Keras call took most of a cold command's tracing.

  def _analyze(self, codec, x, one_band=False):
    if one_band:
      return codec.analysis(x, training=False)
    return analyze_in_bands(codec.analysis, x, self.band_latent_pixels)

  def _synthesize(self, codec, y_hat, one_band=False):
    if one_band:
      return codec.synthesis(y_hat, training=False)
    return synthesize_in_bands(codec.synthesis, y_hat, self.band_latent_pixels)

  def fits_one_band(self, height: int, width: int) -> bool:
    """True when the transforms code an image this size in one band, as
    ``compress_one_band`` and ``decompress_one_band`` do."""
    h, w = (-(-side // TOTAL_STRIDE) for side in (height, width))
    return max(self.band_latent_pixels // max(w, 1), 1) >= h

  def _check_one_band(self, image_shape):
    """An op that refuses (when run) an image of several bands."""
    hw = latent_shape(image_shape)
    rows = tf.maximum(self.band_latent_pixels // tf.maximum(hw[1], 1), 1)
    return tf.debugging.assert_greater_equal(
        rows, hw[0], message="image too large for one band")

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None, None, 3), tf.uint8), tf.TensorSpec((), tf.int32)])
  def compress(self, image, num_layers):
    """uint8 (H, W, 3) -> (strings of shape (num_layers_total,), [H, W]).

    Strings at and beyond ``num_layers`` are empty.  Stream version 2.
    """
    return self._code_layers(image, num_layers, version=2)

  # The same functions for images of one band (fits_one_band): a fresh
  # process traces and optimizes about half the graph, since the banded
  # branches are left out; the results are those of compress / decompress,
  # whose tf.cond takes the whole-image branch for these images.

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None, None, 3), tf.uint8), tf.TensorSpec((), tf.int32)])
  def compress_one_band(self, image, num_layers):
    """``compress`` of an image that fits_one_band."""
    with tf.control_dependencies([self._check_one_band(tf.shape(image)[:2])]):
      return self._code_layers(image, num_layers, version=2, one_band=True)

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None,), tf.string), tf.TensorSpec((2,), tf.int32)])
  def decompress_one_band(self, strings, image_shape):
    """``decompress`` of an image that fits_one_band."""
    with tf.control_dependencies([self._check_one_band(image_shape)]):
      return to_uint8(self._decode_layers(strings, image_shape, version=2,
                                          one_band=True))

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None, None, 3), tf.uint8), tf.TensorSpec((), tf.int32)])
  def compress_v1(self, image, num_layers):
    """``compress`` in stream version 1, for tests of legacy streams."""
    if 1 not in self.stream_versions:  # traced all the same (SavedModels)
      with tf.control_dependencies([_refuse_version_1(num_layers)]):
        return tf.fill([self.num_layers], ""), tf.shape(image)[:2]
    return self._code_layers(image, num_layers, version=1)

  def _code_layers(self, image, num_layers, version, one_band=False):
    x = pad_to_stride(tf.cast(image, tf.float32)[None])
    total = tf.zeros_like(x)
    strings = []
    for k, codec in enumerate(self.codecs):

      def code(codec=codec, total=total, k=k):
        y = self._analyze(codec, x - total, one_band)
        string, y_hat = codec.encode_latent(y, version)
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

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None,), tf.string), tf.TensorSpec((2,), tf.int32)])
  def decompress(self, strings, image_shape):
    """Strings of the first k layers and [H, W] -> uint8 (H, W, 3)."""
    return to_uint8(self.decompress_float(strings, image_shape))

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None,), tf.string), tf.TensorSpec((2,), tf.int32)])
  def decompress_float(self, strings, image_shape):
    """As ``decompress`` but the unclipped float sum, cropped."""
    return self._decode_layers(strings, image_shape, version=2)

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None,), tf.string), tf.TensorSpec((2,), tf.int32)])
  def decompress_v1(self, strings, image_shape):
    """``decompress`` for stream version 1, whose range decoder has no bound
    on hostile input: sae.codec runs it under a deadline."""
    if 1 not in self.stream_versions:
      with tf.control_dependencies([_refuse_version_1(tf.size(strings))]):
        return tf.zeros(tf.concat([image_shape, [3]], 0), tf.uint8)
    return to_uint8(self._decode_layers(strings, image_shape, version=1))

  def _decode_layers(self, strings, image_shape, version, one_band=False):
    hw = latent_shape(image_shape)
    n = tf.shape(strings)[0]
    total = tf.zeros(tf.concat([[1], hw * 16, [3]], 0))
    for k, codec in enumerate(self.codecs):
      decode_latent = (codec.decompress_latent if version == 2 else
                       codec.decompress_latent_v1)

      def decode(decode_latent=decode_latent, codec=codec, total=total, k=k):
        y_hat = decode_latent(strings[k:k + 1], hw)
        return total + self._synthesize(codec, y_hat, one_band)

      total = tf.cond(k < n, decode, lambda total=total: total)
    return total[0, :image_shape[0], :image_shape[1], :]

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

  # Incremental decoding (sae.progressive): one layer at a time, on top of
  # the sum the layers below left, so that decoding 1, then 2, .., k layers
  # costs what one k-layer decode costs.  The sum is kept padded to the
  # stride; the same additions in the same order as decompress_float give
  # the same pixels.

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((), tf.int32), tf.TensorSpec((1,), tf.string),
      tf.TensorSpec((2,), tf.int32),
      tf.TensorSpec((1, None, None, 3), tf.float32)])
  def refine(self, k, string, image_shape, total):
    """Adds layer ``k`` (its string, stream version 2) to ``total``.

    Args:
      k: layer index, 0 for the base.
      string: the layer's payload.
      image_shape: [H, W] of the image.
      total: (1, H', W', 3) padded sum of layers 0..k-1 (zeros for k = 0),
        H' and W' the image size rounded up to the stride (16).

    Returns:
      (the padded sum of layers 0..k, the uint8 (H, W, 3) image they give).
    """
    hw = latent_shape(image_shape)

    def add_layer(codec):
      return lambda: total + self._synthesize(
          codec, codec.decompress_latent(string, hw))

    # switch_case runs its last branch for an index out of range.
    check = tf.debugging.assert_less(k, self.num_layers,
                                     message="no such layer")
    with tf.control_dependencies([check]):
      total = tf.switch_case(k, [add_layer(c) for c in self.codecs])
    return total, to_uint8(total[0, :image_shape[0], :image_shape[1], :])


def _refuse_version_1(value):
  """An op that fails when run (never when traced: a SavedModel traces
  every function): stream version 1 predates the mean-scale layers.
  ``value``, any int32 scalar of the call, keeps the check off the
  static path."""
  return tf.debugging.Assert(
      tf.equal(value, -1),
      ["stream version 1 cannot hold this model family's layers"])


def to_uint8(x):
  """Rounds and clips a 0..255 float image to uint8."""
  return tf.saturate_cast(tf.round(x), tf.uint8)
