"""sae.pillow_plugin: Image.open reads a stream's header, load() decodes it
as sae.decode does, Image.save codes as sae.encode does; on the tiny weights.
"""

import io
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageFile, UnidentifiedImageError

import sae
from sae.stream import bitstream
from sae import pillow_plugin
from sae.errors import InputError
from tiny import random_image

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def tiny_defaults(tiny_weights):
  """The plugin decodes and codes with the tiny weights, as a user's
  ``sae.register_pillow(weights=...)`` would; the defaults come back after."""
  sae.register_pillow(weights=tiny_weights)
  yield
  sae.register_pillow()


@pytest.fixture(scope="module")
def image():
  return random_image(21, 30, seed=9)


@pytest.fixture(scope="module")
def stream_file(tiny_weights, image, tmp_path_factory):
  path = tmp_path_factory.mktemp("pillow") / "photo.sae"
  path.write_bytes(sae.encode(image, weights=tiny_weights))
  return path


def test_the_format_is_registered():
  assert Image.registered_extensions()[".sae"] == "SAE"
  assert Image.MIME["SAE"] == "image/x-sae"
  assert pillow_plugin._accept(bitstream.MAGIC + b"\x02\x04")
  assert not pillow_plugin._accept(b"\x89PNG\r\n\x1a\n")


def test_open_reads_the_header_without_decoding(stream_file, monkeypatch,
                                                tiny_model):
  def no_decoding(*args, **kwargs):
    raise AssertionError("decoded at open")

  monkeypatch.setattr(sae, "decode", no_decoding)
  with Image.open(stream_file) as im:
    assert (im.format, im.size, im.mode) == ("SAE", (30, 21), "RGB")
    assert im.get_format_mimetype() == "image/x-sae"
    assert im.info == {"layers": 4, "declared_layers": 4, "version": 2,
                       "weights_id": tiny_model.weights_ids()[-1].hex()}
    assert im.decode_layers == 4


def test_load_decodes_as_sae_decode(tiny_weights, stream_file):
  data = stream_file.read_bytes()
  for source in (stream_file, str(stream_file), io.BytesIO(data)):
    with Image.open(source, formats=["SAE"]) as im:
      np.testing.assert_array_equal(np.asarray(im),
                                    sae.decode(data, weights=tiny_weights))


def test_fewer_layers_per_image_or_by_default(tiny_weights, stream_file):
  data = stream_file.read_bytes()
  with Image.open(stream_file) as im:
    im.decode_layers = 2
    np.testing.assert_array_equal(np.asarray(im),
                                  sae.decode(data, 2, tiny_weights))
  sae.register_pillow(weights=tiny_weights, layers=1)
  with Image.open(stream_file) as im:
    assert im.decode_layers == 1
    np.testing.assert_array_equal(np.asarray(im),
                                  sae.decode(data, 1, tiny_weights))
  sae.register_pillow(weights=tiny_weights, layers=9)  # at most 9: all 4
  with Image.open(stream_file) as im:
    assert im.decode_layers == 4


def test_save_then_open_round_trip(tiny_weights, image, tmp_path):
  path = tmp_path / "saved.sae"
  Image.fromarray(image).save(path, layers=3)
  assert path.read_bytes() == sae.encode(image, 3, tiny_weights)
  with Image.open(path) as im:
    assert im.info["layers"] == 3
    np.testing.assert_array_equal(np.asarray(im),
                                  sae.decode(path, weights=tiny_weights))
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="SAE", weights=tiny_weights)
  assert buffer.getvalue() == sae.encode(image, weights=tiny_weights)


def test_other_modes_are_saved_as_rgb(tiny_weights, image, tmp_path):
  gray = Image.fromarray(image).convert("L")
  gray.save(tmp_path / "gray.sae", layers=1)
  assert (tmp_path / "gray.sae").read_bytes() == sae.encode(
      np.asarray(gray.convert("RGB")), 1, tiny_weights)
  with pytest.warns(UserWarning, match="alpha channel dropped"):
    Image.fromarray(image).convert("RGBA").save(tmp_path / "rgba.sae",
                                                layers=1)
  assert (tmp_path / "rgba.sae").read_bytes() == sae.encode(image, 1,
                                                             tiny_weights)


def test_a_cut_file_loads_its_complete_layers_if_pillow_is_told_so(
    tiny_weights, stream_file, tmp_path, monkeypatch):
  data = stream_file.read_bytes()
  cut = tmp_path / "cut.sae"
  cut.write_bytes(data[:len(sae.truncate(data, 2)) + 20])  # into layer 3
  with Image.open(cut) as im:
    assert (im.info["layers"], im.info["declared_layers"]) == (2, 4)
    with pytest.raises(InputError, match="cut in layer 3 of 4"):
      im.load()
  monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
  with Image.open(cut) as im:
    np.testing.assert_array_equal(np.asarray(im),
                                  sae.decode(data, 2, tiny_weights))


def test_bad_input_is_refused(tiny_weights, image, stream_file, tmp_path):
  Image.fromarray(image).save(tmp_path / "photo.png")
  with pytest.raises(UnidentifiedImageError):
    Image.open(tmp_path / "photo.png", formats=["SAE"])
  data = bytearray(stream_file.read_bytes())
  data[6] ^= 1  # the height, under the header's checksum
  with pytest.raises(InputError, match="header is corrupted"):
    Image.open(io.BytesIO(bytes(data)))
  parsed = bitstream.unpack(stream_file.read_bytes())
  foreign = bitstream.pack(parsed.height, parsed.width, parsed.payloads,
                           (b"\0\0\0\0",) + parsed.weights_ids[1:])
  with Image.open(io.BytesIO(foreign)) as im:
    with pytest.raises(InputError, match="coded with weights 00000000"):
      im.load()
  with Image.open(stream_file) as im:
    im.decode_layers = 5
    with pytest.raises(InputError, match="must be in 1..4"):
      im.load()
  target = tmp_path / "new.sae"
  with pytest.raises(InputError, match="must be in 1..4"):
    Image.fromarray(image).save(target, layers=5)
  assert not target.exists()  # Pillow removes what it created
  with pytest.raises(InputError, match="layers must be at least 1"):
    sae.register_pillow(layers=0)


def test_open_does_not_import_tensorflow(stream_file):
  script = ("import sys\n"
            "import sae.pillow_plugin\n"
            "from PIL import Image\n"
            "im = Image.open(sys.argv[1])\n"
            "print(im.format, im.size, im.mode, im.info['layers'],"
            " 'tensorflow' in sys.modules)\n")
  done = subprocess.run([sys.executable, "-c", script, str(stream_file)],
                        cwd=ROOT, capture_output=True, text=True, timeout=120)
  assert done.returncode == 0, done.stderr
  assert done.stdout.split() == ["SAE", "(30,", "21)", "RGB", "4", "False"]
