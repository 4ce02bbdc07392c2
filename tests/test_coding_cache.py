"""sae.coding_cache: stored coding functions code what the model codes,
are used by the next command, and never stand in for other weights."""

import json
import shutil

import numpy as np
import pytest

from sae import checkpoints, codec, coding_cache
from sae.cli import commands
from sae.stream import bitstream
from tiny import random_image


@pytest.fixture
def cache(tmp_path, monkeypatch):
  folder = tmp_path / "cache"
  monkeypatch.setenv("SAE_CACHE_DIR", str(folder))
  return folder


def test_stored_functions_code_byte_for_byte_as_the_model(tiny_weights, cache):
  # Two layers: a prefix and the whole are both checked.
  model = checkpoints.load_model(tiny_weights, num_layers=2)
  # Bands of 16 latent pixels: the 96x80 image takes the banded functions.
  model.band_latent_pixels = 16
  for name in coding_cache.FUNCTIONS:
    assert coding_cache.store(model, tiny_weights, name)
  coder = coding_cache.lookup(tiny_weights, model.num_layers, "decompress",
                              band_latent_pixels=16)
  assert coder.weights_ids() == model.weights_ids()
  for height, width in ((32, 48), (96, 80)):
    image = random_image(height, width, seed=height)
    assert coder.fits_one_band(height, width) == model.fits_one_band(
        height, width)
    for k in (1, model.num_layers):
      stream = codec.encode(coder, image, k)
      assert stream == codec.encode(model, image, k)
      np.testing.assert_array_equal(
          codec.decode(coder, stream), codec.decode(model, stream))


def _compress(tiny_weights, image_path, out):
  return commands.main(["compress", str(image_path), str(out), "--weights",
                        str(tiny_weights)])


@pytest.fixture
def photo(tmp_path):
  from PIL import Image
  path = tmp_path / "photo.png"
  Image.fromarray(random_image(40, 56, seed=3)).save(path)
  return path


def test_a_command_stores_its_function_and_the_next_uses_it(
    tiny_weights, cache, photo, tmp_path, monkeypatch):
  assert _compress(tiny_weights, photo, tmp_path / "a.sae") == 0
  [entry] = (cache / "coding").iterdir()
  meta = json.loads((entry / coding_cache.META_FILE).read_text())
  assert set(meta["functions"]) == {"compress_one_band"}

  def no_model(*args, **kwargs):
    raise AssertionError("the model was built")

  monkeypatch.setattr(checkpoints, "cached_model", no_model)
  assert _compress(tiny_weights, photo, tmp_path / "b.sae") == 0
  assert (tmp_path / "a.sae").read_bytes() == (tmp_path / "b.sae").read_bytes()


def test_a_damaged_entry_is_ignored_and_rewritten(tiny_weights, cache, photo,
                                                 tmp_path):
  assert _compress(tiny_weights, photo, tmp_path / "a.sae") == 0
  [entry] = (cache / "coding").iterdir()
  (entry / "compress_one_band.pb").write_bytes(b"\x0f not a library")
  assert coding_cache.lookup(tiny_weights, 4, "compress_one_band") is None
  assert _compress(tiny_weights, photo, tmp_path / "b.sae") == 0
  assert (tmp_path / "a.sae").read_bytes() == (tmp_path / "b.sae").read_bytes()
  assert coding_cache.lookup(tiny_weights, 4, "compress_one_band") is not None


def test_the_key_covers_weights_and_tables_not_training_records(
    tiny_weights, tmp_path):
  folder = tmp_path / "w"
  shutil.copytree(tiny_weights, folder)
  key = coding_cache.entry_key(folder, 4)
  assert coding_cache.entry_key(folder, 3) != key
  assert coding_cache.entry_key(folder, 4, band_latent_pixels=16) != key
  (folder / "el3" / "state.json").write_text("{}")
  assert coding_cache.entry_key(folder, 4) == key
  # Tables stored (shipped folders have them) or not (built from the prior).
  checkpoints.tables_path(folder, 2).write_bytes(b"tables")
  assert coding_cache.entry_key(folder, 4) != key
  weights = next((folder / "el1").glob("weights.data-*"))
  before = coding_cache.entry_key(folder, 4)
  data = bytearray(weights.read_bytes())
  data[-1] ^= 1
  weights.write_bytes(bytes(data))
  assert coding_cache.entry_key(folder, 4) != before


def test_decoding_with_a_stored_function_refuses_other_weights(
    tiny_weights, cache, photo, tmp_path):
  stream = tmp_path / "a.sae"
  assert _compress(tiny_weights, photo, stream) == 0
  out = tmp_path / "a.png"
  args = ["decompress", str(stream), str(out), "--weights",
          str(tiny_weights)]
  assert commands.main(args) == 0  # stores decompress_one_band
  out.unlink()
  assert commands.main(args) == 0  # decodes with it
  parsed = bitstream.unpack(stream.read_bytes())
  other = bitstream.pack(parsed.height, parsed.width, list(parsed.payloads),
                         [b"\0\0\0\0"] * parsed.num_layers)
  stream.write_bytes(other)
  out.unlink()
  assert commands.main(args) == 2
  assert not out.exists()


def test_the_cache_can_be_off_or_unwritable(tiny_weights, photo, tmp_path,
                                            monkeypatch):
  monkeypatch.setenv("SAE_CACHE_DIR", "")
  assert coding_cache.cache_root() is None
  assert _compress(tiny_weights, photo, tmp_path / "a.sae") == 0
  blocker = tmp_path / "a-file"
  blocker.write_text("")
  monkeypatch.setenv("SAE_CACHE_DIR", str(blocker))
  assert _compress(tiny_weights, photo, tmp_path / "b.sae") == 0
  assert (tmp_path / "a.sae").read_bytes() == (tmp_path / "b.sae").read_bytes()
