"""SAE: layered (quality-scalable) learned image compression.

The package's Python API, for a user who codes images rather than trains
models (docs/api.md)::

    import sae

    data = sae.encode("photo.jpg")             # bytes: every layer
    image = sae.decode(data)                   # uint8 (H, W, 3)
    low = sae.truncate(data, 1)                # the base layer, as a stream
    for layers, image in sae.decode_progressively(chunks):
      show(image)                              # after each completed layer

``weights`` is a weights folder (default: the shipped ``weights/sae-conditional``); its
model is loaded once per folder and process. ``truncate``, ``info`` and
``import sae`` do not import TensorFlow; the first call that codes does,
which takes seconds. Bad input raises ``sae.errors.InputError`` (a
ValueError) with a one-line message. ``import sae.pillow_plugin`` lets
Pillow open and save ``.sae`` files.
"""

import os

# TensorFlow 2.14 turns its oneDNN kernels on by default only on CPUs with
# AVX-512 VNNI, BF16 or AMX. On AVX2-only CPUs they are off, and a training
# step is 1.5x slower without them (README, Benchmarks). TensorFlow reads the
# variable when it is imported, so entry points import sae before tensorflow.
# It is a default: TF_ENABLE_ONEDNN_OPTS=0 turns the kernels off.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

# Everything below imports its modules inside the functions: `import sae`
# is what every entry point, test and tool runs first, so it must not pull
# in TensorFlow (seconds) or anything else the caller may not need.

__all__ = ["load", "encode", "decode", "truncate", "info",
           "decode_progressively", "register_pillow"]


def load(weights=None):
  """The model of a weights folder, loaded once per folder and process.

  ``encode``, ``decode`` and ``decode_progressively`` call it; calling it
  first only moves the loading time (TensorFlow's import, the weights and
  the range coding tables) to a moment of your choice. A folder rewritten
  since (training goes on) is loaded again.

  Args:
    weights: a weights folder or training checkpoint directory (str or
      path); None for the shipped ``weights/sae-conditional``.

  Returns:
    The folder's model with all its trained layers, ready for coding (what
    ``sae.codec`` and ``sae.progressive`` take).

  Raises:
    sae.errors.InputError: no such folder, or not a weights folder.
  """
  import pathlib

  from sae import checkpoints
  from sae.errors import InputError
  root = checkpoints.DEFAULT_WEIGHTS if weights is None else pathlib.Path(
      weights)
  if not root.is_dir():
    raise InputError(f"weights folder {str(root)!r} does not exist")
  return checkpoints.cached_model(root)


def encode(image, layers=None, weights=None) -> bytes:
  """Compresses an image into a layered stream.

  Args:
    image: a path to any image Pillow reads (turned upright by its EXIF
      orientation, as ``python -m sae compress`` does), a PIL image (its
      pixels as they are), or a uint8 array of shape (H, W, 3). Grayscale,
      palette and 16-bit images are converted to 8-bit RGB; alpha is
      dropped with a warning. Sides may be 1 to 8192 pixels.
    layers: how many layers to code (default: all the weights have).
    weights: see ``load``.

  Returns:
    The stream: what ``python -m sae compress`` writes.

  Raises:
    sae.errors.InputError: an unreadable image or one of another kind,
      a size outside 1..8192, ``layers`` out of range.
  """
  rgb = _rgb_array(image)
  model = load(weights)
  from sae import codec
  layers = model.num_layers if layers is None else _count(layers)
  return codec.encode(model, rgb, layers)


def decode(data, layers=None, weights=None, max_pixels=None):
  """Decompresses a stream (or its first ``layers`` layers).

  Args:
    data: the stream (bytes-like) or a path to a stream file.
    layers: how many layers to decode (default: all the stream has). The
      result is the same as decoding ``truncate(data, layers)``.
    weights: the folder whose weights coded the stream; see ``load``.
    max_pixels: refuse streams that declare more pixels (default: any size
      the format allows), before anything is allocated for them: for
      streams from strangers (docs/untrusted-streams.md).

  Returns:
    A uint8 numpy array of shape (H, W, 3).

  Raises:
    sae.errors.InputError: not a stream, cut or corrupted; coded with other
      weights (the message names the weights id it needs); ``layers`` out
      of range; too many pixels.
  """
  data = _stream_bytes(data)
  layers = None if layers is None else _count(layers)
  model = load(weights)
  from sae import codec
  return codec.decode(model, data, layers, max_pixels=max_pixels)


