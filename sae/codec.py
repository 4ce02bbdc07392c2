"""Image <-> layered stream with a loaded model: what the CLI and evaluation use.

Decoding is bounded for every input: a stream's payloads go through
sae.entropy.rangecode, whose decoder reads a fixed number of symbols.
Streams of version 1 (written before it) are turned into version 2 by
sae.stream.legacy first, the one module that reads them.
"""

import json
import os

import numpy as np
import tensorflow as tf

from sae.config import layer_name
from sae.errors import InputError
from sae.stream import bitstream, legacy


def encode(model, image: np.ndarray, num_layers: int) -> bytes:
  """uint8 HxWx3 -> stream with the first ``num_layers`` layers."""
  if not 1 <= num_layers <= model.num_layers:
    raise InputError(f"--layers must be in 1..{model.num_layers}, "
                     f"got {num_layers}")
  height, width = image.shape[:2]
  bitstream.check_size(height, width)
  compress = (model.compress_one_band if model.fits_one_band(height, width)
              else model.compress)
  try:
    strings, _ = compress(tf.constant(image, tf.uint8),
                          tf.constant(num_layers, tf.int32))
  except tf.errors.InvalidArgumentError as e:
    raise InputError(f"cannot code this image: {e.message.splitlines()[0]}") from None
  payloads = [s for s in strings.numpy()[:num_layers]]
  return bitstream.pack(height, width, payloads,
                        model.weights_ids()[:num_layers])


def decode(model, data: bytes, num_layers=None, max_pixels=None) -> np.ndarray:
  """Stream -> uint8 HxWx3 from its first ``num_layers`` layers (default all).

  Args:
    max_pixels: refuse streams that declare more pixels (default: any size
      the format allows, bitstream.MAX_SIDE squared).

  Raises:
    InputError: bad stream, other weights, ``num_layers`` out of range, too
      many pixels; legacy.DecodeTimeout (an InputError) for a version-1
      stream that missed its deadline.
  """
  stream = bitstream.unpack(data)
  bitstream.check_pixels(stream.height, stream.width, max_pixels)
  if num_layers is None:
    num_layers = stream.num_layers
  bitstream.check_layers(num_layers, stream.num_layers)
  return decode_stream(model, stream.prefix(num_layers))


def decode_stream(model, stream: bitstream.Stream,
                  weights_root=None) -> np.ndarray:
  """A parsed stream (sae.stream.bitstream.unpack, its pixels and layer
  count checked by the caller) -> uint8 HxWx3 of all its layers: what
  decode does after parsing, for callers that parsed the stream already.
  ``weights_root``: the weights folder, named in the error when the
  stream's ids are not the model's.

  Raises:
    InputError: more layers than the weights, other weights, a payload
      that does not decode; legacy.DecodeTimeout.
  """
  if stream.num_layers > model.num_layers:
    raise InputError(f"stream has {stream.num_layers} layers, the weights "
                     f"only {model.num_layers}")
  check_ids(model, stream.weights_ids, weights_root)
  stream = legacy.upgrade(model, stream)
  strings = tf.constant(list(stream.payloads), tf.string)
  shape = tf.constant([stream.height, stream.width], tf.int32)
  decompress = (model.decompress_one_band
                if model.fits_one_band(stream.height, stream.width)
                else model.decompress)
  try:
    image = decompress(strings, shape)
  except tf.errors.InvalidArgumentError:
    raise InputError("stream payload does not decode with these weights") from None
  return image.numpy()


def lean_startup() -> None:
  """Turns off TensorFlow's graph optimizer (Grappler) for this process.

  Grappler rewrites each traced graph at its first call: about 0.3 s of a
  fresh ``decompress`` of a 4-layer Kodak stream, for no measurable gain
  warm (benchmarks/cold_start.py; docs/performance.md). Its rewrites change
  no byte: with and without it, the 24 Kodak images give the same streams
  and the same decoded pixels with weights/mse and weights/ms-ssim.
  One-shot commands call this; training keeps the optimizer, whose fusions
  it uses every step.
  """
  tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


def check_ids(model, expect_ids, root=None) -> None:
  """The one check that a stream's layers were coded with these weights.

  Raises:
    InputError: naming the first layer that differs (base, el1, ...) and
      the weights id the stream needs, with the shipped folder that has it.
  """
  ids = model.weights_ids()
  for k, want in enumerate(expect_ids):
    if want != ids[k]:
      top = len(expect_ids) - 1
      need = expect_ids[-1].hex()
      where = f"{str(root)!r}" if root is not None else "these weights"
      found = _shipped_weights_with(top, need)
      hint = (f"; {found} has them: pass --weights {found}" if found else
              "; a weights folder's manifest.json lists its ids")
      raise InputError(
          f"the stream's {layer_name(k)} was coded with weights {want.hex()}, "
          f"not with {where} ({ids[k].hex()}): it needs weights whose "
          f"{layer_name(top)} has id {need}{hint}")


def _shipped_weights_with(k, weights_id):
  """The shipped weights folder whose layer k has ``weights_id``, or None."""
  from sae import checkpoints
  shipped = checkpoints.DEFAULT_WEIGHTS.parent
  # weights/legacy/ keeps folders whose streams predate a re-shipping (the
  # float hyper-synthesis of sae-nested 1ba8bfab, docs/portable-streams.md).
  for manifest in (sorted(shipped.glob("*/manifest.json")) +
                   sorted(shipped.glob("legacy/*/manifest.json"))):
    try:
      layers = json.loads(manifest.read_text())["layers"]
      if len(layers) > k and layers[k]["weights_id"] == weights_id:
        return os.path.relpath(manifest.parent)
    except (OSError, ValueError, KeyError, TypeError):
      continue
  return None
