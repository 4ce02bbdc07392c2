"""Decoding a stream as its bytes arrive: an image each time a layer completes.

    decoder = ProgressiveDecoder(model)
    for chunk in download:                 # bytes, in any pieces
      for step in decoder.feed(chunk):     # zero or more completed layers
        show(step.image)                   # uint8 (H, W, 3) of step.layers
    decoder.close()                        # refuses a stream that ended early

Each layer is decoded once, on top of the float sum the layers below it left
(``LayeredModel.refine``), so decoding 1, then 2, .., k layers costs
about what one k-layer decode costs, and the image after k layers is the one
``codec.decode(model, data, k)`` gives, pixel for pixel.

Each family decides what "on top of" means (its ``_refine``): a cascade
adds the new layer's reconstruction to the sum; a nested model
(sae.models.nested), whose prefix decodes by one synthesis, decodes the
base's payload and the trits below again, then runs the new layer's
synthesis.

A layer of a version-1 (legacy) stream is turned into version 2 by
sae.stream.legacy first, under its deadline.

Nothing is decoded before a chunk is complete and its checksum verified;
consumed bytes are dropped, so memory holds one chunk and the float sum.
"""

from typing import NamedTuple

import numpy as np
import tensorflow as tf

from sae import codec
from sae.errors import InputError
from sae.models.transforms import padded_size
from sae.stream import bitstream, legacy


class Step(NamedTuple):
  """The image after one more layer completed."""

  layers: int            # layers decoded, 1 for the base alone
  declared_layers: int   # layers the header announces
  image: np.ndarray      # uint8 (H, W, 3)
  bytes: int             # size of the k-layer file (bitstream.truncate)


class ProgressiveDecoder:
  """Fed a stream's bytes in pieces; decodes each layer once it is complete.

  Args:
    model: a LayeredModel prepared for coding.
    max_pixels: refuse headers that declare more pixels (default: anything
      the format allows).

  Once ``feed`` has raised, the decoder is spent: later calls raise again.
  """

  def __init__(self, model, max_pixels=None):
    self._model = model
    self._max_pixels = max_pixels
    self._pending = bytearray()   # bytes not yet part of a complete chunk
    self._header = None
    self._payloads = []
    self._weights_ids = []
    self._bytes = 0               # of the complete layers, header included
    self._total = None            # padded float sum of the decoded layers
    self._error = None
    self.image = None             # the latest image, None before the base

  @property
  def header(self):
    """bitstream.Header once its bytes arrived, else None."""
    return self._header

  @property
  def layers(self) -> int:
    """Layers decoded so far."""
    return len(self._payloads)

  @property
  def done(self) -> bool:
    """Every layer the header declares is decoded."""
    return self._header is not None and self.layers == self._header.layers

  def feed(self, data: bytes) -> list:
    """Adds bytes -> a Step per layer they complete (possibly none).

    Raises:
      InputError: not a stream, a corrupted layer, other weights, too many
        pixels, bytes after the last layer; legacy.DecodeTimeout for a
        hostile version-1 layer.
    """
    if self._error is not None:
      raise InputError(self._error)
    self._pending += data
    try:
      return self._advance()
    except InputError as e:
      self._error = str(e)
      raise

  def close(self) -> int:
    """Ends the stream -> the number of layers decoded.

    Raises:
      InputError: the stream ended before its last declared layer (its
        complete layers were decoded all the same), or feed had failed.
    """
    if self._error is not None:
      raise InputError(self._error)
    if self._header is None:
      bitstream.read_header(bytes(self._pending))  # raises: says why
    if not self.done:
      raise bitstream.StreamError(
          f"stream is cut in layer {self.layers + 1} of {self._header.layers}")
    return self.layers

  def _advance(self) -> list:
    if self._header is None:
      if len(self._pending) < bitstream.HEADER_BYTES:
        if not bitstream.MAGIC.startswith(bytes(self._pending[:4])):
          raise bitstream.StreamError("not an SAE stream (bad magic)")
        return []
      self._start(bitstream.read_header(self._pending))
    steps = []
    header = self._header
    while self.layers < header.layers:
      chunk = bitstream.read_chunk(self._pending, 0, header, self.layers)
      if chunk is None:
        break
      payload, weights_id, end = chunk
      del self._pending[:end]
      steps.append(self._decode_layer(payload, weights_id, end))
    if self.done and self._pending:
      raise bitstream.StreamError(
          f"{len(self._pending)} unexpected bytes after the last layer")
    return steps

  def _start(self, header) -> None:
    bitstream.check_pixels(header.height, header.width, self._max_pixels)
    self._header = header
    self._bytes = bitstream.HEADER_BYTES
    del self._pending[:bitstream.HEADER_BYTES]

  def _decode_layer(self, payload, weights_id, chunk_bytes) -> Step:
    k, header = self.layers, self._header
    if k >= self._model.num_layers:
      raise InputError(f"stream has {header.layers} layers, the weights only "
                       f"{self._model.num_layers}")
    codec.check_ids(self._model, self._weights_ids + [weights_id])
    payload = legacy.upgrade_layer(self._model, header, k, payload)
    self._payloads.append(payload)
    self._weights_ids.append(weights_id)
    self._bytes += chunk_bytes
    self.image = self._refine(k)
    return Step(k + 1, header.layers, self.image, self._bytes)

  def _refine(self, k) -> np.ndarray:
    header = self._header
    if self._total is None:
      self._total = tf.zeros((1, padded_size(header.height),
                              padded_size(header.width), 3), tf.float32)
    try:
      self._total, image = self._model.refine(
          tf.constant(k, tf.int32), tf.constant(self._payloads, tf.string),
          tf.constant([header.height, header.width], tf.int32), self._total)
    except tf.errors.InvalidArgumentError:
      raise InputError(f"layer {k + 1} does not decode with these "
                       "weights") from None
    return image.numpy()


def decode_progressively(model, pieces, max_pixels=None):
  """Yields a Step each time a layer of the stream in ``pieces`` (an
  iterable of bytes) completes; raises InputError at the end if the stream
  was cut (after yielding its complete layers)."""
  decoder = ProgressiveDecoder(model, max_pixels)
  for piece in pieces:
    yield from decoder.feed(piece)
  decoder.close()
