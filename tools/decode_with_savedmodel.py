"""Decodes an SAE stream with an exported SavedModel, without the sae package.

    python tools/decode_with_savedmodel.py SAVEDMODEL STREAM OUT.png [--layers K]

The SavedModel comes from ``python -m sae export DIR``; the stream from
``python -m sae compress``.  The stream format is defined in sae/stream/bitstream.py;
the few lines that parse and verify it are duplicated here on purpose, with
only struct and zlib, to show what a decoder in another code base needs:

    header  magic "SAE\\x1a" | version u8 | layers u8 | height u16 | width u16
            | crc32 of the preceding 10 bytes                   (big-endian)
    chunk   length u32 | weights id (4 bytes) | crc32 | payload
            crc32 over (magic, version, chunk index, height, width) packed
            like the header, then the weights id, then the payload

Exit status 2 with one line ``error: ...`` when the stream is refused.
"""

import argparse
import os
import struct
import sys
import zlib

MAGIC = b"SAE\x1a"
HEADER = struct.Struct(">4sBBHH")
CHUNK = struct.Struct(">I4sI")
MAX_SIDE = 8192  # sae.stream.bitstream.MAX_SIDE: bounds what a header can ask for


class StreamError(ValueError):
  pass


def parse(data):
  """-> (version, height, width, [payload], [weights id hex]) or StreamError."""
  if len(data) < HEADER.size + 4 or data[:4] != MAGIC:
    raise StreamError("not an SAE stream (bad magic or too short)")
  magic, version, layers, height, width = HEADER.unpack_from(data)
  (crc,) = struct.unpack_from(">I", data, HEADER.size)
  if crc != zlib.crc32(data[:HEADER.size]):
    raise StreamError("stream header is corrupted")
  if not (1 <= height <= MAX_SIDE and 1 <= width <= MAX_SIDE and layers):
    raise StreamError(f"implausible header: {width}x{height}, {layers} layers")
  payloads, ids, pos = [], [], HEADER.size + 4
  for k in range(layers):
    if len(data) - pos < CHUNK.size:
      raise StreamError(f"stream is cut in layer {k + 1}")
    length, wid, crc = CHUNK.unpack_from(data, pos)
    pos += CHUNK.size
    if length > len(data) - pos:
      raise StreamError(f"stream is cut in layer {k + 1}")
    payload = data[pos:pos + length]
    pos += length
    identity = HEADER.pack(magic, version, k, height, width)
    if crc != zlib.crc32(payload, zlib.crc32(wid, zlib.crc32(identity))):
      raise StreamError(f"layer {k + 1} is corrupted")
    payloads.append(payload)
    ids.append(wid.hex())
  if pos != len(data):
    raise StreamError("unexpected bytes after the last layer")
  return version, height, width, payloads, ids


def load(saved_model):
  import tensorflow as tf
  import tensorflow_compression  # noqa: F401  registers the range coding ops
  return tf.saved_model.load(saved_model)


def decode(codec, data, num_layers=None):
  """Stream bytes -> uint8 (H, W, 3) numpy array, with a loaded SavedModel."""
  import tensorflow as tf
  version, height, width, payloads, ids = parse(data)
  if version != int(codec.stream_version.numpy()):
    raise StreamError(f"stream format version {version}, the SavedModel "
                      f"reads {int(codec.stream_version.numpy())}")
  num_layers = num_layers or len(payloads)
  if not 1 <= num_layers <= len(payloads):
    raise StreamError(f"--layers must be in 1..{len(payloads)}")
  known = [i.decode() for i in codec.layer_weights_ids.numpy()]
  if num_layers > len(known):
    raise StreamError(f"the SavedModel has {len(known)} layers, not "
                      f"{num_layers}")
  for k in range(num_layers):
    if ids[k] != known[k]:
      raise StreamError(f"layer {k + 1} was coded with weights {ids[k]}, the "
                        f"SavedModel has {known[k]}")
  try:
    image = codec.decompress(tf.constant(payloads[:num_layers], tf.string),
                             tf.constant([height, width], tf.int32))
  except tf.errors.InvalidArgumentError:
    raise StreamError("payload does not decode") from None
  return image.numpy()


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("saved_model")
  p.add_argument("stream")
  p.add_argument("output")
  p.add_argument("--layers", type=int, default=None)
  args = p.parse_args(argv)
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  try:
    with open(args.stream, "rb") as f:
      data = f.read()
    parse(data)  # refuse a broken stream before loading TensorFlow
    image = decode(load(args.saved_model), data, args.layers)
  except (StreamError, OSError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  import tensorflow as tf
  png = tf.io.encode_png(image).numpy()
  tmp = args.output + ".tmp"
  with open(tmp, "wb") as f:
    f.write(png)
  os.replace(tmp, args.output)
  return 0


if __name__ == "__main__":
  sys.exit(main())
