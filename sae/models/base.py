"""The contract every model family fulfils: a layered model.

A family's model is a LayeredModel: a list of layer codecs built from one
LayerSpec table (sae.config), trained layer by layer, coded into one
stream chunk per layer, and decoded from any prefix of the chunks.  The
class holds what every family shares: the codecs and their weights ids
(which every stream chunk carries), which layers train, the traced coding
functions with their input signatures, band-by-band transforms for large
images, and the incremental decoding entry point.  A family implements the
abstract methods below, each with one meaning for every family:

  training   forward (one layer's loss), forward_decoded (on what the
             decoder has), forward_joint (every prefix's loss summed), and
             optionally start_layer, finish, layer_validations and
             lower_of_image;
  coding     _code_layers (image -> one string per layer),
             _decode_padded (the strings of a prefix -> the padded float
             image), _refine (one more layer on top of a prefix), and
             reconstructions (what a prefix decodes to, for tests).

CompressAI's CompressionModel is the anchor (Bégaint et al., "CompressAI",
arXiv 2011.03029).  The families are registered in sae.models.families;
adding one is a module with a subclass and a registry entry.
"""

import abc
import hashlib
from typing import Callable, NamedTuple, Optional, Sequence

import tensorflow as tf

from sae.config import LayerSpec, layer_name
from sae.entropy.layer import LayerCodec
from sae.entropy.meanscale import MeanScaleCodec
from sae.entropy.rung import RungCodec
from sae.models.transforms import (BAND_LATENT_PIXELS, analyze_in_bands,
                                   fits_one_band, latent_shape,
                                   synthesize_in_bands)

# The class of each layer kind (LayerSpec.kind; families: sae.models.families).
# A "conditional" layer (sae.entropy.conditional) needs the channels of the
# latent below it: its family builds it (LayeredModel.make_codec).
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


