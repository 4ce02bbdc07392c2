"""Image <-> layered stream with a loaded model: what the CLI and evaluation use."""

import numpy as np
import tensorflow as tf

from sae import bitstream
from sae.errors import InputError


def encode(model, image: np.ndarray, num_layers: int) -> bytes:
  """uint8 HxWx3 -> stream with the first ``num_layers`` layers."""
  if not 1 <= num_layers <= model.num_layers:
    raise InputError(f"--layers must be in 1..{model.num_layers}, "
                     f"got {num_layers}")
  height, width = image.shape[:2]
  bitstream.check_size(height, width)
  strings, _ = model.compress(tf.constant(image, tf.uint8),
                              tf.constant(num_layers, tf.int32))
  payloads = [s for s in strings.numpy()[:num_layers]]
  return bitstream.pack(height, width, payloads,
                        model.weights_ids()[:num_layers])


def decode(model, data: bytes, num_layers=None) -> np.ndarray:
  """Stream -> uint8 HxWx3 from its first ``num_layers`` layers (default all).

  Raises:
    InputError: bad stream, other weights, or ``num_layers`` out of range.
  """
  stream = bitstream.unpack(data)
  if num_layers is None:
    num_layers = stream.num_layers
  if not 1 <= num_layers <= stream.num_layers:
    raise InputError(f"--layers must be in 1..{stream.num_layers} for this "
                     f"stream, got {num_layers}")
  if num_layers > model.num_layers:
    raise InputError(f"stream has {num_layers} layers, the weights only "
                     f"{model.num_layers}")
  ids = model.weights_ids()
  for k in range(num_layers):
    if stream.weights_ids[k] != ids[k]:
      raise InputError(
          f"layer {k + 1} was coded with weights {stream.weights_ids[k].hex()}, "
          f"not with these ({ids[k].hex()})")
  strings = tf.constant(list(stream.payloads[:num_layers]), tf.string)
  try:
    image = model.decompress(strings, tf.constant(
        [stream.height, stream.width], tf.int32))
  except tf.errors.InvalidArgumentError:
    raise InputError("stream payload does not decode with these weights") from None
  return image.numpy()
