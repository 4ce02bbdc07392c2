"""Image <-> layered stream with a loaded model: what the CLI and evaluation use.

Decoding is bounded for every input.  Version 2 streams (what ``encode``
writes) go through sae.entropy.rangecode, whose decoder reads a fixed number of
symbols.  Version 1 streams (written before it) hold tensorflow-compression's
overflow escapes, whose decoder can spin forever on a hostile payload; they
are decoded on a worker thread under a deadline that scales with the pixels
the header declares (LEGACY_SECONDS), and a stream that misses it is refused
with DecodeTimeout.  A C++ op cannot be stopped, so after DecodeTimeout the
thread may go on spinning: a command exits, a server recycles its worker
(docs/untrusted-streams.md).
"""

import json
import os
import threading
import time

import numpy as np
import tensorflow as tf

from sae.stream import bitstream
from sae.config import layer_name
from sae.errors import InputError

# Deadline of a version-1 decode: a fixed part, plus a part per declared
# pixel and layer, both far above what a genuine stream takes (a 4-layer
# Kodak image decodes in about 0.1 s on 2 cores, 0.06 µs per pixel-layer).
LEGACY_SECONDS = (5.0, 5e-7)


class DecodeTimeout(InputError):
  """A version-1 stream did not decode within its deadline.

  The decoding thread may still be running: the process should exit (or be
  recycled) rather than decode more streams.
  """


def encode(model, image: np.ndarray, num_layers: int,
           version: int = bitstream.VERSION) -> bytes:
  """uint8 HxWx3 -> stream with the first ``num_layers`` layers.

  ``version`` 1 writes the legacy format, for tests and the fuzzer only.
  """
  if not 1 <= num_layers <= model.num_layers:
    raise InputError(f"--layers must be in 1..{model.num_layers}, "
                     f"got {num_layers}")
  if version not in model.stream_versions:
    raise InputError(f"this model family codes stream version "
                     f"{max(model.stream_versions)} only, not {version}")
  height, width = image.shape[:2]
  bitstream.check_size(height, width)
  try:
    if version == 1:
      compress = model.compress_v1
    elif model.fits_one_band(height, width):
      compress = model.compress_one_band
    else:
      compress = model.compress
    strings, _ = compress(tf.constant(image, tf.uint8),
                          tf.constant(num_layers, tf.int32))
  except tf.errors.InvalidArgumentError as e:
    raise InputError(f"cannot code this image: {e.message.splitlines()[0]}") from None
  payloads = [s for s in strings.numpy()[:num_layers]]
  return bitstream.pack(height, width, payloads,
                        model.weights_ids()[:num_layers], version)


def decode(model, data: bytes, num_layers=None, max_pixels=None) -> np.ndarray:
  """Stream -> uint8 HxWx3 from its first ``num_layers`` layers (default all).

  Args:
    max_pixels: refuse streams that declare more pixels (default: any size
      the format allows, bitstream.MAX_SIDE squared).

  Raises:
    InputError: bad stream, other weights, ``num_layers`` out of range, too
      many pixels; DecodeTimeout (an InputError) for a version-1 stream that
      missed its deadline.
  """
  stream = bitstream.unpack(data)
  bitstream.check_pixels(stream.height, stream.width, max_pixels)
  if num_layers is None:
    num_layers = stream.num_layers
  bitstream.check_layers(num_layers, stream.num_layers)
  if num_layers > model.num_layers:
    raise InputError(f"stream has {num_layers} layers, the weights only "
                     f"{model.num_layers}")
  check_ids(model, stream.weights_ids[:num_layers])
  if stream.version not in model.stream_versions:
    raise InputError(f"stream version {stream.version} cannot hold this "
                     "model family's layers")
  strings = tf.constant(list(stream.payloads[:num_layers]), tf.string)
  shape = tf.constant([stream.height, stream.width], tf.int32)
  try:
    if stream.version == 1:
      seconds = legacy_deadline(stream.height, stream.width, num_layers)
      # Traced before the clock starts: tracing a fresh process's first
      # call takes seconds that say nothing about the stream.
      function = model.decompress_v1.get_concrete_function()
      image = _with_deadline(function, (strings, shape), seconds)
    elif model.fits_one_band(stream.height, stream.width):
      image = model.decompress_one_band(strings, shape)
    else:
      image = model.decompress(strings, shape)
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


def legacy_deadline(height: int, width: int, num_layers: int) -> float:
  """Seconds a version-1 stream of that size may take to decode."""
  fixed, per_pixel = LEGACY_SECONDS
  return fixed + per_pixel * height * width * num_layers


def _with_deadline(function, args, seconds):
  """``function(*args)`` on a daemon thread; DecodeTimeout after ``seconds``.

  The deadline counts both wall time and this process's CPU time: a decode
  that only waits for a busy machine's cores is not refused, one that spins
  is, after ``seconds`` of CPU (or ten times that of wall time, starved).
  """
  outcome = {}

  def run():
    try:
      outcome["value"] = function(*args)
    except BaseException as e:  # noqa: BLE001  re-raised on the caller's thread
      outcome["error"] = e

  thread = threading.Thread(target=run, name="sae-legacy-decode", daemon=True)
  wall, cpu = time.monotonic(), time.process_time()
  thread.start()
  while True:
    thread.join(0.05)
    if not thread.is_alive():
      break
    waited = time.monotonic() - wall
    if (waited > seconds and time.process_time() - cpu > seconds or
        waited > 10 * seconds):
      raise DecodeTimeout(
          f"stream did not decode within {seconds:.1f} s: its version-1 "
          "payload is not what an SAE encoder wrote")
  if "error" in outcome:
    raise outcome["error"]
  return outcome["value"]
