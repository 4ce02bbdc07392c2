"""Classical image codecs behind one small interface, for the RD benchmark.

Each codec turns a uint8 HxWx3 RGB array into the bytes it writes and back,
like CompressAI's bench ``Codec``; ``sae.eval.bench`` measures them with the
protocol of ``sae.eval.evaluate``. No TensorFlow here, so the codecs import fast.

JPEG 2000 is also offered as a quality-scalable stream, the classical
counterpart of SAE's layers: ``LayeredJpeg2000`` encodes once with several
quality layers and cuts the code stream after any number of layers.
"""

import io
import struct
from typing import Sequence

import numpy as np
from PIL import Image, features
import PIL

# Uncompressed 8-bit RGB: OpenJPEG's "rates" are compression ratios against it.
_RGB_BITS = 24


class Codec:
  """One classical codec: its name, a quality sweep, encode and decode.

  Attributes:
    name: short name; also the results file name (``<name>.json``).
    description: library, version and settings, for the results JSON.
    qualities: the default sweep, ordered from low to high rate.
  """

  name = ""
  qualities: Sequence = ()

  @classmethod
  def available(cls) -> str | None:
    """None when the codec can run here, else why not (one line)."""
    return None

  @property
  def description(self) -> str:
    raise NotImplementedError

  def label(self, quality) -> str:
    """Short name of one operating point, for tables and the JSON."""
    return f"q{quality}"

  def encode(self, image: np.ndarray, quality) -> bytes:
    """Compresses uint8 HxWx3 RGB; returns every byte the codec wrote."""
    raise NotImplementedError

  def decode(self, data: bytes) -> np.ndarray:
    """Decompresses to uint8 HxWx3 RGB."""
    raise NotImplementedError


class _PillowCodec(Codec):
  """A codec Pillow writes; decoding is Pillow's, as RGB."""

  _format = ""

  def _save_options(self, quality) -> dict:
    raise NotImplementedError

  def encode(self, image, quality):
    buf = io.BytesIO()
    Image.fromarray(_rgb(image)).save(buf, format=self._format,
                                      **self._save_options(quality))
    return buf.getvalue()

  def decode(self, data):
    with Image.open(io.BytesIO(data)) as img:
      return np.asarray(img.convert("RGB"), np.uint8)


class Jpeg(_PillowCodec):
  """Baseline JPEG, Pillow defaults (4:2:0, no Huffman optimisation).

  The defaults match CompressAI's JPEG anchor (also Pillow), so the two
  curves can be compared directly.
  """

  name = "jpeg"
  _format = "JPEG"
  qualities = (1, 3, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70,
               75, 80, 85, 90, 95)

  @property
  def description(self):
    return (f"JPEG, Pillow {PIL.__version__} (libjpeg-turbo "
            f"{features.version('libjpeg_turbo')}), quality 1..95, default "
            "settings (4:2:0 chroma, standard Huffman tables)")

  def _save_options(self, quality):
    return {"quality": int(quality)}


class WebP(_PillowCodec):
  """Lossy WebP (always 4:2:0), Pillow defaults (method 4)."""

  name = "webp"
  _format = "WEBP"
  qualities = tuple(range(0, 101, 5))

  @property
  def description(self):
    return (f"WebP lossy, Pillow {PIL.__version__} (libwebp "
            f"{features.version('webp')}), quality 0..100, method 4")

  def _save_options(self, quality):
    return {"quality": int(quality), "lossless": False}


class Jpeg2000(_PillowCodec):
  """JPEG 2000 code stream (.j2k), OpenJPEG through Pillow, one layer.

  The quality is the target rate in bpp (OpenJPEG's rate control lands at or
  a little below it). Irreversible 9/7 wavelet with the colour transform on:
  Pillow's default ``mct=0`` codes R, G and B independently and costs about
  6 dB at 1.6 bpp on Kodak. A raw code stream, without the JP2 boxes, is the
  smallest file OpenJPEG writes (it always adds a 37-byte comment marker).
  """

  name = "jpeg2000"
  _format = "JPEG2000"
  qualities = (0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.75,
               1.0, 1.25, 1.5, 2.0, 2.5, 3.0)

  @property
  def description(self):
    return (f"JPEG 2000 code stream (.j2k), OpenJPEG "
            f"{features.version('jpg_2000')} via Pillow {PIL.__version__}, "
            "irreversible 9/7, colour transform (mct=1), single quality "
            "layer, quality_mode 'rates' with the target bpp as quality")

  def label(self, quality):
    return f"{quality:g}bpp"

  def _save_options(self, quality):
    return _jpeg2000_options([quality], plt=False)


