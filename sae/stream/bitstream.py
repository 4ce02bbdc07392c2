"""The layered container: one file, any prefix of k chunks is a valid file.

Layout (big-endian)::

    header  magic "SAE\\x1a" | version u8 | layers u8 | height u16 | width u16
            | crc32 of the preceding 10 bytes
    chunk   length u32 | weights id (4 bytes) | crc32 | payload (length bytes)

A chunk's CRC covers the image identity (magic, version, height, width), the
chunk's index, its weights id and its payload, but not the layer count, so
truncation copies chunks verbatim and rewrites only the header.  Every size
is checked against the bytes present before anything is allocated.
"""

import struct
import zlib
from typing import NamedTuple, Sequence

from sae.errors import InputError

MAGIC = b"SAE\x1a"
# The version written.  Version 1 payloads are tensorflow-compression range
# codes with its overflow escape; version 2 payloads carry escaped values
# after the regular symbols (sae/entropy/rangecode.py), which bounds decoding time.
VERSION = 2
SUPPORTED_VERSIONS = (1, 2)
MAX_LAYERS = 8
MAX_SIDE = 8192
_HEADER = struct.Struct(">4sBBHH")
_CHUNK = struct.Struct(">I4sI")
HEADER_BYTES = _HEADER.size + 4


class StreamError(InputError):
  """A stream that is not one, is cut, corrupted or implausible."""


class Stream(NamedTuple):
  height: int
  width: int
  payloads: tuple        # one bytes per layer, in order
  weights_ids: tuple     # one 4-byte id per layer
  version: int = VERSION

  @property
  def num_layers(self) -> int:
    return len(self.payloads)

  def prefix(self, num_layers: int) -> "Stream":
    """The first ``num_layers`` layers: the one cut of a stream (truncate,
    decoding k layers, the server's ?layers=k)."""
    return self._replace(payloads=self.payloads[:num_layers],
                         weights_ids=self.weights_ids[:num_layers])


def check_size(height: int, width: int, source=None) -> None:
  """Refuses an image size the header cannot hold; ``source`` names the
  image file in the message."""
  if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE):
    if source is not None:
      raise StreamError(f"{str(source)!r} is {width}x{height}; the stream "
                        f"format allows 1..{MAX_SIDE} pixels per side")
    raise StreamError(f"image size {width}x{height} outside 1..{MAX_SIDE}")


def check_layers(wanted: int, available: int) -> None:
  """Refuses to decode more layers than a stream holds (or fewer than 1)."""
  if not 1 <= wanted <= available:
    raise InputError(f"--layers must be in 1..{available} for this stream, "
                     f"got {wanted}")


def check_pixels(height: int, width: int, max_pixels) -> None:
  """Refuses an image larger than ``max_pixels`` (None: no limit but the
  format's), before anything is allocated for it."""
  if max_pixels is not None and height * width > max_pixels:
    raise InputError(f"stream declares {width}x{height} pixels, more than "
                     f"the limit of {max_pixels}")


def _chunk_crc(version, height, width, index, weights_id, payload) -> int:
  identity = _HEADER.pack(MAGIC, version, index, height, width)
  return zlib.crc32(payload, zlib.crc32(weights_id, zlib.crc32(identity)))


def pack(height: int, width: int, payloads: Sequence[bytes],
         weights_ids: Sequence[bytes], version: int = VERSION) -> bytes:
  """Serializes per-layer payloads (layer 0 first) into one stream."""
  check_size(height, width)
  if version not in SUPPORTED_VERSIONS:
    raise ValueError(f"version must be one of {SUPPORTED_VERSIONS}, got {version}")
  if not 1 <= len(payloads) <= MAX_LAYERS or len(weights_ids) != len(payloads):
    raise ValueError(f"need 1..{MAX_LAYERS} payloads with one id each, got "
                     f"{len(payloads)} payloads and {len(weights_ids)} ids")
  head = _HEADER.pack(MAGIC, version, len(payloads), height, width)
  parts = [head, struct.pack(">I", zlib.crc32(head))]
  for k, (payload, wid) in enumerate(zip(payloads, weights_ids)):
    if len(wid) != 4:
      raise ValueError(f"weights id must be 4 bytes, got {len(wid)}")
    crc = _chunk_crc(version, height, width, k, wid, payload)
    parts += [_CHUNK.pack(len(payload), wid, crc), payload]
  return b"".join(parts)


def unpack(data: bytes) -> Stream:
  """Parses and verifies a stream.

  Raises:
    StreamError: with a one-line reason.
  """
  header = read_header(data)
  payloads, ids, pos = [], [], HEADER_BYTES
  for k in range(header.layers):
    chunk = read_chunk(data, pos, header, k)
    if chunk is None:
      raise StreamError(_cut_reason(data, pos, k, header.layers))
    payload, wid, pos = chunk
    payloads.append(payload)
    ids.append(wid)
  if pos != len(data):
    raise StreamError(f"{len(data) - pos} unexpected bytes after the last layer")
  return Stream(header.height, header.width, tuple(payloads), tuple(ids),
                header.version)


def _cut_reason(data, pos, index, layers) -> str:
  """Why the chunk of layer ``index`` at ``pos`` is not complete."""
  if len(data) - pos < _CHUNK.size:
    return f"stream is cut in layer {index + 1} of {layers}"
  (length,) = struct.unpack_from(">I", data, pos)
  remain = len(data) - pos - _CHUNK.size
  return (f"stream is cut in layer {index + 1} of {layers}: chunk needs "
          f"{length} bytes, {remain} remain")


def truncate(data: bytes, num_layers: int) -> bytes:
  """The first ``num_layers`` layers of a stream, as a stream."""
  stream = unpack(data)
  if not 1 <= num_layers <= stream.num_layers:
    raise InputError(f"--layers must be in 1..{stream.num_layers} for this "
                     f"stream, got {num_layers}")
  return repack(stream.prefix(num_layers))