class LayeredModel(tf.keras.Model, metaclass=abc.ABCMeta):
  """Layer codecs from one LayerSpec table, coded and decoded by prefix."""

  def __init__(self, specs: Sequence[LayerSpec], metric: str = "mse"):
    super().__init__(name="sae")
    if not specs:
      raise ValueError("specs must hold at least one layer")
    self.specs = tuple(specs)
    self.metric = metric
    self.codecs = [self.make_codec(k, s) for k, s in enumerate(self.specs)]
    self._coding_ids = None  # "id0,id1,.." hex, fixed by prepare_for_coding
    # Coding runs the transforms on bands of this many latent pixels, so
    # memory stays bounded at any image size (read when first traced).
    self.band_latent_pixels = BAND_LATENT_PIXELS

  def make_codec(self, k, spec):
    """Layer ``k``'s codec, of its kind's class (a family whose layers need
    more than their spec, sae.models.conditional, builds its own)."""
    return CODECS[spec.kind](spec, name=layer_name(k))

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

  def layer_validations(self, k, forward) -> dict:
    """What layer ``k``'s training validates, by row label ("" for the
    layer's own line): ``forward``, the layer's training loss (batch,
    training -> CascadeOutput), unless the family validates more."""
    del k
    return {"": forward}

  def lower_of_image(self, k) -> Optional[Callable]:
    """A tf.function, float (H, W, 3) image -> what the layers below ``k``
    leave for it to code; None when layer ``k`` trains on the image alone
    (then training needs no reconstruction of the layers below)."""
    del k
    return None

  # Training.

  @abc.abstractmethod
  def forward(self, x, k, training=True, lower=None):
    """Layer ``k``'s loss on a batch ``x`` (float, 0..255, multiple of 16):
    a CascadeOutput.  ``lower``: lower_of_image's output on the batch's
    images, when the input pipeline computed it once."""

  @abc.abstractmethod
  def forward_decoded(self, x, k):
    """Layer ``k``'s loss on what the decoder has (hard-quantized)."""

  @abc.abstractmethod
  def forward_joint(self, x, layer_weights, training=True):
    """Every prefix's loss weighted by ``layer_weights`` and summed, for
    fine-tuning all layers at once (sae.train.train_joint)."""

  @abc.abstractmethod
  def reconstructions(self, x):
    """The decoder's float image of each prefix of a batch (tests)."""

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
    return fits_one_band(height, width, self.band_latent_pixels)

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

    Strings at and beyond ``num_layers`` are empty.
    """
    return self._code_layers(image, num_layers)

  # The same functions for images of one band (fits_one_band): a fresh
  # process traces and optimizes about half the graph, since the banded
  # branches are left out; the results are those of compress / decompress,
  # whose tf.cond takes the whole-image branch for these images.

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None, None, 3), tf.uint8), tf.TensorSpec((), tf.int32)])
  def compress_one_band(self, image, num_layers):
    """``compress`` of an image that fits_one_band."""
    with tf.control_dependencies([self._check_one_band(tf.shape(image)[:2])]):
      return self._code_layers(image, num_layers, one_band=True)

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None,), tf.string), tf.TensorSpec((2,), tf.int32)])
  def decompress_one_band(self, strings, image_shape):
    """``decompress`` of an image that fits_one_band."""
    with tf.control_dependencies([self._check_one_band(image_shape)]):
      return to_uint8(self._decode_layers(strings, image_shape,
                                          one_band=True))

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None,), tf.string), tf.TensorSpec((2,), tf.int32)])
  def decompress(self, strings, image_shape):
    """Strings of the first k layers and [H, W] -> uint8 (H, W, 3)."""
    return to_uint8(self.decompress_float(strings, image_shape))

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((None,), tf.string), tf.TensorSpec((2,), tf.int32)])
  def decompress_float(self, strings, image_shape):
    """As ``decompress`` but the unclipped float sum, cropped."""
    return self._decode_layers(strings, image_shape)

  @abc.abstractmethod
  def _code_layers(self, image, num_layers, one_band=False):
    """uint8 (H, W, 3) -> (one string per layer, empty from ``num_layers``
    on; [H, W])."""

  def _decode_layers(self, strings, image_shape, one_band=False):
    padded = self._decode_padded(strings, image_shape, one_band)
    return padded[0, :image_shape[0], :image_shape[1], :]

  @abc.abstractmethod
  def _decode_padded(self, strings, image_shape, one_band=False):
    """The strings of a prefix -> its float image, (1, H', W', 3) padded to
    the stride."""

  # Incremental decoding (sae.progressive): one layer at a time, on top of
  # what the layers below left.  The float image is kept padded to the
  # stride, and the result is decompress's pixel for pixel.

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec((), tf.int32), tf.TensorSpec((None,), tf.string),
      tf.TensorSpec((2,), tf.int32),
      tf.TensorSpec((1, None, None, 3), tf.float32)])
  def refine(self, k, strings, image_shape, total):
    """Adds layer ``k`` to the decoded layers below it.

    Args:
      k: layer index, 0 for the base.
      strings: the payloads of layers 0..k.
      image_shape: [H, W] of the image.
      total: refine's first output for layers 0..k-1 (zeros for k = 0):
        (1, H', W', 3), H' and W' the image size rounded up to the stride.

    Returns:
      (the padded float image of layers 0..k, the uint8 (H, W, 3) image).
    """
    # switch_case runs its last branch for an index out of range.
    check = tf.debugging.assert_less(k, self.num_layers,
                                     message="no such layer")
    with tf.control_dependencies([check]):
      total = self._refine(k, strings, image_shape, total)
    return total, to_uint8(total[0, :image_shape[0], :image_shape[1], :])

  @abc.abstractmethod
  def _refine(self, k, strings, image_shape, total):
    """refine's padded float image (``k`` a tensor below num_layers)."""


def to_uint8(x):
  """Rounds and clips a 0..255 float image to uint8."""
  return tf.saturate_cast(tf.round(x), tf.uint8)