class LayeredJpeg2000(Codec):
  """JPEG 2000 with quality layers: one code stream, decodable per prefix.

  ``encode(image, rates)`` writes one stream with a quality layer per target
  rate (cumulative bpp, increasing), layer-major (LRCP progression), with
  PLT markers that give every packet's length. ``truncate(stream, k)`` is
  what a server sends a client that wants k layers: the headers without the
  PLT markers, the packets of layers 1..k, and an end-of-code-stream marker.
  That stream decodes exactly as the full stream decoded with k layers, and
  for k = all layers it is byte for byte the stream OpenJPEG writes without
  PLT markers; its bytes are what the bench counts.

  Pillow cannot cut a code stream itself, and its ``layers`` attribute is
  ignored unless ``reduce`` is also set (Pillow 13), hence the cutting here.
  """

  name = "jpeg2000-layers"
  qualities = (0.10, 0.31, 0.78, 1.61)

  @property
  def description(self):
    return (f"JPEG 2000 with quality layers, OpenJPEG "
            f"{features.version('jpg_2000')} via Pillow {PIL.__version__}: "
            "one code stream encoded once (irreversible 9/7, mct=1, LRCP, one "
            "quality layer per target rate), cut after k layers at packet "
            "boundaries; bpp counts the bytes a k-layer client receives "
            "(main and tile-part headers without PLT, the packets of layers "
            "1..k, EOC)")

  def label(self, quality):
    return f"{quality} layer" + ("s" if quality > 1 else "")

  def encode(self, image, quality):
    """Encodes once; ``quality`` is the sequence of cumulative target bpp."""
    rates = [float(r) for r in quality]
    if not rates or any(b <= a for a, b in zip(rates, rates[1:])):
      raise ValueError(f"layer rates must increase, got {rates}")
    buf = io.BytesIO()
    Image.fromarray(_rgb(image)).save(buf, format="JPEG2000",
                                      **_jpeg2000_options(rates, plt=True))
    return buf.getvalue()

  def num_layers(self, data: bytes) -> int:
    return _parse_codestream(data).num_layers

  def truncate(self, data: bytes, num_layers: int) -> bytes:
    """The first ``num_layers`` quality layers as a stand-alone code stream."""
    cs = _parse_codestream(data)
    if not 1 <= num_layers <= cs.num_layers:
      raise ValueError(f"num_layers must be in 1..{cs.num_layers}, got "
                       f"{num_layers}")
    per_layer, extra = divmod(len(cs.packet_lengths), cs.num_layers)
    if extra:
      raise ValueError(f"{len(cs.packet_lengths)} packets do not split into "
                       f"{cs.num_layers} layers")
    # LRCP: the packets of layer 1 come first, then those of layer 2, ...
    body_end = cs.sod + sum(cs.packet_lengths[:num_layers * per_layer])
    body = data[cs.sod:body_end]
    # SOT keeps its fields but Psot, the tile-part length from SOT on.
    rest = cs.tile_markers + b"\xff\x93"
    psot = struct.pack(">I", 12 + len(rest) + len(body))
    sot = data[cs.sot:cs.sot + 6] + psot + data[cs.sot + 10:cs.sot + 12]
    return data[:cs.sot] + sot + rest + body + b"\xff\xd9"

  def decode(self, data):
    with Image.open(io.BytesIO(data)) as img:
      return np.asarray(img.convert("RGB"), np.uint8)


class _ImagecodecsCodec(Codec):
  """A codec from the imagecodecs package, when it is installed."""

  _codec = ""  # imagecodecs' name, e.g. "AVIF"

  @classmethod
  def available(cls):
    try:
      import imagecodecs  # pylint: disable=import-outside-toplevel
      if getattr(imagecodecs, cls._codec).available:
        return None
    except (ImportError, AttributeError) as e:
      return f"imagecodecs with {cls._codec} is not installed ({e})"
    return f"imagecodecs {imagecodecs.__version__} was built without " \
           f"{cls._codec}"

  @staticmethod
  def _lib():
    import imagecodecs  # pylint: disable=import-outside-toplevel
    return imagecodecs


class Avif(_ImagecodecsCodec):
  """AVIF (libavif + libaom) at 4:4:4, speed 6 (libavif's default preset).

  4:4:4 as CompressAI's AV1 anchor (``--i444``); speed 6 because the library
  default (-1) takes ~10 s per Kodak image on this machine.
  """

  name = "avif"
  _codec = "AVIF"
  qualities = (0, 5, 10, 15, 20, 30, 40, 50, 60, 70, 80, 85, 90)

  @property
  def description(self):
    lib = self._lib()
    return (f"AVIF, imagecodecs {lib.__version__} ({lib.avif_version()}, "
            "aom encoder), YUV 4:4:4, speed 6, one thread, quality 0..90")

  def encode(self, image, quality):
    return bytes(self._lib().avif_encode(_rgb(image), level=int(quality),
                                         speed=6, pixelformat="yuv444",
                                         codec="aom", numthreads=1))

  def decode(self, data):
    return _rgb(self._lib().avif_decode(data, numthreads=1))