def layer_bytes(data: bytes) -> list:
  """Bytes each layer adds to the file (header counted in layer 1)."""
  stream = unpack(data)
  sizes = [_CHUNK.size + len(p) for p in stream.payloads]
  sizes[0] += HEADER_BYTES
  return sizes


# Cut files: an interrupted download or a stream still arriving.

CHUNK_HEADER_BYTES = _CHUNK.size


class Header(NamedTuple):
  version: int
  layers: int            # as declared; a cut file holds fewer
  height: int
  width: int


def read_header(data: bytes) -> Header:
  """Parses and verifies the header (the first HEADER_BYTES of ``data``).

  Raises:
    StreamError: a bad or implausible header, or fewer bytes than a header.
  """
  if len(data) < HEADER_BYTES:
    if not data or not MAGIC.startswith(bytes(data[:4])):
      raise StreamError("not an SAE stream (bad magic)")
    raise StreamError(f"stream is cut in its header: {len(data)} bytes, the "
                      f"header needs {HEADER_BYTES}")
  magic, version, layers, height, width = _HEADER.unpack_from(data)
  if magic != MAGIC:
    raise StreamError("not an SAE stream (bad magic)")
  (crc,) = struct.unpack_from(">I", data, _HEADER.size)
  if crc != zlib.crc32(bytes(data[:_HEADER.size])):
    raise StreamError("stream header is corrupted (checksum mismatch)")
  if version not in SUPPORTED_VERSIONS:
    raise StreamError(f"stream format version {version} is not supported "
                      f"(this decoder reads versions "
                      f"{', '.join(map(str, SUPPORTED_VERSIONS))})")
  check_size(height, width)
  if not 1 <= layers <= MAX_LAYERS:
    raise StreamError(f"layer count {layers} outside 1..{MAX_LAYERS}")
  return Header(version, layers, height, width)


def read_chunk_head(data: bytes, pos: int = 0):
  """(payload length, weights id) of the chunk starting at ``pos``, or None
  while its CHUNK_HEADER_BYTES are not all in ``data``.

  Unverified (the CRC covers the payload too): for walking a file's layers
  without reading their payloads, as the Pillow plugin does at open time.
  """
  if len(data) - pos < _CHUNK.size:
    return None
  length, wid, _ = _CHUNK.unpack_from(data, pos)
  return length, wid


def read_chunk(data: bytes, pos: int, header: Header, index: int):
  """The chunk of layer ``index`` starting at ``pos`` -> (payload, weights
  id, end), or None while the chunk is not complete in ``data``.

  Raises:
    StreamError: the complete chunk is corrupted.
  """
  if len(data) - pos < _CHUNK.size:
    return None
  length, wid, crc = _CHUNK.unpack_from(data, pos)
  start = pos + _CHUNK.size
  if length > len(data) - start:
    return None
  payload = bytes(data[start:start + length])
  if crc != _chunk_crc(header.version, header.height, header.width, index,
                       wid, payload):
    raise StreamError(f"layer {index + 1} is corrupted (checksum mismatch)")
  return payload, wid, start + length


def unpack_prefix(data: bytes):
  """Parses the complete layers of a stream that may be cut anywhere after
  its header -> (Stream of the complete layers, declared layer count).

  The Stream may hold no layer (cut in the base layer).  A complete stream
  gives what ``unpack`` gives.

  Raises:
    StreamError: no complete header, a corrupted complete layer, or bytes
      after the last declared layer.
  """
  header = read_header(data)
  payloads, ids, pos = [], [], HEADER_BYTES
  for k in range(header.layers):
    chunk = read_chunk(data, pos, header, k)
    if chunk is None:
      break
    payload, wid, pos = chunk
    payloads.append(payload)
    ids.append(wid)
  else:
    if pos != len(data):
      raise StreamError(
          f"{len(data) - pos} unexpected bytes after the last layer")
  stream = Stream(header.height, header.width, tuple(payloads), tuple(ids),
                  header.version)
  return stream, header.layers


def repack(stream: Stream) -> bytes:
  """A parsed stream (for example unpack_prefix's complete layers) as a file:
  what ``truncate`` gives for the same layers."""
  return pack(stream.height, stream.width, stream.payloads,
              stream.weights_ids, stream.version)


def describe(data: bytes) -> dict:
  """What ``python -m sae info`` prints and the server's /info sends: the
  header and the complete layers.  ``layers`` counts the complete layers,
  which every list has one entry for; a cut file (an interrupted download)
  declares more (``declared_layers``) and holds ``partial_bytes`` of the
  next one.

  Raises:
    StreamError: not a stream, damaged, or not even the base layer complete.
  """
  stream, declared = unpack_prefix(data)
  if not stream.num_layers:
    raise StreamError(f"stream is cut in layer 1 of {declared}: "
                      "not even the base layer is complete")
  sizes = [len(p) + CHUNK_HEADER_BYTES for p in stream.payloads]
  sizes[0] += HEADER_BYTES
  pixels = stream.height * stream.width
  cumulative = [sum(sizes[:k + 1]) for k in range(len(sizes))]
  return {
      "width": stream.width, "height": stream.height,
      "layers": stream.num_layers, "layer_bytes": sizes,
      "bytes": len(data), "bpp": [8 * b / pixels for b in cumulative],
      "version": stream.version,
      "weights_id": stream.weights_ids[-1].hex(),
      "layer_weights_ids": [w.hex() for w in stream.weights_ids],
      "declared_layers": declared, "cut": stream.num_layers < declared,
      "partial_bytes": len(data) - cumulative[-1]}
