"""Pillow plugin: ``Image.open`` and ``Image.save`` for SAE streams.

Importing this module registers the format, as pillow-avif-plugin and
pillow-heif do for theirs::

    import sae.pillow_plugin  # or sae.register_pillow(weights=..., layers=...)
    from PIL import Image

    with Image.open("photo.sae") as im:  # reads the header: no TensorFlow
      print(im.size, im.info["layers"], im.info["weights_id"])
      im.load()                          # decodes every layer
    Image.open("photo.png").save("photo.sae", layers=2)

``Image.open`` reads the header and the chunk heads, not the payloads: size,
mode (always RGB) and ``im.info`` (``layers``: complete layers in the file,
``declared_layers``, ``version``, ``weights_id`` of the top layer in hex)
come without TensorFlow. The image is decoded at ``load()`` (or whatever
needs the pixels), through ``sae.decode``, with:

- ``im.decode_layers`` layers: all complete ones, or at most ``layers`` of
  ``register``; set it before loading to decode another number;
- the weights of ``im.weights``: ``register``'s ``weights``, by default the
  shipped ``weights/sae-conditional``.

A file cut after its header (an interrupted download) is refused at
``load()``, unless ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set, which decodes
its complete layers as ``python -m sae decompress --partial`` does.

``im.save(f, format="SAE")`` (or a ``.sae`` name) codes with the ``layers``
and ``weights`` parameters (default: every layer; ``register``'s
weights). Images of other modes (L, P, RGBA, 16-bit...) are converted to RGB
as ``sae.encode`` does, alpha dropped with a warning.

Errors are ``sae.errors.InputError`` (a ValueError) with a one-line
message: a damaged header at open, a stream that does not decode with the
weights at load, a bad parameter at save.
"""

import io

from PIL import Image, ImageFile

import sae
from sae.stream import bitstream
from sae.errors import InputError

FORMAT = "SAE"
EXTENSION = ".sae"
# Not registered with IANA; the x- prefix says so.
MIME = "image/x-sae"

# Image.open takes no options (Pillow issue 569), so, as Pillow's AVIF
# plugin and pillow-heif do, the decoder's options are module state.
_defaults = {"weights": None, "layers": None}


def register(weights=None, layers=None) -> None:
  """Registers the format with Pillow, with the defaults of every file
  opened afterwards (see ``sae.register_pillow``); calling it again
  replaces them.

  Raises:
    sae.errors.InputError: ``layers`` is not a positive integer.
  """
  if layers is not None:
    layers = sae._count(layers)
    if layers < 1:
      raise InputError(f"layers must be at least 1, got {layers}")
  _defaults.update(weights=weights, layers=layers)
  Image.register_open(FORMAT, SaeImageFile, _accept)
  Image.register_save(FORMAT, _save)
  Image.register_extension(FORMAT, EXTENSION)
  Image.register_mime(FORMAT, MIME)


def _accept(prefix: bytes) -> bool:
  return prefix[:len(bitstream.MAGIC)] == bitstream.MAGIC


class SaeImageFile(ImageFile.ImageFile):
  """An SAE stream opened by Pillow; decoded by ``load``."""

  format = FORMAT
  format_description = "SAE layered learned image"

  def _open(self) -> None:
    header_bytes = self.fp.read(bitstream.HEADER_BYTES)
    if not _accept(header_bytes):
      raise SyntaxError("not an SAE stream")  # Pillow tries other formats
    # The magic is ours: a damaged header is refused with its reason
    # (StreamError) rather than Pillow's "cannot identify image file".
    header = bitstream.read_header(header_bytes)
    ids = self._complete_layer_ids(header)
    self._size = (header.width, header.height)
    self._mode = "RGB"
    self.info.update(layers=len(ids), declared_layers=header.layers,
                     version=header.version,
                     weights_id=ids[-1].hex() if ids else None)
    self.weights = _defaults["weights"]
    cap = _defaults["layers"]
    self.decode_layers = len(ids) if cap is None else min(cap, len(ids))
    # Raw RGB: load() puts the decoded pixels in self.fp.
    self.tile = [ImageFile._Tile("raw", (0, 0) + self.size, 0, self._mode)]

  def _complete_layer_ids(self, header) -> list:
    """Weights ids of the layers whose chunks are all in the file, from the
    chunk heads alone (payloads are skipped, not read nor verified)."""
    self.fp.seek(0, io.SEEK_END)
    end = self.fp.tell()
    ids, pos = [], bitstream.HEADER_BYTES
    for _ in range(header.layers):
      self.fp.seek(pos)
      head = bitstream.read_chunk_head(
          self.fp.read(bitstream.CHUNK_HEADER_BYTES))
      if head is None:
        break
      length, weights_id = head
      pos += bitstream.CHUNK_HEADER_BYTES + length
      if pos > end:
        break
      ids.append(weights_id)
    return ids

  def load(self):
    if self.tile:  # not decoded yet
      self.fp.seek(0)
      data = self.fp.read()
      if ImageFile.LOAD_TRUNCATED_IMAGES:
        data = _complete_layers(data)
      pixels = sae.decode(data, self.decode_layers, self.weights)
      if self._exclusive_fp:
        self.fp.close()
      self.fp = io.BytesIO(pixels.tobytes())
    return super().load()

  def load_seek(self, pos: int) -> None:
    # Defined so that ImageFile.load reads self.fp (the pixels) rather
    # than memory-mapping the file (the stream) as raw pixels.
    self.fp.seek(pos)


def _complete_layers(data: bytes) -> bytes:
  """A possibly cut stream -> its complete layers, as a stream."""
  stream, _ = bitstream.unpack_prefix(data)
  if not stream.num_layers:
    return data  # sae.decode says why
  return bitstream.repack(stream)


def _save(im: Image.Image, fp, filename) -> None:
  params = im.encoderinfo
  fp.write(sae.encode(im, params.get("layers"),
                      params.get("weights", _defaults["weights"])))


register()