class JpegXl(_ImagecodecsCodec):
  """JPEG XL (libjxl), lossy, effort 7 (libjxl's default); quality = distance.

  The Butteraugli distance falls as quality rises, so the sweep lists
  distances from large to small.
  """

  name = "jxl"
  _codec = "JPEGXL"
  qualities = (25.0, 20.0, 15.0, 10.0, 7.0, 5.0, 3.5, 2.5, 1.75, 1.25, 1.0,
               0.7, 0.5)

  @property
  def description(self):
    lib = self._lib()
    return (f"JPEG XL, imagecodecs {lib.__version__} ({lib.jpegxl_version()})"
            ", lossy VarDCT, effort 7, one thread, quality = Butteraugli "
            "distance 25..0.5")

  def label(self, quality):
    return f"d{quality:g}"

  def encode(self, image, quality):
    return bytes(self._lib().jpegxl_encode(_rgb(image), distance=float(quality),
                                           effort=7, numthreads=1))

  def decode(self, data):
    return _rgb(self._lib().jpegxl_decode(data, numthreads=1))


CODECS = {c.name: c for c in (Jpeg, WebP, Jpeg2000, LayeredJpeg2000, Avif,
                              JpegXl)}


def _rgb(image) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
    raise ValueError(f"expected uint8 HxWx3, got {image.dtype} "
                     f"{image.shape}")
  return np.ascontiguousarray(image)


def _jpeg2000_options(rates, plt: bool) -> dict:
  return {"no_jp2": True, "irreversible": True, "mct": 1,
          "progression": "LRCP", "quality_mode": "rates",
          "quality_layers": [_RGB_BITS / r for r in rates], "plt": plt}


class _Codestream:
  """Where the parts of a one-tile, one-tile-part J2K code stream are."""

  def __init__(self, sot, sod, tile_markers, num_layers, packet_lengths):
    self.sot = sot  # offset of the SOT marker
    self.sod = sod  # offset of the first packet byte (after SOD)
    self.tile_markers = tile_markers  # tile-part header markers but PLT
    self.num_layers = num_layers
    self.packet_lengths = packet_lengths  # in code stream order (LRCP)


def _parse_codestream(data: bytes) -> _Codestream:
  """Finds the headers, layer count and packet lengths (from PLT markers).

  Raises:
    ValueError: not a code stream this module wrote (no PLT, not LRCP, more
      than one tile or tile-part).
  """
  def marker_at(i):
    if i + 4 > len(data):
      raise ValueError("J2K code stream ends inside a header")
    code, length = struct.unpack(">HH", data[i:i + 4])
    return code, length

  if data[:2] != b"\xff\x4f":
    raise ValueError("not a JPEG 2000 code stream (no SOC marker)")
  i, num_layers = 2, None
  while True:
    code, length = marker_at(i)
    if code == 0xFF52:  # COD: progression order, then the number of layers
      progression, num_layers = struct.unpack(">BH", data[i + 5:i + 8])
      if progression != 0:
        raise ValueError("layers can be cut only from an LRCP code stream")
    if code == 0xFF90:  # SOT: the main header ends
      break
    i += 2 + length
  if num_layers is None:
    raise ValueError("J2K code stream has no COD marker")
  sot = i
  psot = struct.unpack(">I", data[sot + 6:sot + 10])[0]
  end = sot + psot if psot else len(data) - 2
  if data[end:end + 2] != b"\xff\xd9":
    raise ValueError("cutting needs one tile in one tile-part")
  i = sot + 12
  tile_markers, lengths = b"", []
  while data[i:i + 2] != b"\xff\x93":  # SOD
    code, length = marker_at(i)
    if code == 0xFF58:  # PLT: Zplt, then 7-bit groups, high bit = continue
      value = 0
      for byte in data[i + 5:i + 2 + length]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
          lengths.append(value)
          value = 0
    else:
      tile_markers += data[i:i + 2 + length]
    i += 2 + length
  sod = i + 2
  if not lengths:
    raise ValueError("J2K code stream has no PLT markers")
  if sod + sum(lengths) != end:
    raise ValueError("PLT packet lengths do not add up to the tile-part")
  return _Codestream(sot, sod, tile_markers, num_layers, lengths)
