"""Stream version 1, read here and nowhere else.

Version 1 streams were written before sae.entropy.rangecode: each layer's
payload is tensorflow-compression's range code of a factorized layer's
latent, with tfc's overflow escapes, and tfc's decoder can loop without end
on a payload its encoder did not write.  This module turns such a stream,
or one layer of it, into version 2, which the rest of the package handles:
it decodes each latent with tfc's decoder on a worker thread under a
deadline that scales with the pixels the header declares (LEGACY_SECONDS),
and codes the same latent again with the layer's version-2 coder.  The
symbols are the same, so the image is the one a version-1 decoder gave.
A C++ op cannot be stopped: after DecodeTimeout the thread may go on
spinning, so a command exits and a server recycles its worker
(docs/untrusted-streams.md).

``encode`` writes version 1 still, for the tests and the fuzzer.
"""

import threading
import time
import weakref

import tensorflow as tf

from sae.entropy.layer import LayerCodec
from sae.errors import InputError
from sae.models.transforms import latent_shape
from sae.stream import bitstream

VERSION = 1
# Deadline of a version-1 decode: a fixed part, plus a part per declared
# pixel and layer, both far above what a genuine stream takes (a 4-layer
# Kodak image decodes in about 0.1 s on 2 cores, 0.06 µs per pixel-layer).
LEGACY_SECONDS = (5.0, 5e-7)


class DecodeTimeout(InputError):
  """A version-1 stream did not decode within its deadline.

  The decoding thread may still be running: the process should exit (or be
  recycled) rather than decode more streams.
  """


def is_legacy(stream: bitstream.Stream) -> bool:
  """True for a stream that ``upgrade`` must transcode (with the model)."""
  return stream.version == VERSION


def upgrade(model, stream: bitstream.Stream) -> bitstream.Stream:
  """``stream`` (all its layers) in version 2; itself when it is already.

  Raises:
    InputError: the model's layers cannot be in a version-1 stream, or a
      payload does not decode with these weights; DecodeTimeout.
  """
  if stream.version != VERSION:
    return stream
  transcode = _transcoder(model)
  hw = latent_shape((stream.height, stream.width))

  def run():
    return tuple(_transcoded(transcode, k, payload, hw)
                 for k, payload in enumerate(stream.payloads))

  payloads = _with_deadline(run, (), legacy_deadline(
      stream.height, stream.width, stream.num_layers))
  return stream._replace(payloads=payloads, version=bitstream.VERSION)


def upgrade_layer(model, header, k: int, payload: bytes) -> bytes:
  """Layer ``k``'s payload of a stream whose header is ``header``, in
  version 2 (itself when it is already); raises as ``upgrade``."""
  if header.version != VERSION:
    return payload
  transcode = _transcoder(model)
  hw = latent_shape((header.height, header.width))
  return _with_deadline(_transcoded, (transcode, k, payload, hw),
                        legacy_deadline(header.height, header.width, 1))


def warm_up(model) -> None:
  """Traces the version-1 decoding of ``model`` (if it can hold one), so
  that a deadline covers decoding, not tracing.  Nothing runs: an empty
  payload could keep tfc's decoder spinning."""
  if _holds_version_1(model):
    _transcoder(model)


def encode(model, image, num_layers: int) -> bytes:
  """uint8 HxWx3 -> a version-1 stream of the first ``num_layers`` layers:
  the version-2 stream's latents coded with tfc's coder (tests, fuzzer)."""
  from sae import codec
  if not _holds_version_1(model):
    raise InputError("stream version 1 cannot hold this model family's "
                     "layers")
  stream = bitstream.unpack(codec.encode(model, image, num_layers))
  hw = tf.constant(latent_shape((stream.height, stream.width)))
  payloads = [
      layer.coder.compress(layer.decompress_latent(
          tf.constant([payload]), hw)).numpy()[0]
      for layer, payload in zip(model.codecs, stream.payloads)]
  return bitstream.pack(stream.height, stream.width, payloads,
                        stream.weights_ids, VERSION)


def legacy_deadline(height: int, width: int, num_layers: int) -> float:
  """Seconds a version-1 stream of that size may take to decode."""
  fixed, per_pixel = LEGACY_SECONDS
  return fixed + per_pixel * height * width * num_layers


def _holds_version_1(model) -> bool:
  # Version 1 predates every layer but the factorized one.
  return all(type(layer) is LayerCodec for layer in model.codecs)


_TRANSCODERS = weakref.WeakKeyDictionary()  # model -> its traced function


def _transcoder(model):
  """A traced function (layer index, version-1 payload, latent [h, w]) ->
  the version-2 payload of the same latent, traced before any clock runs
  (tracing a fresh process's first call takes seconds)."""
  if not _holds_version_1(model):
    raise InputError("stream version 1 cannot hold this model family's "
                     "layers")
  if model not in _TRANSCODERS:

    @tf.function(autograph=False, input_signature=[
        tf.TensorSpec((), tf.int32), tf.TensorSpec((1,), tf.string),
        tf.TensorSpec((2,), tf.int32)])
    def transcode(k, string, hw):
      def layer(codec):
        return lambda: codec.compress_latent(codec.coder.decompress(string, hw))

      check = tf.debugging.assert_less(k, model.num_layers,
                                       message="no such layer")
      with tf.control_dependencies([check]):
        return tf.switch_case(k, [layer(c) for c in model.codecs])

    transcode.get_concrete_function()
    _TRANSCODERS[model] = transcode
  return _TRANSCODERS[model]


def _transcoded(transcode, k, payload, hw) -> bytes:
  try:
    return transcode(tf.constant(k, tf.int32), tf.constant([payload]),
                     tf.constant(hw, tf.int32)).numpy()[0]
  except tf.errors.InvalidArgumentError:
    raise InputError("stream payload does not decode with these "
                     "weights") from None


# Decoding threads that missed their deadline: their C++ loops cannot be
# stopped, and an interpreter's normal exit would wait for them.
_timed_out = []


def threads_left_running() -> bool:
  """True when a decode that missed its deadline still runs: the process
  should then leave with os._exit (sae.__main__ does)."""
  return any(t.is_alive() for t in _timed_out)


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
      _timed_out.append(thread)
      raise DecodeTimeout(
          f"stream did not decode within {seconds:.1f} s: its version-1 "
          "payload is not what an SAE encoder wrote")
  if "error" in outcome:
    raise outcome["error"]
  return outcome["value"]