def truncate(data, layers) -> bytes:
  """The first ``layers`` layers of a stream, as a stream, without
  TensorFlow (no model is involved: the bytes are copied).

  Byte for byte what ``encode(image, layers)`` gives with the same weights.

  Args:
    data: the stream (bytes-like) or a path to a stream file.
    layers: how many layers to keep, 1 to the number the stream has.

  Raises:
    sae.errors.InputError: not a stream, cut or corrupted, or ``layers``
      out of range.
  """
  from sae.stream import bitstream
  return bitstream.truncate(_stream_bytes(data), _count(layers))


def info(data) -> dict:
  """What a stream holds, without TensorFlow: ``python -m sae info``.

  Args:
    data: the stream (bytes-like) or a path to a stream file; a cut file
      (an interrupted download) is described by its complete layers.

  Returns:
    A dict with ``width``, ``height``, ``layers`` (complete layers),
    ``layer_bytes``, ``bpp`` (one per prefix), ``version``, ``weights_id``
    (hex, of the top layer: a weights folder's manifest.json lists it) and
    more (docs/stream-format.md).

  Raises:
    sae.errors.InputError: not a stream, damaged, or not even the base layer
      complete.
  """
  from sae.stream import bitstream
  return bitstream.describe(_stream_bytes(data))


def decode_progressively(pieces, weights=None, max_pixels=None):
  """Decodes a stream as its bytes arrive: an image each time a layer
  completes.

  Each layer is decoded once, on top of the layers below it, so the
  images after 1, 2, .., k layers cost about what one k-layer decode costs;
  the image after k layers is ``decode(data, k)``, pixel for pixel.

  Args:
    pieces: an iterable of bytes in any sizes (a download's chunks;
      ``iter(lambda: f.read(1 << 16), b"")`` for a file), or one bytes.
    weights: see ``decode``.
    max_pixels: see ``decode``.

  Yields:
    (layers, image): the number of layers decoded so far and the uint8
    (H, W, 3) image they give.

  Raises:
    sae.errors.InputError: as ``decode``; a stream that ends before its last
      layer is refused after its complete layers were yielded.
  """
  if isinstance(pieces, (bytes, bytearray, memoryview)):
    pieces = (bytes(pieces),)  # iterating bytes would give ints
  model = load(weights)
  from sae import progressive
  for step in progressive.decode_progressively(model, pieces, max_pixels):
    yield step.layers, step.image


def register_pillow(weights=None, layers=None) -> None:
  """Lets Pillow open and save ``.sae`` files (``import sae.pillow_plugin``
  does the same with the defaults).

  ``Image.open`` takes no options, so these are the plugin's defaults for
  every file opened afterwards (``im.weights`` and ``im.decode_layers``
  change them for one image before it loads).

  Args:
    weights: the folder ``Image.open`` decodes and ``Image.save`` codes
      with (default: the shipped ``weights/sae-conditional``).
    layers: how many layers ``Image.open`` decodes at most (default: all
      the stream has).
  """
  from sae import pillow_plugin
  pillow_plugin.register(weights=weights, layers=layers)


def _count(layers) -> int:
  """A layer count given by a caller: any integer (numpy's too), not a
  float or a string; the range is checked where the stream is known."""
  import operator

  from sae.errors import InputError
  try:
    if isinstance(layers, bool):  # an int to Python, a mistake here
      raise TypeError
    return operator.index(layers)
  except TypeError:
    raise InputError(f"layers must be an integer, got {layers!r}") from None


def _stream_bytes(data) -> bytes:
  """A stream given as bytes-like or as a path -> bytes."""
  from sae.errors import InputError
  if isinstance(data, (bytes, bytearray, memoryview)):
    return bytes(data)
  if isinstance(data, (str, os.PathLike)):
    try:
      with open(data, "rb") as f:
        return f.read()
    except FileNotFoundError:
      raise InputError(f"input {str(data)!r} does not exist") from None
    except OSError as e:
      raise InputError(f"cannot read {str(data)!r}: {e.strerror}") from None
  raise InputError("a stream must be bytes or a path to a stream file, got "
                   f"{type(data).__name__}")


def _rgb_array(image):
  """``encode``'s image (a path, a PIL image or an array) -> uint8 HxWx3."""
  import numpy as np
  from PIL import Image

  from sae import images
  from sae.errors import InputError
  if isinstance(image, (str, os.PathLike)):
    return images.load_image(image)
  if isinstance(image, Image.Image):
    source = getattr(image, "filename", None) or "image"
    try:
      return images.to_rgb(image, source, stacklevel=4)
    except (OSError, ValueError) as e:  # a lazily read, damaged file
      raise InputError(f"cannot code this {image.mode} image: {e}") from None
  if isinstance(image, np.ndarray):
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
      raise InputError(f"an image array must be uint8 of shape (H, W, 3), "
                       f"got {image.dtype} of shape {image.shape}")
    return image
  raise InputError("an image must be a path, a PIL image or a uint8 (H, W, 3) "
                   f"array, got {type(image).__name__}")
