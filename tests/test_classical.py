"""Tests of sae.eval.classical: the codecs, and cutting JPEG 2000 quality layers."""

import io

import numpy as np
from PIL import Image
import pytest

from sae.eval import classical

RATES = (0.1, 0.3, 0.8, 1.6)


@pytest.fixture(scope="module")
def image():
  # Smooth shapes plus texture: compressible, but every layer has work to do.
  rng = np.random.default_rng(0)
  y, x = np.mgrid[0:72, 0:104]
  base = np.stack([x * 2, y * 3, (x + y) * 1.5], -1) + 40 * np.sin(x / 5.0)[
      ..., None]
  noisy = base + rng.normal(0, 12, base.shape)
  return np.clip(noisy, 0, 255).astype(np.uint8)


def _codecs():
  return [pytest.param(c, marks=pytest.mark.skipif(
      c.available() is not None, reason=str(c.available())))
          for c in classical.CODECS.values()]


@pytest.mark.parametrize("codec_class", _codecs())
def test_round_trip_is_uint8_rgb_of_the_input_size(codec_class, image):
  codec = codec_class()
  quality = codec.qualities[len(codec.qualities) // 2]
  if isinstance(codec, classical.LayeredJpeg2000):
    quality = RATES
  data = codec.encode(image, quality)
  assert isinstance(data, bytes) and data
  decoded = codec.decode(data)
  assert decoded.dtype == np.uint8 and decoded.shape == image.shape
  assert codec.description and codec.label(codec.qualities[0])


def _plain_jpeg2000(image, rates):
  # pylint: disable-next=protected-access
  options = classical._jpeg2000_options(rates, plt=False)
  buf = io.BytesIO()
  Image.fromarray(image).save(buf, format="JPEG2000", **options)
  return buf.getvalue()


def _decode_first_layers(data, num_layers):
  # OpenJPEG's own layer limit; Pillow 13 ignores ``img.layers`` unless
  # ``reduce`` is set, so it goes into the tile arguments directly.
  with Image.open(io.BytesIO(data)) as img:
    tile = img.tile[0]
    codec, _, _, *rest = tile.args
    img.tile = [tile._replace(args=(codec, 0, num_layers, *rest))]
    return np.asarray(img.convert("RGB"))


def test_all_layers_is_openjpegs_stream_without_plt(image):
  codec = classical.LayeredJpeg2000()
  stream = codec.encode(image, RATES)
  assert codec.num_layers(stream) == len(RATES)
  assert codec.truncate(stream, len(RATES)) == _plain_jpeg2000(image, RATES)


def test_prefix_decodes_as_openjpeg_limited_to_k_layers(image):
  codec = classical.LayeredJpeg2000()
  stream = codec.encode(image, RATES)
  sizes = []
  for k in range(1, len(RATES) + 1):
    part = codec.truncate(stream, k)
    sizes.append(len(part))
    np.testing.assert_array_equal(codec.decode(part),
                                  _decode_first_layers(stream, k))
  assert sizes == sorted(set(sizes))


def test_one_layer_prefix_is_close_to_the_single_layer_codec(image):
  layered = classical.LayeredJpeg2000()
  part = layered.truncate(layered.encode(image, RATES), 1)
  single = classical.Jpeg2000().encode(image, RATES[0])
  assert abs(len(part) - len(single)) <= 0.05 * len(single)


def test_bad_arguments_raise(image):
  codec = classical.LayeredJpeg2000()
  stream = codec.encode(image, RATES)
  for k in (0, len(RATES) + 1):
    with pytest.raises(ValueError, match="num_layers"):
      codec.truncate(stream, k)
  with pytest.raises(ValueError, match="increase"):
    codec.encode(image, (0.5, 0.2))
  with pytest.raises(ValueError, match="PLT"):
    codec.truncate(_plain_jpeg2000(image, RATES), 1)
  with pytest.raises(ValueError, match="code stream"):
    codec.truncate(b"\x89PNG not a code stream", 1)
  with pytest.raises(ValueError, match="uint8"):
    classical.Jpeg().encode(image.astype(np.float32), 50)
